"""Typed properties Kestra renders at run time: a value of the type, or a template.

A field declared with one of the ``Dynamic...`` types below accepts, in a flow:

- a value of its type, checked when the flow is parsed (``concurrencyLimit: 2``,
  ``delay: PT5M``): a typo is still a located 422;
- a string holding ``{{`` or ``{%``, kept as a ``Template``; its syntax is checked with the
  flow's other templates (``common.flow.checks``). Where the task runs (worker) or is resolved
  (executor), ``resolve`` renders it with that task run's variables and validates the result as
  the type, raising ``PropertyError`` that names the property: ``delay: 'abc' is not a duration``.

Both sides call ``resolve`` on every read, so a caller never sees an unrendered template.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, Field, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError, core_schema

from common.errors import PropertyError

_M = TypeVar("_M", bound=BaseModel)


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


class Template(str):
    """A property value still to render; it remembers the type it must have once rendered."""

    spec: Dynamic | None
    name: str

    def __new__(cls, text: str, spec: Dynamic | None = None, name: str = "") -> Template:
        made = super().__new__(cls, text)
        made.spec = spec
        made.name = name
        return made

    # immutable, and its spec holds a TypeAdapter that need not be copied
    def __copy__(self) -> Template:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Template:
        return self


def _duration(value: Any) -> timedelta:
    # imported here: common.flow imports the plugin models, which import this module
    from common.flow.durations import parse_iso_duration

    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError("not a duration")
    return parse_iso_duration(value)


def _json_text(value: Any) -> Any:
    # a rendered template is text: a JSON list or map in it is the value
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f"'{value}'"
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return repr(value)


class Dynamic:
    """``Annotated`` marker: the field holds ``type`` or a ``Template`` rendered to ``type``."""

    def __init__(self, type_: Any, what: str) -> None:
        self.type = type_
        self.what = what
        self._adapter: TypeAdapter[Any] = TypeAdapter(type_)

    def reason(self, value: Any, exc: ValidationError) -> str:
        error = exc.errors(include_url=False)[0]
        kind = str(error["type"])
        if kind.endswith(("_parsing", "_type")) or kind == "value_error":
            return f"{_show(value)} is not {self.what}"
        return f"{_show(value)}: {error['msg']}"

    def validate(self, value: Any, name: str) -> Any:
        """A rendered value as the property's type, or ``PropertyError`` naming it."""
        try:
            return self._adapter.validate_python(value)
        except ValidationError as exc:
            raise PropertyError(f"{name}: {self.reason(value, exc)}") from None

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        def validate(value: Any, inner: Any, info: core_schema.ValidationInfo) -> Any:
            if isinstance(value, Template):
                return value
            if is_template(value):
                return Template(value, self, to_camel(info.field_name or ""))
            try:
                return inner(value)
            except ValidationError as exc:
                raise PydanticCustomError(
                    "dynamic_property", "{reason}", {"reason": self.reason(value, exc)}
                ) from None

        return core_schema.with_info_wrap_validator_function(
            validate,
            handler.generate_schema(self.type),
            serialization=core_schema.plain_serializer_function_ser_schema(
                _serialize, info_arg=True
            ),
        )


def _serialize(value: Any, info: core_schema.SerializationInfo) -> Any:
    from common.flow.durations import format_iso_duration

    if isinstance(value, Template):
        return str(value)
    if isinstance(value, timedelta) and info.mode == "json":
        return format_iso_duration(value)
    return value


def resolve(
    value: Any, render: Callable[[str], Any], *, items: Callable[[Any], Any] | None = None
) -> Any:
    """The property's value: the template rendered then typed, or ``value`` itself.

    ``items`` renders the templates inside a list or map written out in the flow
    (``headers: {X-Id: "{{ execution.id }}"}``); a template giving the whole list or map is
    rendered once, never twice.
    """
    if isinstance(value, Template) and value.spec is not None:
        return value.spec.validate(render(str(value)), value.name)
    if items is not None and value is not None:
        return items(value)
    return value


def resolve_model(model: _M, render: Callable[[str], Any]) -> _M:
    """A copy of ``model`` with every template property rendered and typed."""
    update = {
        name: resolve(value, render)
        for name, value in model.__dict__.items()
        if isinstance(value, Template)
    }
    return model.model_copy(update=update) if update else model


Duration = Annotated[timedelta, BeforeValidator(_duration)]
JsonList = Annotated[list[Any], BeforeValidator(_json_text)]
JsonMap = Annotated[dict[str, Any], BeforeValidator(_json_text)]

DynamicBool = Annotated[bool | Template, Dynamic(bool, "a boolean")]
DynamicInt = Annotated[int | Template, Dynamic(int, "an integer")]
DynamicCount = Annotated[int | Template, Dynamic(Annotated[int, Field(ge=0)], "an integer")]
DynamicPositive = Annotated[int | Template, Dynamic(Annotated[int, Field(ge=1)], "an integer")]
DynamicFloat = Annotated[float | Template, Dynamic(float, "a number")]
DynamicDuration = Annotated[
    timedelta | Template, Dynamic(Duration, "a duration (ISO-8601: PT30S, PT1H, P1D)")
]
DynamicList = Annotated[list[Any] | Template, Dynamic(JsonList, "a list")]
DynamicIntList = Annotated[
    list[int] | Template,
    Dynamic(Annotated[list[int], BeforeValidator(_json_text)], "a list of integers"),
]
DynamicMap = Annotated[dict[str, Any] | Template, Dynamic(JsonMap, "a map")]
