"""Translation of Pebble templates (Kestra's syntax) into Jinja2 source.

A small lexer splits the template into text, ``{{ }}`` prints, ``{% %}`` tags and ``{# #}``
comments (whitespace control ``-`` applied here), and a Pratt parser with Pebble's operator
precedences turns each expression into a fully parenthesised Jinja2 expression that calls a few
private helpers (``_cat``, ``_bool``, ``_iter``...) where the two languages differ.

Pebble precedences: ``or`` 10, ``and`` 15, ``is``/``is not``/``contains`` 20, comparisons and
``equals`` 30, ``+ -`` 40, ``* / %`` 60, ``|`` (filter) 100, ``~`` 110, ``..`` and ``??`` 120,
unary ``not``/``-``/``+`` 500; the ternary ``c ? a : b`` binds loosest.

The generated Jinja2 source uses control-character delimiters, so literal text of the template is
copied as is and can never be mistaken for Jinja2 syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from common.errors import TemplateError

# Jinja2 delimiters of the generated source: characters a template practically never contains
# (text that does contain them is emitted as a string literal).
MARK = "\x1a"
BLOCK_START, BLOCK_END = MARK + "%", "%" + MARK
VAR_START, VAR_END = MARK + "{", "}" + MARK
COMMENT_START, COMMENT_END = MARK + "#", "#" + MARK

FILTERS: frozenset[str] = frozenset()  # filled by the engine at import (names known to exist)
TESTS: frozenset[str] = frozenset()
HELPERS: frozenset[str] = frozenset()  # the translation's own functions (``_cat``...)

_BINARY = {
    "or": 10,
    "and": 15,
    "is": 20,
    "contains": 20,
    "==": 30,
    "equals": 30,
    "!=": 30,
    "<": 30,
    ">": 30,
    "<=": 30,
    ">=": 30,
    "+": 40,
    "-": 40,
    "*": 60,
    "/": 60,
    "%": 60,
    "|": 100,
    "~": 110,
    "..": 120,
    "??": 120,
}
_UNARY_PRECEDENCE = 500
_OPERATORS = sorted(
    ["??", "..", "==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "%", "~", "|", "?", ":"]
    + [".", ",", "(", ")", "[", "]", "{", "}", "="],
    key=len,
    reverse=True,
)
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER_RE = re.compile(r"\d+(?:\.\d+)?")
_STRING_RE = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"", re.S)
_OPEN_RE = re.compile(r"\{[{%#]")
_ENDRAW_RE = re.compile(r"\{%(-?)\s*end(?:raw|verbatim)\s*(-?)%\}")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "0": "\0"}
_JINJA_KEYWORDS = frozenset(
    "and or not in is if else elif for endfor true false none True False None recursive "
    "block endblock extends include import from with without as set endset macro call "
    "filter endfilter raw endraw pluck".split()
)
_LOOP_RENAMES = {"index": "index0", "revindex": "revindex0"}


@dataclass
class Token:
    kind: str  # "name" | "number" | "string" | "op"
    value: str
    pos: int


@dataclass
class Translation:
    """A Pebble template translated to Jinja2 source."""

    source: str
    expressions: list[str] = field(default_factory=list)
    # Jinja2 expression code when the template is exactly one ``{{ expr }}`` (for typed render)
    single: str | None = None
    constant: str | None = None  # the whole output when the template has no expression or tag


def _error(template: str, message: str) -> TemplateError:
    shown = template if len(template) <= 200 else template[:200] + "..."
    return TemplateError(f'Unable to render "{shown}": {message}')


def _unescape(body: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


class _Lexer:
    """Tokenises the inside of one ``{{ }}`` or ``{% %}`` up to its closing delimiter."""

    def __init__(self, template: str, pos: int, closer: str) -> None:
        self.template = template
        self.pos = pos
        self.closer = closer  # "}}" or "%}"

    def run(self) -> tuple[list[Token], int, bool]:
        """Return tokens, the position after the closing delimiter and the trim-right flag."""
        src = self.template
        tokens: list[Token] = []
        depth = 0
        i = self.pos
        n = len(src)
        while True:
            while i < n and src[i].isspace():
                i += 1
            if i >= n:
                raise _error(src, f"unclosed '{'{{' if self.closer == '}}' else '{%'}'")
            if depth == 0:
                if src.startswith("-" + self.closer, i):
                    return tokens, i + 3, True
                if src.startswith(self.closer, i):
                    return tokens, i + 2, False
            if src.startswith("{%", i) or src.startswith("{{", i):
                raise _error(src, f"unexpected '{src[i : i + 2]}' inside an expression")
            ch = src[i]
            if ch in "'\"":
                match = _STRING_RE.match(src, i)
                if match is None:
                    raise _error(src, "unclosed string literal")
                body = match.group(1) if match.group(1) is not None else match.group(2)
                tokens.append(Token("string", _unescape(body), i))
                i = match.end()
                continue
            if ch.isdigit():
                match = _NUMBER_RE.match(src, i)
                assert match is not None
                tokens.append(Token("number", match.group(0), i))
                i = match.end()
                continue
            match = _NAME_RE.match(src, i)
            if match is not None:
                tokens.append(Token("name", match.group(0), i))
                i = match.end()
                continue
            for op in _OPERATORS:
                if src.startswith(op, i):
                    if op in "([{":
                        depth += 1
                    elif op in ")]}":
                        depth -= 1
                        if depth < 0:
                            raise _error(src, f"unexpected '{op}'")
                    tokens.append(Token("op", op, i))
                    i += len(op)
                    break
            else:
                raise _error(src, f"unexpected character {ch!r}")


class _Parser:
    """Pratt parser over one expression's tokens; ``parse()`` returns Jinja2 source."""

    def __init__(self, template: str, tokens: list[Token], in_loop: bool) -> None:
        self.template = template
        self.tokens = tokens
        self.index = 0
        self.in_loop = in_loop

    # -- token helpers -------------------------------------------------------------------
    def peek(self, offset: int = 0) -> Token | None:
        i = self.index + offset
        return self.tokens[i] if i < len(self.tokens) else None

    def is_op(self, value: str, offset: int = 0) -> bool:
        tok = self.peek(offset)
        return tok is not None and tok.kind == "op" and tok.value == value

    def is_name(self, value: str, offset: int = 0) -> bool:
        tok = self.peek(offset)
        return tok is not None and tok.kind == "name" and tok.value == value

    def next(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise self.error("unexpected end of expression")
        self.index += 1
        return tok

    def expect_op(self, value: str) -> None:
        tok = self.peek()
        if tok is None or tok.kind != "op" or tok.value != value:
            found = "end of expression" if tok is None else repr(tok.value)
            raise self.error(f"expected '{value}' but found {found}")
        self.index += 1

    def expect_name(self) -> str:
        tok = self.peek()
        if tok is None or tok.kind != "name":
            found = "end of expression" if tok is None else repr(tok.value)
            raise self.error(f"expected a name but found {found}")
        self.index += 1
        return tok.value

    def error(self, message: str) -> TemplateError:
        return _error(self.template, message)

    def at_end(self) -> bool:
        return self.index >= len(self.tokens)

    # -- grammar -------------------------------------------------------------------------
    def parse(self) -> str:
        code = self.expression()
        if not self.at_end():
            raise self.error(f"unexpected {self.tokens[self.index].value!r}")
        return code

    def binary_operator(self) -> str | None:
        tok = self.peek()
        if tok is None:
            return None
        if tok.kind == "op" and tok.value in _BINARY:
            return tok.value
        if tok.kind == "name" and tok.value in ("or", "and", "is", "contains", "equals"):
            return tok.value
        return None

    def expression(self, min_precedence: int = 0) -> str:
        left = self.unary()
        coalesce: list[str] | None = None
        while True:
            op = self.binary_operator()
            if op is None or _BINARY[op] < min_precedence:
                break
            self.index += 1
            precedence = _BINARY[op]
            if op == "|":
                left = self.filter_call(left)
            elif op == "is":
                negate = self.is_name("not")
                if negate:
                    self.index += 1
                left = self.test_call(left, negate)
            elif op == "??":
                right = self.expression(precedence + 1)
                coalesce = [*(coalesce or [left]), right]
                left = _coalesce(coalesce)
                continue
            else:
                right = self.expression(precedence + 1)
                left = _binary(op, left, right)
            coalesce = None
        if min_precedence == 0 and self.is_op("?"):
            self.index += 1
            when_true = self.expression()
            self.expect_op(":")
            when_false = self.expression()
            left = f"(({when_true}) if _bool({left}) else ({when_false}))"
        return left

    def unary(self) -> str:
        tok = self.peek()
        if tok is not None and (
            (tok.kind == "name" and tok.value == "not")
            or (tok.kind == "op" and tok.value in ("-", "+"))
        ):
            self.index += 1
            operand = self.expression(_UNARY_PRECEDENCE)
            if tok.value == "not":
                return f"(not _bool({operand}))"
            return f"({tok.value}({operand}))"
        if self.is_op("("):
            self.index += 1
            inner = self.expression()
            self.expect_op(")")
            return self.postfix(f"({inner})", None)
        return self.primary()

    def primary(self) -> str:
        tok = self.next()
        if tok.kind == "number":
            return tok.value
        if tok.kind == "string":
            return repr(tok.value)
        if tok.kind == "op":
            if tok.value == "[":
                items = self.sequence("]")
                return self.postfix("[" + ", ".join(items) + "]", None)
            if tok.value == "{":
                return self.postfix(self.map_literal(), None)
            raise self.error(f"unexpected '{tok.value}'")
        name = tok.value
        lowered = name
        if lowered in ("true", "True"):
            return "true"
        if lowered in ("false", "False"):
            return "false"
        if lowered in ("null", "none", "None"):
            return "none"
        if name.startswith("__"):
            raise self.error(f"access to '{name}' is not allowed")
        # Jinja's own names (``self``, the translation's ``_cat``...) are looked up as variables
        by_lookup = name in _JINJA_KEYWORDS or name == "self" or name in HELPERS
        if self.is_op("("):
            self.index += 1
            args = self.arguments()
            callee = f"_var({name!r})" if by_lookup else name
            return self.postfix(f"{callee}({args})", None)
        code = f"_var({name!r})" if by_lookup else name
        return self.postfix(code, name)

    def postfix(self, code: str, root: str | None) -> str:
        while True:
            if self.is_op("."):
                self.index += 1
                tok = self.next()
                if tok.kind == "number":
                    code = f"({code})[{tok.value}]"
                    root = None
                    continue
                if tok.kind != "name":
                    raise self.error(f"expected an attribute name after '.', found {tok.value!r}")
                attr = tok.value
                if attr.startswith("_"):
                    raise self.error(f"access to attribute '{attr}' is not allowed")
                if self.is_op("("):
                    raise self.error(f"method calls are not supported ('{attr}(...)')")
                if root == "loop" and self.in_loop:
                    attr = _LOOP_RENAMES.get(attr, attr)
                code = f"({code})[{attr!r}]"
                root = None
            elif self.is_op("["):
                self.index += 1
                key = self.expression()
                self.expect_op("]")
                code = f"({code})[{key}]"
                root = None
            else:
                return code

    def sequence(self, closer: str) -> list[str]:
        items: list[str] = []
        while not self.is_op(closer):
            items.append(self.expression())
            if not self.is_op(closer):
                self.expect_op(",")
        self.index += 1
        return items

    def map_literal(self) -> str:
        pairs: list[str] = []
        while not self.is_op("}"):
            key = self.expression()
            self.expect_op(":")
            value = self.expression()
            pairs.append(f"{key}: {value}")
            if not self.is_op("}"):
                self.expect_op(",")
        self.index += 1
        return "{" + ", ".join(pairs) + "}"

    def arguments(self) -> str:
        """Arguments after '(' up to ')': positional and ``name=value``."""
        args: list[str] = []
        while not self.is_op(")"):
            tok = self.peek()
            if tok is not None and tok.kind == "name" and self.is_op("=", 1):
                self.index += 2
                if tok.value.startswith("_"):
                    raise self.error(f"invalid argument name '{tok.value}'")
                args.append(f"{tok.value}={self.expression()}")
            else:
                args.append(self.expression())
            if not self.is_op(")"):
                self.expect_op(",")
        self.index += 1
        return ", ".join(args)

    def filter_call(self, left: str) -> str:
        name = self.expect_name()
        if name not in FILTERS:
            raise self.error(f"unknown filter '{name}'")
        args = ""
        if self.is_op("("):
            self.index += 1
            args = self.arguments()
        return f"(({left})|{name}({args}))"

    def test_call(self, left: str, negate: bool) -> str:
        name = self.expect_name()
        if name not in TESTS:
            raise self.error(f"unknown test '{name}'")
        args = ""
        if self.is_op("("):
            self.index += 1
            args = self.arguments()
        return f"(({left}) is {'not ' if negate else ''}{name}({args}))"


def _binary(op: str, left: str, right: str) -> str:
    if op in ("==", "equals"):
        return f"(({left}) == ({right}))"
    if op in ("!=", "<", ">", "<=", ">=", "-"):
        return f"(({left}) {op} ({right}))"
    if op in ("and", "or"):
        return f"(_bool({left}) {op} _bool({right}))"
    helper = {
        "+": "_add",
        "*": "_mul",
        "/": "_div",
        "%": "_mod",
        "~": "_cat",
        "..": "_range",
        "contains": "_contains",
    }[op]
    return f"{helper}({left}, {right})"


def _coalesce(items: list[str]) -> str:
    code = items[-1]
    for item in reversed(items[:-1]):
        code = f"(({item}) if ({item}) is not _nullish else ({code}))"
    return code


def _literal_text(text: str) -> str:
    # Jinja2's lexer would normalise "\r\n" and "\r", so such text travels as a string literal
    if MARK in text or "\r" in text:
        return VAR_START + repr(text) + VAR_END
    return text


def translate(template: str) -> Translation:
    """Translate a Pebble template into Jinja2 source (raises TemplateError on syntax errors)."""
    parts: list[list[str]] = []  # [kind, payload]; kind: text | print | tag
    expressions: list[str] = []
    stack: list[str] = []
    trim_next = False
    i = 0
    n = len(template)

    def add_text(text: str) -> None:
        nonlocal trim_next
        if trim_next:
            text = text.lstrip()
            trim_next = False
        if text:
            parts.append(["text", text])

    def trim_previous() -> None:
        if parts and parts[-1][0] == "text":
            parts[-1][1] = parts[-1][1].rstrip()
            if not parts[-1][1]:
                parts.pop()

    while i < n:
        match = _OPEN_RE.search(template, i)
        if match is None:
            add_text(template[i:])
            break
        add_text(template[i : match.start()])
        start = match.start()
        opener = match.group(0)
        j = match.end()
        trim_left = j < n and template[j] == "-"
        if trim_left:
            j += 1
            trim_previous()
        if opener == "{#":
            end = template.find("#}", j)
            if end < 0:
                raise _error(template, "unclosed comment '{#'")
            trim_next = template[end - 1] == "-" and end - 1 >= j
            i = end + 2
            continue
        closer = "}}" if opener == "{{" else "%}"
        tokens, i, trim_right = _Lexer(template, j, closer).run()
        source = template[start:i]
        if opener == "{{":
            if not tokens:
                raise _error(template, "empty expression '{{ }}'")
            expressions.append(source)
            code = _Parser(template, tokens, "for" in stack).parse()
            parts.append(["print", code])
            trim_next = trim_right
            continue
        if not tokens or tokens[0].kind != "name":
            raise _error(template, f"missing tag name in '{source}'")
        tag = tokens[0].value
        if tag in ("raw", "verbatim"):
            if len(tokens) != 1:
                raise _error(template, f"unexpected arguments to '{tag}'")
            end_match = _ENDRAW_RE.search(template, i)
            if end_match is None:
                raise _error(template, f"unclosed '{{% {tag} %}}'")
            body = template[i : end_match.start()]
            if trim_right:
                body = body.lstrip()
            if end_match.group(1):
                body = body.rstrip()
            if body:
                parts.append(["text", body])
            trim_next = bool(end_match.group(2))
            i = end_match.end()
            continue
        expressions.append(source)
        parts.append(["tag", _translate_tag(template, tag, tokens[1:], stack)])
        trim_next = trim_right
    if stack:
        raise _error(template, f"unclosed '{{% {stack[-1]} %}}' (missing end{stack[-1]})")

    if all(kind == "text" for kind, _ in parts):
        constant = "".join(payload for _, payload in parts)
        return Translation(source="", expressions=expressions, constant=constant)
    single = None
    meaningful = [p for p in parts if not (p[0] == "text" and not p[1].strip())]
    if len(meaningful) == 1 and meaningful[0][0] == "print":
        single = meaningful[0][1]
    chunks: list[str] = []
    for kind, payload in parts:
        if kind == "text":
            chunks.append(_literal_text(payload))
        elif kind == "print":
            chunks.append(VAR_START + " " + payload + " " + VAR_END)
        else:
            chunks.append(BLOCK_START + " " + payload + " " + BLOCK_END)
    return Translation("".join(chunks), expressions, single)


def _translate_tag(template: str, tag: str, tokens: list[Token], stack: list[str]) -> str:
    def expr(toks: list[Token]) -> str:
        if not toks:
            raise _error(template, f"missing expression in '{{% {tag} %}}'")
        return _Parser(template, toks, "for" in stack).parse()

    def close(opening: str) -> None:
        if not stack or stack[-1] != opening:
            raise _error(template, f"unexpected '{{% {tag} %}}'")
        stack.pop()

    if tag == "for":
        names: list[str] = []
        k = 0
        while k < len(tokens) and tokens[k].kind == "name" and tokens[k].value != "in":
            names.append(tokens[k].value)
            k += 1
            if k < len(tokens) and tokens[k].kind == "op" and tokens[k].value == ",":
                k += 1
        if not names or k >= len(tokens) or tokens[k].value != "in" or len(names) > 2:
            raise _error(template, "invalid for tag, expected '{% for item in items %}'")
        for name in names:
            if name.startswith("_") or name in _JINJA_KEYWORDS:
                raise _error(template, f"invalid loop variable '{name}'")
        iterable = expr(tokens[k + 1 :])
        stack.append("for")
        if len(names) == 2:
            return f"for {names[0]}, {names[1]} in _items({iterable})"
        return f"for {names[0]} in _iter({iterable})"
    if tag == "endfor":
        close("for")
        return "endfor"
    if tag == "if":
        stack.append("if")
        return f"if _bool({expr(tokens)})"
    if tag in ("elseif", "elif"):
        if not stack or stack[-1] != "if":
            raise _error(template, f"unexpected '{{% {tag} %}}'")
        return f"elif _bool({expr(tokens)})"
    if tag == "else":
        if not stack or stack[-1] not in ("if", "for"):
            raise _error(template, "unexpected '{% else %}'")
        if tokens:
            raise _error(template, "unexpected arguments to '{% else %}'")
        return "else"
    if tag == "endif":
        close("if")
        return "endif"
    if tag == "set":
        if len(tokens) < 3 or tokens[0].kind != "name" or tokens[1].value != "=":
            raise _error(template, "invalid set tag, expected '{% set name = value %}'")
        name = tokens[0].value
        if name.startswith("_") or name in _JINJA_KEYWORDS:
            raise _error(template, f"invalid variable name '{name}'")
        return f"set {name} = {expr(tokens[2:])}"
    if tag == "filter":
        parser = _Parser(template, tokens, "for" in stack)
        names = []
        while True:
            name = parser.expect_name()
            if name not in FILTERS:
                raise _error(template, f"unknown filter '{name}'")
            args = ""
            if parser.is_op("("):
                parser.index += 1
                args = parser.arguments()
            names.append(f"{name}({args})")
            if parser.at_end():
                break
            parser.expect_op("|")
        stack.append("filter")
        return "filter " + "|".join(names)
    if tag == "endfilter":
        close("filter")
        return "endfilter"
    raise _error(template, f"unsupported tag '{tag}'")
