"""Skill requirements: which agents may take a queue's callers, and how well suited each is.

An agent's skills map a skill name to a proficiency level 1..10 (1 = trainee, 5 = fully
competent, 10 = expert). A requirement is a small boolean expression over those levels::

    billing >= 5 and (lang.zh >= 3 or lang.en >= 3)

It is parsed once, by the hand-written recursive-descent parser below (user text never reaches
``eval`` or Python's ``ast``), into an immutable tree that is then evaluated per agent. Pure: no
I/O, no clock, no randomness. The grammar, the missing-skill rule and the score are documented in
docs/skills.md; keep the two in step.
"""

from __future__ import annotations

import difflib
import operator
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import NoReturn, TypeAlias

# ---- skills ----------------------------------------------------------------------------------

MIN_LEVEL = 1  # trainee: an agent holding a skill at all holds it at level 1 or more
COMPETENT_LEVEL = 5  # fully competent: works the skill unassisted
MAX_LEVEL = 10  # expert
# Requirements may also name 0, so that `billing > 0` reads naturally; no agent is at level 0.
MIN_REQUIRED_LEVEL = 0

SKILL_NAME = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*")
# Words the expression language gives a meaning; a skill with such a name could never be named
# in a requirement. `false` is kept back so that it can be added without breaking anyone.
RESERVED_WORDS: frozenset[str] = frozenset({"and", "or", "not", "has", "true", "false"})

Skills: TypeAlias = Mapping[str, int]
"""An agent's skills: skill name -> proficiency level (MIN_LEVEL..MAX_LEVEL)."""


class SkillError(ValueError):
    """An agent's skill mapping (or a known-skills list) is malformed."""


def skill_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a skill name, or None if it can."""
    if not isinstance(name, str) or SKILL_NAME.fullmatch(name) is None:
        return (
            f"invalid skill name {name!r} (lowercase letters, digits and '_', starting with a "
            "letter, in dot-separated parts like 'lang.zh')"
        )
    if name in RESERVED_WORDS:
        return f"reserved word {name!r} cannot be a skill name"
    return None


def check_skills(raw: Mapping[str, object]) -> dict[str, int]:
    """Validate an agent's skills (e.g. from a login command) and return a plain copy."""
    if not isinstance(raw, Mapping):
        raise SkillError(f"skills must be a mapping of skill name to level, got {raw!r}")
    checked: dict[str, int] = {}
    for name, level in raw.items():
        problem = skill_name_problem(name)
        if problem is not None:
            raise SkillError(problem)
        # bool is an int in Python; `billing: true` in YAML is a mistake, not level 1.
        if not isinstance(level, int) or isinstance(level, bool) or not MIN_LEVEL <= level <= MAX_LEVEL:
            raise SkillError(
                f"skill {name!r}: level must be an integer {MIN_LEVEL}..{MAX_LEVEL} "
                f"({MIN_LEVEL} = trainee, {COMPETENT_LEVEL} = fully competent, {MAX_LEVEL} = expert), "
                f"got {level!r}"
            )
        checked[name] = level
    return checked


def check_known_skills(names: Iterable[str]) -> frozenset[str]:
    """Validate a configured list of skill names (the vocabulary requirements may use)."""
    if isinstance(names, str):
        # A bare string would iterate as letters and fail confusingly below.
        raise SkillError(f"known skills must be a collection of names, not the string {names!r}")
    known = frozenset(names)
    for name in sorted(known, key=str):
        problem = skill_name_problem(name)
        if problem is not None:
            raise SkillError(problem)
    return known


# ---- errors ----------------------------------------------------------------------------------


class RequirementError(ValueError):
    """An expression (a requirement, or a widening-step condition) could not be parsed.

    ``str(error)`` is three lines: what was expected and the 1-based column, the source text,
    and a caret under that column, so a configuration error can be shown as it is.
    """

    def __init__(self, reason: str, text: str, column: int) -> None:
        self.reason = reason
        self.text = text
        self.column = column
        super().__init__(f"{reason} at column {column}\n{caret_display(text, column)}")


def caret_display(text: str, column: int) -> str:
    # Tabs and newlines (e.g. from a folded YAML string) would misplace the caret: show them as
    # spaces, which keeps one display cell per character and so per column.
    flat = re.sub(r"\s", " ", text)
    return f"  {flat}\n  {' ' * (column - 1)}^"


# ---- the tree --------------------------------------------------------------------------------


class Requirement(ABC):
    """A parsed requirement: an immutable tree, compared and hashed by structure."""

    @abstractmethod
    def matches(self, skills: Skills) -> bool:
        """Whether an agent with ``skills`` satisfies the requirement."""

    @abstractmethod
    def qualifying_skills(self, skills: Skills) -> frozenset[str] | None:
        """The skills the agent qualifies through, or None if it does not match.

        Comparisons and has() contribute their skill; `and` the union of its operands; `or` its
        best-scoring satisfied operand (the first one on a tie); `not` and `true` nothing, since
        lacking a skill is no proficiency.
        """

    @abstractmethod
    def describe(self) -> str:
        """The canonical text: parse_requirement(r.describe()) == r for every requirement."""

    @abstractmethod
    def referenced_skills(self) -> frozenset[str]:
        """Every skill name the expression mentions (e.g. to index agents by skill)."""

    def score(self, skills: Skills) -> int | None:
        """Proficiency score for best-proficiency routing: the sum of the agent's levels over
        ``qualifying_skills``; None if the agent does not match. Higher is better."""
        used = self.qualifying_skills(skills)
        if used is None:
            return None
        return sum(skills[name] for name in used)

    def __str__(self) -> str:
        return self.describe()


def _checked_skill(name: str) -> str:
    problem = skill_name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    return name


@dataclass(frozen=True)
class Always(Requirement):
    """`true`: any agent of the queue, whatever its skills."""

    def matches(self, skills: Skills) -> bool:
        return True

    def qualifying_skills(self, skills: Skills) -> frozenset[str] | None:
        return frozenset()

    def describe(self) -> str:
        return "true"

    def referenced_skills(self) -> frozenset[str]:
        return frozenset()


@dataclass(frozen=True)
class Has(Requirement):
    """`has(skill)`: the agent holds the skill, at any level."""

    skill: str

    def __post_init__(self) -> None:
        _checked_skill(self.skill)

    def matches(self, skills: Skills) -> bool:
        return self.skill in skills

    def qualifying_skills(self, skills: Skills) -> frozenset[str] | None:
        return frozenset({self.skill}) if self.skill in skills else None

    def describe(self) -> str:
        return f"has({self.skill})"

    def referenced_skills(self) -> frozenset[str]:
        return frozenset({self.skill})


COMPARISONS: dict[str, Callable[[int, int], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class Compare(Requirement):
    """`skill OP level`. False for an agent lacking the skill, whatever OP is: a missing skill
    is not level 0 (so `lang.zh < 3` does not select agents who speak no Chinese at all)."""

    skill: str
    op: str
    level: int

    def __post_init__(self) -> None:
        _checked_skill(self.skill)
        if self.op not in COMPARISONS:
            raise ValueError(f"unknown comparison {self.op!r} (one of {', '.join(COMPARISONS)})")
        if not isinstance(self.level, int) or isinstance(self.level, bool):
            raise TypeError(f"level must be an int, got {self.level!r}")
        if not MIN_REQUIRED_LEVEL <= self.level <= MAX_LEVEL:
            raise ValueError(f"level {self.level} is out of range {MIN_REQUIRED_LEVEL}..{MAX_LEVEL}")

    def matches(self, skills: Skills) -> bool:
        level = skills.get(self.skill)
        return level is not None and COMPARISONS[self.op](level, self.level)

    def qualifying_skills(self, skills: Skills) -> frozenset[str] | None:
        return frozenset({self.skill}) if self.matches(skills) else None

    def describe(self) -> str:
        return f"{self.skill} {self.op} {self.level}"

    def referenced_skills(self) -> frozenset[str]:
        return frozenset({self.skill})


@dataclass(frozen=True)
class Not(Requirement):
    operand: Requirement

    def matches(self, skills: Skills) -> bool:
        return not self.operand.matches(skills)

    def qualifying_skills(self, skills: Skills) -> frozenset[str] | None:
        return frozenset() if self.matches(skills) else None

    def describe(self) -> str:
        # `not` binds tightest, so only a compound operand needs parentheses.
        inner = self.operand.describe()
        return f"not ({inner})" if isinstance(self.operand, (And, Or)) else f"not {inner}"

    def referenced_skills(self) -> frozenset[str]:
        return self.operand.referenced_skills()


def _check_operands(node: And | Or) -> None:
    # Flat trees are what makes describe() canonical and the round trip exact: `a and (b and c)`
    # and `(a and b) and c` are one tree, so they must not be two. all_of/any_of flatten.
    if len(node.operands) < 2:
        raise ValueError(f"{type(node).__name__} needs at least two operands")
    if any(isinstance(op, type(node)) for op in node.operands):
        raise ValueError(f"{type(node).__name__} operands must not nest directly; use all_of/any_of")


def _joined(operands: tuple[Requirement, ...], word: str, wrap: type | tuple[type, ...]) -> str:
    parts = (f"({op.describe()})" if isinstance(op, wrap) else op.describe() for op in operands)
    return f" {word} ".join(parts)


@dataclass(frozen=True)
class And(Requirement):
    operands: tuple[Requirement, ...]

    def __post_init__(self) -> None:
        _check_operands(self)

    def matches(self, skills: Skills) -> bool:
        return all(op.matches(skills) for op in self.operands)

    def qualifying_skills(self, skills: Skills) -> frozenset[str] | None:
        used: set[str] = set()
        for op in self.operands:
            part = op.qualifying_skills(skills)
            if part is None:
                return None
            used |= part
        # A union, not a sum: `billing >= 5 and billing <= 8` counts billing once.
        return frozenset(used)

    def describe(self) -> str:
        return _joined(self.operands, "and", Or)

    def referenced_skills(self) -> frozenset[str]:
        return frozenset().union(*(op.referenced_skills() for op in self.operands))


@dataclass(frozen=True)
class Or(Requirement):
    operands: tuple[Requirement, ...]

    def __post_init__(self) -> None:
        _check_operands(self)

    def matches(self, skills: Skills) -> bool:
        return any(op.matches(skills) for op in self.operands)

    def qualifying_skills(self, skills: Skills) -> frozenset[str] | None:
        best: frozenset[str] | None = None
        best_score = -1
        for op in self.operands:
            part = op.qualifying_skills(skills)
            if part is None:
                continue
            part_score = sum(skills[name] for name in part)
            if part_score > best_score:  # strict: the first branch wins a tie, deterministically
                best, best_score = part, part_score
        return best

    def describe(self) -> str:
        # And binds tighter than Or, and Or cannot nest in Or: no operand needs parentheses.
        return _joined(self.operands, "or", ())

    def referenced_skills(self) -> frozenset[str]:
        return frozenset().union(*(op.referenced_skills() for op in self.operands))


ANY_AGENT = Always()


def all_of(*requirements: Requirement) -> Requirement:
    """`a and b and ...`, flattened; one operand is returned as is (e.g. to add a call's
    language requirement to its queue's)."""
    return _combine(And, requirements)


def any_of(*requirements: Requirement) -> Requirement:
    """`a or b or ...`, flattened; one operand is returned as is."""
    return _combine(Or, requirements)


def _combine(kind: type[And | Or], requirements: Iterable[Requirement]) -> Requirement:
    flat: list[Requirement] = []
    for req in requirements:
        flat.extend(req.operands if isinstance(req, kind) else (req,))
    if not flat:
        raise ValueError(f"{kind.__name__} of nothing")
    return flat[0] if len(flat) == 1 else kind(tuple(flat))


# ---- the lexer (shared with widening-step conditions) ----------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # "word", "number", "op", "(", ")" or "end"
    text: str
    column: int  # 1-based, into the source text


# Words are lexed more loosely than skill names (capitals, trailing dots) so that a near-miss
# gets "invalid skill name 'Billing'" instead of "unexpected character 'B'".
_TOKEN = re.compile(
    r"(?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]*)*)"
    r"|(?P<number>-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"|(?P<op>>=|<=|==|!=|>|<)"
    r"|(?P<paren>[()])"
)


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with one "end" token; RequirementError on a stray
    character."""
    tokens: list[Token] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            tokens.append(Token("end", "", pos + 1))
            return tokens
        match = _TOKEN.match(text, pos)
        if match is None:
            char = text[pos]
            hint = " (use '==')" if char == "=" else ""
            raise RequirementError(f"unexpected character {char!r}{hint}", text, pos + 1)
        kind = match.lastgroup
        assert kind is not None
        value = match.group()
        tokens.append(Token(value if kind == "paren" else kind, value, pos + 1))
        pos = match.end()


# ---- the parser ------------------------------------------------------------------------------
#
#   requirement = or_expr ;
#   or_expr     = and_expr , { "or" , and_expr } ;
#   and_expr    = not_expr , { "and" , not_expr } ;
#   not_expr    = "not" , not_expr | primary ;
#   primary     = "true" | "has" , "(" , skill , ")" | skill , op , level | "(" , or_expr , ")" ;


def parse_requirement(text: str, known_skills: Collection[str] | None = None) -> Requirement:
    """Parse ``text`` once into an immutable Requirement.

    With ``known_skills``, every skill the expression names must be one of them (a typo would
    otherwise silently match no agent). Raises RequirementError.
    """
    if not isinstance(text, str):
        raise TypeError(f"a requirement must be a string, got {text!r}")
    known = None if known_skills is None else check_known_skills(known_skills)
    return _Parser(text, known).parse()


_PRIMARY_EXPECTED = "expected a requirement (a skill comparison, has(...), true, not or '(')"


class _Parser:
    def __init__(self, text: str, known_skills: frozenset[str] | None) -> None:
        self.text = text
        self.known_skills = known_skills
        self.tokens = tokenize(text)
        self.pos = 0

    def parse(self) -> Requirement:
        tree = self.or_expr()
        token = self.peek()
        if token.kind == ")":
            self.fail("unmatched ')'", token)
        if token.kind != "end":
            self.fail("expected 'and', 'or' or the end of the requirement", token)
        return tree

    def or_expr(self) -> Requirement:
        operands = [self.and_expr()]
        while self.accept_word("or"):
            operands.append(self.and_expr())
        return any_of(*operands)

    def and_expr(self) -> Requirement:
        operands = [self.not_expr()]
        while self.accept_word("and"):
            operands.append(self.not_expr())
        return all_of(*operands)

    def not_expr(self) -> Requirement:
        if self.accept_word("not"):
            return Not(self.not_expr())
        return self.primary()

    def primary(self) -> Requirement:
        token = self.peek()
        if token.kind == "(":
            self.advance()
            inner = self.or_expr()
            self.expect(")", "expected 'and', 'or' or ')'")
            return inner
        if token.kind != "word" or token.text in ("and", "or"):
            self.fail(_PRIMARY_EXPECTED, token)
        self.advance()
        if token.text == "true":
            return ANY_AGENT
        if token.text == "has":
            self.expect("(", "expected '(' after 'has'")
            skill = self.skill(self.advance())
            self.expect(")", "expected ')' after the skill name")
            return Has(skill)
        skill = self.skill(token)
        op = self.peek()
        if op.kind != "op":
            self.fail(f"expected a comparison (>=, >, <=, <, ==, !=) after {skill!r}", op)
        self.advance()
        return Compare(skill, op.text, self.level(op))

    def skill(self, token: Token) -> str:
        if token.kind != "word":
            self.fail("expected a skill name", token)
        problem = skill_name_problem(token.text)
        if problem is not None:
            self.fail(problem, token)
        if self.known_skills is not None and token.text not in self.known_skills:
            self.fail(unknown_skill_reason(token.text, self.known_skills), token)
        return token.text

    def level(self, op: Token) -> int:
        token = self.advance()
        if token.kind != "number" or not re.fullmatch(r"-?[0-9]+", token.text):
            self.fail(f"expected an integer level after {op.text!r}", token)
        level = int(token.text)
        if not MIN_REQUIRED_LEVEL <= level <= MAX_LEVEL:
            self.fail(f"level {level} is out of range {MIN_REQUIRED_LEVEL}..{MAX_LEVEL}", token)
        return level

    # -- token helpers --

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def advance(self) -> Token:
        token = self.tokens[self.pos]
        if token.kind != "end":  # the end token stays put, so errors can point at it
            self.pos += 1
        return token

    def accept_word(self, word: str) -> bool:
        token = self.peek()
        if token.kind == "word" and token.text == word:
            self.advance()
            return True
        return False

    def expect(self, kind: str, reason: str) -> Token:
        token = self.peek()
        if token.kind != kind:
            self.fail(reason, token)
        return self.advance()

    def fail(self, reason: str, token: Token) -> NoReturn:
        raise RequirementError(reason, self.text, token.column)


def unknown_skill_reason(name: str, known: Collection[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)  # deterministic: sorted input
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown skill {name!r}{hint}"
