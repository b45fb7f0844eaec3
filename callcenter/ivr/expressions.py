"""The small languages inside flow files: ``${var}`` templates, branch conditions, and the regexes
they (and input nodes) use. Hand-written parsers, no ``eval``: a flow file is configuration, and a
condition must never be able to run code or reach the AGI/AMI command line.

Every error carries the 0-based offset in the text it is about, so the loader can point at the
column inside a YAML string.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache

# Names a flow may give its variables: short, lowercase, safe as part of a channel variable name
# (they reach the dialplan as CC_VAR_<name>).
VARIABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# The caller's number, read-only: templates and conditions may read it, no node may set it.
CALLER = "caller"
# Input patterns run against digits only: this syntax (digits, *, #, classes, counts, groups,
# alternation, \d and escapes) is all a digit pattern needs and leaves out everything else.
SAFE_DIGIT_PATTERN = re.compile(r"^[0-9*#\[\]\-{},?+|()\\d^$]+$")
MAX_PATTERN_LENGTH = 200
_QUANTIFIERS = "+*{"


class ExpressionError(ValueError):
    """A template, condition or pattern that does not parse; ``offset`` is where, 0-based."""

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


# --------------------------------------------------------------------------------- patterns


def check_pattern(pattern: str, *, digits_only: bool) -> re.Pattern[str]:
    """Compile a flow's regex, refusing what could make matching slow or surprising.

    A group that is itself repeated (``(...)+``, ``(...){2,}``) may contain neither a quantifier
    nor '|': that is what nested-quantifier backtracking needs, and a flow could otherwise hang the
    engine's event loop on a 32-digit answer or a long caller ID.
    """
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ExpressionError(f"pattern is longer than {MAX_PATTERN_LENGTH} characters", MAX_PATTERN_LENGTH)
    if digits_only and not SAFE_DIGIT_PATTERN.match(pattern):
        bad = next(i for i, c in enumerate(pattern) if not SAFE_DIGIT_PATTERN.match(c))
        raise ExpressionError(f"{pattern[bad]!r} is not allowed in a digit pattern (allowed: 0-9 * # "
                              "[ ] - { } , ? + | ( ) ^ $ and \\d)", bad)
    _check_repeated_groups(pattern)
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ExpressionError(f"invalid pattern: {exc.msg}", exc.pos or 0) from None


def _check_repeated_groups(pattern: str) -> None:
    opened: list[tuple[int, bool]] = []  # (offset of '(', whether it holds a quantifier or '|')
    escaped = False
    for i, char in enumerate(pattern):
        if escaped:
            escaped = False
            continue
        if char == "\\":
            escaped = True
        elif char == "(":
            opened.append((i, False))
        elif char == ")" and opened:
            start, risky = opened.pop()
            if risky and pattern[i + 1: i + 2] in tuple(_QUANTIFIERS):
                raise ExpressionError("a repeated group must not contain a quantifier or '|' "
                                      "(it could take exponential time to match)", start)
            if opened:  # whatever the inner group holds, the outer one holds too
                opened[-1] = (opened[-1][0], opened[-1][1] or risky)
        elif char in "+*{?|" and opened:
            opened[-1] = (opened[-1][0], True)


# -------------------------------------------------------------------------------- templates

_TEMPLATE_REF = re.compile(r"\$\{([^}]*)\}")


def template_references(text: str) -> Iterator[tuple[str, int]]:
    """(variable name, offset) for every ``${name}`` in ``text``; ExpressionError if malformed.
    A '$' not followed by '{' is just a character."""
    position = 0
    while (start := text.find("${", position)) != -1:
        match = _TEMPLATE_REF.match(text, start)
        if match is None:
            raise ExpressionError("'${' without a closing '}'", start)
        name = match.group(1)
        if name != CALLER and not VARIABLE_NAME.match(name):
            raise ExpressionError(f"{name!r} is not a variable name (lowercase letter, then lowercase "
                                  "letters, digits or '_', at most 32)", start + 2)
        yield name, start + 2
        position = match.end()


def render_template(text: str, lookup: Callable[[str], str]) -> str:
    """``text`` with each ``${name}`` replaced by ``lookup(name)``, once: a value that itself looks
    like ``${...}`` stays as it is (values are data, never re-read as templates)."""
    return _TEMPLATE_REF.sub(lambda m: lookup(m.group(1)), text)


# ------------------------------------------------------------------------------- conditions


@dataclass(frozen=True)
class Compare:
    """``name op value``; ``values`` has one item except for ``in``."""

    name: str
    op: str  # ==, !=, in, matches, starts_with
    values: tuple[str, ...]
    regex: re.Pattern[str] | None = None


@dataclass(frozen=True)
class Not:
    operand: Condition


@dataclass(frozen=True)
class BoolOp:
    op: str  # and, or
    operands: tuple[Condition, ...]


Condition = Compare | Not | BoolOp

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op>==|!=)
  | (?P<punct>[()\[\],])
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
""", re.VERBOSE)
_WORD_OPERATORS = ("in", "matches", "starts_with")
_KEYWORDS = frozenset({"and", "or", "not", *_WORD_OPERATORS})


@dataclass(frozen=True)
class _Token:
    kind: str  # string, op, punct, word, end
    text: str
    offset: int


def _tokens(text: str) -> list[_Token]:
    found: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ExpressionError(f"unexpected {text[position]!r}", position)
        kind = match.lastgroup or ""
        if kind != "space":
            found.append(_Token(kind, match.group(), position))
        position = match.end()
    found.append(_Token("end", "", len(text)))
    return found


class _Parser:
    """Recursive descent: or > and > not > comparison / parentheses (the usual precedence)."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.index = 0
        self.depth = 0

    def parse(self) -> Condition:
        condition = self._or()
        token = self._peek()
        if token.kind != "end":
            raise ExpressionError(f"expected 'and', 'or' or the end, got {token.text!r}", token.offset)
        return condition

    def _peek(self) -> _Token:
        return self.tokens[self.index]

    def _take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def _is(self, kind: str, text: str) -> bool:
        token = self._peek()
        return token.kind == kind and token.text == text

    def _or(self) -> Condition:
        return self._chain("or", self._and)

    def _and(self) -> Condition:
        return self._chain("and", self._not)

    def _chain(self, op: str, operand: Callable[[], Condition]) -> Condition:
        operands = [operand()]
        while self._is("word", op):
            self._take()
            operands.append(operand())
        return operands[0] if len(operands) == 1 else BoolOp(op, tuple(operands))

    def _not(self) -> Condition:
        if self._is("word", "not"):
            self._take()
            return Not(self._not())
        if self._is("punct", "("):
            opening = self._take()
            self.depth += 1
            if self.depth > 32:  # bounds the recursion a hostile file could cause
                raise ExpressionError("parentheses nested too deep", opening.offset)
            inner = self._or()
            if not self._is("punct", ")"):
                raise ExpressionError(f"expected ')' to close the '(' at column {opening.offset + 1}",
                                      self._peek().offset)
            self._take()
            self.depth -= 1
            return inner
        return self._compare()

    def _compare(self) -> Compare:
        name = self._take()
        if name.kind != "word" or name.text in _KEYWORDS:
            raise ExpressionError(f"expected a variable name, got {name.text or 'the end'!r}", name.offset)
        if name.text != CALLER and not VARIABLE_NAME.match(name.text):
            raise ExpressionError(f"{name.text!r} is not a variable name", name.offset)
        op = self._take()
        if not (op.kind == "op" or (op.kind == "word" and op.text in _WORD_OPERATORS)):
            raise ExpressionError("expected ==, !=, in, matches or starts_with, got "
                                  f"{op.text or 'the end'!r}", op.offset)
        if op.text == "in":
            return Compare(name.text, "in", self._list())
        value = self._string()
        regex = None
        if op.text == "matches":
            try:
                regex = check_pattern(value.text, digits_only=False)
            except ExpressionError as exc:
                raise ExpressionError(exc.message, value.offset + 1 + exc.offset) from None
        return Compare(name.text, op.text, (value.text,), regex)

    def _list(self) -> tuple[str, ...]:
        if not self._is("punct", "["):
            raise ExpressionError("expected '[' after 'in'", self._peek().offset)
        self._take()
        values = [self._string().text]
        while self._is("punct", ","):
            self._take()
            values.append(self._string().text)
        if not self._is("punct", "]"):
            raise ExpressionError("expected ',' or ']'", self._peek().offset)
        self._take()
        return tuple(values)

    def _string(self) -> _Token:
        token = self._take()
        if token.kind != "string":
            raise ExpressionError(f"expected a quoted string, got {token.text or 'the end'!r}", token.offset)
        # Only \" \' and \\ are escapes; a backslash before anything else stays (regexes need \d).
        body = re.sub(r"\\([\"'\\])", r"\1", token.text[1:-1])
        return _Token("string", body, token.offset)


@lru_cache(maxsize=1024)
def parse_condition(text: str) -> Condition:
    """Parse a branch condition (cached: the loader checks it once, every call then reuses it)."""
    if len(text) > 1000:
        raise ExpressionError("condition is longer than 1000 characters", 1000)
    return _Parser(text).parse()


def condition_names(condition: Condition) -> Iterator[str]:
    """Every variable name the condition reads."""
    match condition:
        case Compare():
            yield condition.name
        case Not():
            yield from condition_names(condition.operand)
        case BoolOp():
            for operand in condition.operands:
                yield from condition_names(operand)


def evaluate(condition: Condition, variables: Mapping[str, str]) -> bool:
    """Whether ``condition`` holds; a variable not in ``variables`` is the empty string."""
    match condition:
        case Compare(name=name, op=op, values=values, regex=regex):
            value = variables.get(name, "")
            if op == "==":
                return value == values[0]
            if op == "!=":
                return value != values[0]
            if op == "in":
                return value in values
            if op == "starts_with":
                return value.startswith(values[0])
            assert regex is not None
            return regex.fullmatch(value) is not None
        case Not(operand=operand):
            return not evaluate(operand, variables)
        case BoolOp(op="and", operands=operands):
            return all(evaluate(o, variables) for o in operands)
        case BoolOp(operands=operands):
            return any(evaluate(o, variables) for o in operands)
    raise TypeError(f"not a condition: {condition!r}")  # pragma: no cover
