"""A SOQL subset: a tokenizer, a recursive-descent parser and a compiled evaluator.

Grammar (keywords are case-insensitive, like field and object names)::

    query      := SELECT (COUNT "(" ")" | field ("," field)*) FROM object
                  [WHERE condition] [ORDER BY order ("," order)*] [LIMIT int] [OFFSET int]
    condition  := unary (AND unary)* | unary (OR unary)*     -- mixing AND and OR needs parentheses
    unary      := NOT unary | "(" condition ")" | comparison
    comparison := field op literal | field [NOT] IN "(" literal ("," literal)* ")" | field LIKE string
    op         := = | != | <> | < | <= | > | >=
    order      := field [ASC | DESC] [NULLS (FIRST | LAST)]
    literal    := 'string' | number | true | false | null | datetime | date

Errors are the ones Salesforce answers: ``MALFORMED_QUERY`` (syntax), ``INVALID_TYPE`` (object),
``INVALID_FIELD`` (field, or a literal of the wrong type), ``INVALID_QUERY_FILTER_OPERATOR``, each
message prefixed with the query line, a caret and ``ERROR at Row:r:Column:c`` like Salesforce's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import SalesforceApiError
from .schema import Field, SObject, find_object
from .values import normalize_id, parse_date, parse_datetime

KEYWORDS = frozenset(
    {
        "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC", "NULLS",
        "FIRST", "LAST", "LIMIT", "OFFSET", "TRUE", "FALSE", "NULL", "COUNT",
    }
)  # fmt: skip
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2}(?![\w:]))
  | (?P<number>[+-]?(?:\d+(?:\.\d+)?|\.\d+)(?![\w.]))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op><>|!=|<=|>=|=|<|>)
  | (?P<punct>[(),])
  | (?P<quote>')
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
_LIKE_ESCAPES = {"%", "_"}


@dataclass(frozen=True)
class Token:
    kind: str  # ident, keyword, string, number, datetime, date, op, punct, eof
    value: str
    pos: int


def locate(text: str, pos: int, message: str) -> str:
    """Salesforce's error message layout: the query line, a caret, the row and column, the reason."""
    row = text.count("\n", 0, pos) + 1
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    line = text[start : end if end >= 0 else len(text)]
    column = pos - start + 1
    return f"\n{line}\n{' ' * (column - 1)}^\nERROR at Row:{row}:Column:{column}\n{message}"


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise _malformed(text, pos, f"unexpected token: '{text[pos]}'")
        kind = match.lastgroup
        assert kind is not None
        if kind == "quote":
            raw, end = _scan_string(text, pos)
            tokens.append(Token("string", raw, pos))
            pos = end
            continue
        if kind == "ident" and match.group().upper() in KEYWORDS:
            tokens.append(Token("keyword", match.group().upper(), pos))
        elif kind != "ws":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(Token("eof", "", len(text)))
    return tokens


def _scan_string(text: str, start: int) -> tuple[str, int]:
    """The raw content of the string literal opening at ``start`` (escapes checked, not decoded)."""
    pos = start + 1
    while pos < len(text):
        char = text[pos]
        if char == "\\":
            escaped = text[pos + 1 : pos + 2]
            if escaped.lower() not in _ESCAPES and escaped not in _LIKE_ESCAPES and escaped != "u":
                raise _malformed(
                    text, pos, f"Invalid string literal. Illegal character sequence '\\{escaped}' in string literal."
                )
            if escaped == "u" and not re.fullmatch(r"[0-9a-fA-F]{4}", text[pos + 2 : pos + 6]):
                raise _malformed(text, pos, "Invalid string literal. Invalid unicode escape in string literal.")
            pos += 2
        elif char == "'":
            return text[start + 1 : pos], pos + 1
        else:
            pos += 1
    raise _malformed(text, start, "unexpected token: unterminated string literal")


def _decode(raw: str, *, like: bool = False) -> str | re.Pattern[str]:
    """Decode a string literal; for LIKE, build the (case-insensitive) pattern, honouring \\% and \\_."""
    out: list[str] = []
    pos = 0
    while pos < len(raw):
        char = raw[pos]
        if char == "\\":
            escaped = raw[pos + 1]
            if escaped == "u":
                literal, pos = chr(int(raw[pos + 2 : pos + 6], 16)), pos + 6
            else:
                literal, pos = _ESCAPES.get(escaped.lower(), escaped), pos + 2
            out.append(re.escape(literal) if like else literal)
            continue
        if like and char in "%_":
            out.append(".*" if char == "%" else ".")
        else:
            out.append(re.escape(char) if like else char)
        pos += 1
    if like:
        return re.compile("".join(out), re.IGNORECASE | re.DOTALL)
    return "".join(out)


def _malformed(text: str, pos: int, message: str) -> SalesforceApiError:
    return SalesforceApiError(400, "MALFORMED_QUERY", locate(text, pos, message))


# ----- the syntax tree, compiled to predicates -------------------------------------------------------
Predicate = Callable[[dict], bool]


def sort_key(field: Field) -> Callable[[Any], Any]:
    """Text compares case-insensitively in SOQL; Ids, numbers, dates and booleans as they are."""
    if field.is_text:
        return lambda value: value.casefold()
    return lambda value: value


@dataclass(frozen=True)
class Comparison:
    field: Field
    op: str
    value: object

    def compile(self) -> Predicate:
        name, op = self.field.name, self.op
        if self.value is None:
            if op == "=":
                return lambda r: r.get(name) is None
            if op == "!=":
                return lambda r: r.get(name) is not None
            return lambda r: False
        key = sort_key(self.field)
        target = key(self.value)
        if op == "=":
            return lambda r: (v := r.get(name)) is not None and key(v) == target
        if op == "!=":
            return lambda r: (v := r.get(name)) is None or key(v) != target
        if op == "<":
            return lambda r: (v := r.get(name)) is not None and key(v) < target
        if op == "<=":
            return lambda r: (v := r.get(name)) is not None and key(v) <= target
        if op == ">":
            return lambda r: (v := r.get(name)) is not None and key(v) > target
        return lambda r: (v := r.get(name)) is not None and key(v) >= target


@dataclass(frozen=True)
class InList:
    field: Field
    values: tuple[object, ...]
    negated: bool

    def compile(self) -> Predicate:
        name, key = self.field.name, sort_key(self.field)
        wanted = {key(v) for v in self.values if v is not None}
        with_null = any(v is None for v in self.values)

        def member(record: dict) -> bool:
            value = record.get(name)
            return with_null if value is None else key(value) in wanted

        if self.negated:
            return lambda r: not member(r)
        return member


@dataclass(frozen=True)
class Like:
    field: Field
    pattern: re.Pattern[str]

    def compile(self) -> Predicate:
        name, pattern = self.field.name, self.pattern
        return lambda r: (v := r.get(name)) is not None and pattern.fullmatch(v) is not None


@dataclass(frozen=True)
class Not:
    operand: Node

    def compile(self) -> Predicate:
        inner = self.operand.compile()
        return lambda r: not inner(r)


@dataclass(frozen=True)
class Junction:
    op: str  # AND | OR
    operands: tuple[Node, ...]

    def compile(self) -> Predicate:
        parts = [operand.compile() for operand in self.operands]
        if self.op == "AND":
            return lambda r: all(part(r) for part in parts)
        return lambda r: any(part(r) for part in parts)


Node = Comparison | InList | Like | Not | Junction


@dataclass(frozen=True)
class OrderItem:
    field: Field
    descending: bool = False
    nulls_first: bool = True  # Salesforce's default, whatever the direction


@dataclass(frozen=True)
class Query:
    text: str
    sobject: SObject
    fields: tuple[Field, ...]  # empty for COUNT()
    where: Node | None
    order: tuple[OrderItem, ...]
    limit: int | None
    offset: int

    @property
    def is_count(self) -> bool:
        return not self.fields

    def run(self, rows: Sequence[dict]) -> list[dict]:
        """Filter, order, offset and limit ``rows`` (the caller decides whether deleted rows are in)."""
        if self.where is not None:
            predicate = self.where.compile()
            matched = [row for row in rows if predicate(row)]
        else:
            matched = list(rows)
        for item in reversed(self.order):  # stable sorts, last key first
            name, key = item.field.name, sort_key(item.field)
            nulls = [row for row in matched if row.get(name) is None]
            present = [row for row in matched if row.get(name) is not None]
            present.sort(key=lambda row: key(row[name]), reverse=item.descending)
            matched = nulls + present if item.nulls_first else present + nulls
        if self.offset:
            matched = matched[self.offset :]
        if self.limit is not None:
            matched = matched[: self.limit]
        return matched


# ----- the parser ----------------------------------------------------------------------------------
class _Parser:
    def __init__(self, text: str, find: Callable[[str], SObject | None] = find_object):
        self.text = text
        self.find = find
        self.tokens = tokenize(text)
        self.index = 0
        self.sobject: SObject | None = None

    # token helpers
    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def at(self, *keywords: str) -> bool:
        return self.token.kind == "keyword" and self.token.value in keywords

    def at_punct(self, char: str) -> bool:
        return self.token.kind == "punct" and self.token.value == char

    def expect_keyword(self, keyword: str) -> Token:
        if not self.at(keyword):
            raise self.unexpected()
        return self.advance()

    def expect_punct(self, char: str) -> Token:
        if not self.at_punct(char):
            raise self.unexpected()
        return self.advance()

    def unexpected(self, token: Token | None = None) -> SalesforceApiError:
        token = token or self.token
        shown = "<EOF>" if token.kind == "eof" else self.text[token.pos : token.pos + max(len(token.value), 1)]
        if token.kind == "string":
            shown = f"'{token.value}'"
        return _malformed(self.text, token.pos, f"unexpected token: '{shown}'")

    def error(self, token: Token, code: str, message: str) -> SalesforceApiError:
        return SalesforceApiError(400, code, locate(self.text, token.pos, message))

    # grammar
    def parse(self) -> Query:
        self.expect_keyword("SELECT")
        field_tokens: list[Token] = []
        if self.at("COUNT"):
            self.advance()
            self.expect_punct("(")
            self.expect_punct(")")
        else:
            field_tokens.append(self.identifier())
            while self.at_punct(","):
                self.advance()
                field_tokens.append(self.identifier())
        self.expect_keyword("FROM")
        object_token = self.identifier()
        self.sobject = self.find(object_token.value)
        if self.sobject is None:
            raise self.error(
                object_token,
                "INVALID_TYPE",
                f"sObject type '{object_token.value}' is not supported. If you are attempting to use a custom "
                "object, be sure to append the '__c' after the entity name. Please reference your WSDL or the "
                "describe call for the appropriate names.",
            )
        fields: list[Field] = []
        for token in field_tokens:
            field = self.field(token)
            if field in fields:
                raise self.error(token, "MALFORMED_QUERY", f"duplicate field selected: {field.name}")
            fields.append(field)
        where = None
        if self.at("WHERE"):
            self.advance()
            where = self.condition()
        order: list[OrderItem] = []
        if self.at("ORDER"):
            self.advance()
            self.expect_keyword("BY")
            order.append(self.order_item())
            while self.at_punct(","):
                self.advance()
                order.append(self.order_item())
        limit = self.integer_clause("LIMIT")
        offset = self.integer_clause("OFFSET") or 0
        if self.token.kind != "eof":
            raise self.unexpected()
        return Query(self.text, self.sobject, tuple(fields), where, tuple(order), limit, offset)

    def identifier(self) -> Token:
        if self.token.kind != "ident":
            raise self.unexpected()
        return self.advance()

    def field(self, token: Token, *, purpose: str | None = None) -> Field:
        assert self.sobject is not None
        field = self.sobject.field(token.value)
        if field is None:
            if "." in token.value:
                message = f"Didn't understand relationship '{token.value.split('.')[0]}' in field path."
            else:
                message = (
                    f"No such column '{token.value}' on entity '{self.sobject.name}'. If you are attempting to "
                    "use a custom field, be sure to append the '__c' after the custom field name. Please "
                    "reference your WSDL or the describe call for the appropriate names."
                )
            raise self.error(token, "INVALID_FIELD", message)
        if purpose and not field.filterable:
            raise self.error(token, "INVALID_FIELD", f"field '{field.name}' can not be {purpose} in a query call")
        return field

    def integer_clause(self, keyword: str) -> int | None:
        if not self.at(keyword):
            return None
        self.advance()
        token = self.token
        if token.kind != "number" or not token.value.isdigit():
            raise self.unexpected()
        self.advance()
        return int(token.value)

    def order_item(self) -> OrderItem:
        field = self.field(self.identifier(), purpose="sorted")
        descending = False
        if self.at("ASC", "DESC"):
            descending = self.advance().value == "DESC"
        nulls_first = True
        if self.at("NULLS"):
            self.advance()
            if not self.at("FIRST", "LAST"):
                raise self.unexpected()
            nulls_first = self.advance().value == "FIRST"
        return OrderItem(field, descending, nulls_first)

    def condition(self) -> Node:
        first = self.unary()
        if not self.at("AND", "OR"):
            return first
        op = self.token.value
        operands = [first]
        while self.at(op):
            self.advance()
            operands.append(self.unary())
        if self.at("AND", "OR"):  # SOQL refuses "a AND b OR c" without parentheses
            raise self.unexpected()
        return Junction(op, tuple(operands))

    def unary(self) -> Node:
        if self.at("NOT"):
            self.advance()
            return Not(self.unary())
        if self.at_punct("("):
            self.advance()
            node = self.condition()
            self.expect_punct(")")
            return node
        return self.comparison()

    def comparison(self) -> Node:
        field = self.field(self.identifier(), purpose="filtered")
        if self.at("NOT", "IN"):
            negated = self.advance().value == "NOT"
            if negated:
                self.expect_keyword("IN")
            self.expect_punct("(")
            values = [self.literal(field)]
            while self.at_punct(","):
                self.advance()
                values.append(self.literal(field))
            self.expect_punct(")")
            return InList(field, tuple(values), negated)
        if self.at("LIKE"):
            like = self.advance()
            token = self.token
            if token.kind != "string":
                raise self.unexpected()
            if not field.is_text:
                raise self.error(like, "INVALID_QUERY_FILTER_OPERATOR", f"invalid operator on {field.type} field")
            self.advance()
            pattern = _decode(token.value, like=True)
            assert isinstance(pattern, re.Pattern)
            return Like(field, pattern)
        if self.token.kind != "op":
            raise self.unexpected()
        op_token = self.advance()
        op = "!=" if op_token.value == "<>" else op_token.value
        if op not in ("=", "!=") and field.type == "boolean":
            raise self.error(op_token, "INVALID_QUERY_FILTER_OPERATOR", "invalid operator on boolean field")
        return Comparison(field, op, self.literal(field))

    def literal(self, field: Field) -> object:
        token = self.advance()
        if token.kind == "keyword" and token.value == "NULL":
            return None
        kind = field.type
        if token.kind == "string" and (field.is_text or kind in ("id", "reference")):
            text = _decode(token.value)
            assert isinstance(text, str)
            if kind in ("id", "reference"):
                normalized = normalize_id(text)
                if normalized is None:
                    raise self.error(token, "INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {text}")
                return normalized
            return text
        if token.kind == "keyword" and token.value in ("TRUE", "FALSE") and kind == "boolean":
            return token.value == "TRUE"
        if token.kind == "number" and kind in ("double", "currency", "int"):
            return float(token.value)
        if token.kind == "datetime" and kind == "datetime":
            return parse_datetime(token.value)
        if token.kind == "date" and kind == "date":
            return parse_date(token.value)
        if token.kind in ("eof", "punct", "op", "ident") or (
            token.kind == "keyword" and token.value not in ("TRUE", "FALSE")
        ):
            raise self.unexpected(token)
        quoted = field.is_text or kind in ("id", "reference")
        expected = {"datetime": "dateTime", "id": "id", "reference": "reference"}.get(kind, field.soap_type[4:])
        raise self.error(
            token,
            "INVALID_FIELD",
            f"value of filter criterion for field '{field.name}' must be of type {expected} and should "
            f"{'' if quoted else 'not '}be enclosed in quotes",
        )


def parse(text: str, find: Callable[[str], SObject | None] = find_object) -> Query:
    """Parse a SOQL query against a schema, the standard objects by default (raises :class:`SalesforceApiError`)."""
    if not text or not text.strip():
        raise SalesforceApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
    return _Parser(text, find).parse()
