"""The Jinja2 sandbox that runs translated Pebble templates, its compile cache and error mapping.

Strictness lives in ``PebbleUndefined``: a missing variable, key or index yields an undefined
value that chains further attribute/item access (so ``a.b.c ?? x`` and ``a.b is defined`` work)
but raises as soon as it is used (printed, compared, iterated, called, passed to a filter).
Attribute and item access are the same lookup: maps by key (never Python methods such as
``dict.values``), lists by index, other objects through the sandbox without private names.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import jinja2
from jinja2 import StrictUndefined, Undefined
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import missing

from common.errors import TemplateError

from . import _functions, _limits, _pebble
from ._filters import FILTERS, TESTS, t_nullish
from ._output import to_string

_INTERNAL_ATTRIBUTES = frozenset({"jinja_pass_arg", "unsafe_callable", "alters_data"})


class _Missing(UndefinedError):
    """Raised when an undefined value is used; carries what was looked up, where."""

    def __init__(self, undefined: PebbleUndefined, kind: str = "variable") -> None:
        super().__init__("undefined value")
        self.obj = undefined._undefined_obj
        self.name = undefined._undefined_name
        self.kind = kind


class PebbleUndefined(StrictUndefined):
    """Strict undefined that chains attribute/item access and fails on any use."""

    __slots__ = ()

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise _Missing(self)

    def __getattr__(self, name: str) -> Any:
        if name[:1] == "_" or name in _INTERNAL_ATTRIBUTES:
            raise AttributeError(name)
        return self

    def __getitem__(self, key: Any) -> Any:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise _Missing(self, "function")

    __iter__ = __str__ = __len__ = __eq__ = __ne__ = __bool__ = __hash__ = __contains__ = (
        _fail_with_undefined_error
    )
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _fail_with_undefined_error
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = _fail_with_undefined_error
    __mod__ = __rmod__ = __pos__ = __neg__ = __pow__ = __rpow__ = _fail_with_undefined_error
    __lt__ = __le__ = __gt__ = __ge__ = __int__ = __float__ = __complex__ = (
        _fail_with_undefined_error
    )


def _alternative_key(key: Any) -> Any:
    """Kestra stringifies iteration values: ``'1'`` finds key ``1`` and ``1`` finds ``'1'``."""
    if isinstance(key, str):
        stripped = key.strip()
        if stripped.lstrip("-").isdigit():
            return int(stripped)
        return None
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int | float):
        return to_string(key)
    return None


class _Environment(SandboxedEnvironment):
    def lookup(self, obj: Any, key: Any) -> Any:
        if type(obj) is dict or isinstance(obj, Mapping):
            try:
                return obj[key]
            except KeyError:
                alternative = _alternative_key(key)
                if alternative is not None and alternative in obj:
                    return obj[alternative]
                return self.undefined(obj=obj, name=key)
            except TypeError as exc:
                raise TemplateError(f"invalid map key {to_string(key)!r}") from exc
        if isinstance(obj, Undefined):
            return obj
        if obj is None:
            return self.undefined(obj=None, name=key)
        if isinstance(obj, list | tuple | str):
            index: Any = int(key) if isinstance(key, str) and key.isdigit() else key
            if isinstance(index, int) and not isinstance(index, bool):
                if 0 <= index < len(obj):
                    return obj[index]
                return self.undefined(obj=obj, name=key)
            if isinstance(obj, str) or isinstance(key, str):
                return self.undefined(obj=obj, name=key)
        if isinstance(key, str):
            if key[:1] == "_":
                raise SecurityError(f"access to attribute '{key}' is not allowed")
            value = super().getattr(obj, key)
            if callable(value) and not isinstance(value, Undefined):
                return self.undefined(obj=obj, name=key)
            return value
        return self.undefined(obj=obj, name=key)

    def getattr(self, obj: Any, attribute: str) -> Any:
        return self.lookup(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        return self.lookup(obj, argument)


_ENV = _Environment(
    block_start_string=_pebble.BLOCK_START,
    block_end_string=_pebble.BLOCK_END,
    variable_start_string=_pebble.VAR_START,
    variable_end_string=_pebble.VAR_END,
    comment_start_string=_pebble.COMMENT_START,
    comment_end_string=_pebble.COMMENT_END,
    undefined=PebbleUndefined,
    autoescape=False,
    keep_trailing_newline=True,
    finalize=to_string,
    cache_size=0,
    auto_reload=False,
)
_ENV.filters.clear()
_ENV.filters.update(FILTERS)
_ENV.tests.clear()
_ENV.tests.update(TESTS)
_ENV.tests["_nullish"] = t_nullish
_ENV.globals.clear()
_pebble.FILTERS = frozenset(FILTERS)
_pebble.TESTS = frozenset(TESTS)

_PUBLIC = {k: v for k, v in _functions.GLOBALS.items() if not k.startswith("_")}
_HELPERS = {k: v for k, v in _functions.GLOBALS.items() if k.startswith("_")}
_pebble.HELPERS = frozenset(_HELPERS)


@dataclass
class _Compiled:
    translation: _pebble.Translation
    template: jinja2.Template | None
    _expression: Any = None

    def expression(self) -> Any:
        if self._expression is None:
            assert self.translation.single is not None
            self._expression = _ENV.compile_expression(
                self.translation.single, undefined_to_none=False
            )
        return self._expression


@functools.lru_cache(maxsize=4096)
def _compile(template: str) -> _Compiled:
    try:
        translation = _pebble.translate(template)
        if translation.constant is not None:
            return _Compiled(translation, None)
        compiled = _ENV.from_string(translation.source)
    except jinja2.TemplateSyntaxError as exc:  # a translation gap: still a clean error
        raise _error(template, f"syntax error: {exc.message}") from exc
    except (RecursionError, MemoryError) as exc:  # ((((((...)))))) thousands deep
        raise _error(template, "expression nested too deeply") from exc
    return _Compiled(translation, compiled)


def _error(template: str, reason: str) -> TemplateError:
    shown = template if len(template) <= 200 else template[:200] + "..."
    return TemplateError(f'Unable to render "{shown}": {reason}')


def _format_key(key: Any) -> str:
    if isinstance(key, int) and not isinstance(key, bool):
        return f"[{key}]"
    text = to_string(key)
    return "." + text if text.isidentifier() else f"[{text!r}]"


def _path_of(target: Any, variables: Mapping[str, Any]) -> str | None:
    """Where ``target`` (a map or list) sits in the variables, like ``outputs.t1``."""
    queue: deque[tuple[Any, str]] = deque()
    for key, value in variables.items():
        if isinstance(value, Mapping | list):
            queue.append((value, str(key)))
    visited = 0
    while queue and visited < 20_000:
        value, path = queue.popleft()
        visited += 1
        if value is target:
            return path
        children: Iterable[tuple[Any, Any]] = (
            value.items() if isinstance(value, Mapping) else enumerate(value)
        )
        for key, child in children:
            if isinstance(child, Mapping | list):
                queue.append((child, path + _format_key(key)))
    return None


def _describe_missing(exc: _Missing, variables: Mapping[str, Any]) -> str:
    name = to_string(exc.name) if exc.name is not None else "?"
    if exc.obj is missing:
        return f"{exc.kind} '{name}' is undefined"
    if exc.obj is None:
        return f"cannot read '{name}' of a null value"
    path = _path_of(exc.obj, variables)
    if isinstance(exc.obj, list | tuple):
        where = f" in {path}" if path else ""
        return f"index {name} is out of range{where} (size {len(exc.obj)})"
    if isinstance(exc.obj, Mapping):
        if path:
            return f"variable '{name}' is undefined in {path}"
        return f"key '{name}' does not exist in the map"
    return f"attribute '{name}' does not exist on {type(exc.obj).__name__}"


def _shown(template: str, translation: _pebble.Translation, name: Any) -> str:
    if len(template) <= 200 or name is None:
        return template
    needle = to_string(name)
    for expression in translation.expressions:
        if needle in expression:
            return expression
    return template


def _map_error(
    exc: BaseException,
    template: str,
    translation: _pebble.Translation,
    variables: Mapping[str, Any],
) -> TemplateError:
    if isinstance(exc, _Missing):
        shown = _shown(template, translation, exc.name)
        shown = shown if len(shown) <= 200 else shown[:200] + "..."
        return TemplateError(f'Unable to render "{shown}": {_describe_missing(exc, variables)}')
    if isinstance(exc, TemplateError):
        if exc.message.startswith('Unable to render "'):  # a nested render() already said where
            return exc
        return _error(template, exc.message)
    if isinstance(exc, SecurityError):
        return _error(template, f"forbidden: {exc}")
    if isinstance(exc, RecursionError):
        return _error(template, "expression nested too deeply")
    if isinstance(exc, jinja2.TemplateError):
        return _error(template, exc.message or type(exc).__name__)
    return _error(template, f"{type(exc).__name__}: {exc}")


def _context(
    variables: Mapping[str, Any], functions: Mapping[str, Callable[..., Any]] | None
) -> dict[str, Any]:
    if functions:
        return {**_PUBLIC, **variables, **functions, **_HELPERS}
    return {**_PUBLIC, **variables, **_HELPERS}


def _run(compiled: _Compiled, template: str, parent: dict[str, Any]) -> str:
    jinja_template = compiled.template
    assert jinja_template is not None
    try:
        chunks: list[str] = []
        size = 0
        limit = _limits.MAX_OUTPUT
        for chunk in jinja_template.root_render_func(jinja_template.new_context(parent, True)):
            size += len(chunk)
            if size > limit:
                raise TemplateError(f"rendered output exceeds {limit} characters")
            chunks.append(chunk)
            _limits.check_time()
        return "".join(chunks)
    except Exception as exc:  # every failure becomes a TemplateError
        raise _map_error(exc, template, compiled.translation, parent) from exc


def render_with_context(template: str, parent: Mapping[str, Any]) -> str:
    """Render with an already built context (the ``render()`` function re-enters here)."""
    if "{" not in template:
        return template
    compiled = _compile(template)
    if compiled.translation.constant is not None:
        return compiled.translation.constant
    with _limits.nested():
        return _run(compiled, template, dict(parent))


def render(
    template: str,
    variables: Mapping[str, Any],
    *,
    functions: Mapping[str, Callable[..., Any]] | None = None,
) -> str:
    if "{" not in template:
        return template
    compiled = _compile(template)
    if compiled.translation.constant is not None:
        return compiled.translation.constant
    _functions.reset_budget()
    return _run(compiled, template, _context(variables, functions))


def _check_defined(value: Any, depth: int = 0) -> None:
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if depth > 50:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            _check_defined(key, depth + 1)
            _check_defined(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_defined(item, depth + 1)


def render_typed(
    template: str,
    variables: Mapping[str, Any],
    *,
    functions: Mapping[str, Callable[..., Any]] | None = None,
) -> Any:
    if "{" not in template:
        return template
    compiled = _compile(template)
    if compiled.translation.single is None:
        return render(template, variables, functions=functions)
    _functions.reset_budget()
    parent = _context(variables, functions)
    try:
        expression = compiled.expression()
        value = expression(parent)
        _check_defined(value)
        if callable(value):  # ``{{ range }}``: a task property gets data, never a function
            raise TemplateError("a function cannot be used as a value: call it, as in range(1, 3)")
    except Exception as exc:
        raise _map_error(exc, template, compiled.translation, parent) from exc
    return value


def render_object(
    value: Any,
    variables: Mapping[str, Any],
    *,
    functions: Mapping[str, Callable[..., Any]] | None = None,
) -> Any:
    if isinstance(value, str):
        return render(value, variables, functions=functions)
    if isinstance(value, Mapping):
        return {
            render_object(k, variables, functions=functions): render_object(
                v, variables, functions=functions
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [render_object(item, variables, functions=functions) for item in value]
    return value


_FALSE_VALUES = frozenset({"false", "0", "-0", ""})


def is_true(rendered: str) -> bool:
    return rendered.strip().lower() not in _FALSE_VALUES


def render_condition(
    template: str,
    variables: Mapping[str, Any],
    *,
    functions: Mapping[str, Callable[..., Any]] | None = None,
) -> bool:
    return is_true(render(template, variables, functions=functions))


def check_syntax(template: str) -> None:
    """Raise ``TemplateError`` if ``template`` cannot be parsed; render nothing."""
    if "{" not in template:
        return
    try:
        _compile(template)
    except TemplateError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure is the user's template
        raise _error(template, str(exc)) from exc
