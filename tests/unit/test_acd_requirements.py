"""Unit tests for skill requirements (parser, missing-skill semantics, precedence, canonical
describe, score) and widening steps (validation, active requirement, timers), plus a seeded
random check of the parser and evaluator against a reference evaluator written here."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from callcenter.acd.requirements import (
    ANY_AGENT,
    And,
    Compare,
    Has,
    Not,
    Or,
    RequirementError,
    SkillError,
    all_of,
    any_of,
    check_known_skills,
    check_skills,
    parse_requirement,
)
from callcenter.acd.steps import (
    Condition,
    MetricStep,
    StepsError,
    TimeStep,
    active_requirement,
    active_requirement_at,
    active_step,
    next_change_at,
    parse_condition,
    validate_steps,
)


def req(text: str) -> Any:
    return parse_requirement(text)


# ---- parsing: happy paths ----------------------------------------------------------------------


def test_parses_the_example_into_the_expected_tree() -> None:
    tree = req("billing >= 5 and (lang.zh >= 3 or lang.en >= 3)")
    assert tree == And((
        Compare("billing", ">=", 5),
        Or((Compare("lang.zh", ">=", 3), Compare("lang.en", ">=", 3))),
    ))


@pytest.mark.parametrize("op", [">=", ">", "<=", "<", "==", "!="])
def test_every_comparison_operator(op: str) -> None:
    assert req(f"vip {op} 4") == Compare("vip", op, 4)


def test_literals_has_and_whitespace_do_not_matter() -> None:
    assert req("true") == ANY_AGENT
    assert req("has(lang.zh)") == Has("lang.zh")
    assert req("  has ( lang.zh )  ") == Has("lang.zh")
    assert req("billing>=5") == req("billing >= 5") == req("\tbilling\n>=  5")
    assert req("((billing >= 0))") == Compare("billing", ">=", 0)
    assert req("billing <= 10") == Compare("billing", "<=", 10)


def test_known_skills_accept_listed_names() -> None:
    tree = parse_requirement("billing >= 5 or has(lang.zh)", known_skills={"billing", "lang.zh"})
    assert tree == Or((Compare("billing", ">=", 5), Has("lang.zh")))


def test_referenced_skills() -> None:
    tree = req("billing >= 5 and not (has(vip) or lang.zh < 3) or true")
    assert tree.referenced_skills() == {"billing", "vip", "lang.zh"}


# ---- parsing: errors ---------------------------------------------------------------------------

INVALID_NAME = (
    "invalid skill name {!r} (lowercase letters, digits and '_', starting with a letter, "
    "in dot-separated parts like 'lang.zh')"
)
EXPECTED_REQUIREMENT = "expected a requirement (a skill comparison, has(...), true, not or '(')"
ERRORS = [
    ("billing >= x", "expected an integer level after '>=' at column 12"),
    ("billing >=", "expected an integer level after '>=' at column 11"),
    ("billing < 2.5", "expected an integer level after '<' at column 11"),
    ("billing >= 11", "level 11 is out of range 0..10 at column 12"),
    ("billing >= -1", "level -1 is out of range 0..10 at column 12"),
    ("billing", "expected a comparison (>=, >, <=, <, ==, !=) after 'billing' at column 8"),
    ("billing has(vip)", "expected a comparison (>=, >, <=, <, ==, !=) after 'billing' at column 9"),
    ("billing = 3", "unexpected character '=' (use '==') at column 9"),
    ("billing >= 3 & vip > 1", "unexpected character '&' at column 14"),
    ("", f"{EXPECTED_REQUIREMENT} at column 1"),
    ("   ", f"{EXPECTED_REQUIREMENT} at column 4"),
    ("billing >= 3 and", f"{EXPECTED_REQUIREMENT} at column 17"),
    ("or vip > 1", f"{EXPECTED_REQUIREMENT} at column 1"),
    ("not", f"{EXPECTED_REQUIREMENT} at column 4"),
    ("5 <= billing", f"{EXPECTED_REQUIREMENT} at column 1"),
    ("billing >= 3)", "unmatched ')' at column 13"),
    ("(billing >= 3", "expected 'and', 'or' or ')' at column 14"),
    ("(billing >= 3 vip > 1)", "expected 'and', 'or' or ')' at column 15"),
    ("billing >= 3 vip > 1", "expected 'and', 'or' or the end of the requirement at column 14"),
    ("true >= 3", "expected 'and', 'or' or the end of the requirement at column 6"),
    ("has billing", "expected '(' after 'has' at column 5"),
    ("has()", "expected a skill name at column 5"),
    ("has(billing", "expected ')' after the skill name at column 12"),
    ("has(billing >= 3)", "expected ')' after the skill name at column 13"),
    ("has(true)", "reserved word 'true' cannot be a skill name at column 5"),
    ("false", "reserved word 'false' cannot be a skill name at column 1"),
    ("Billing >= 3", INVALID_NAME.format("Billing") + " at column 1"),
    ("vip > 1 and lang. >= 3", INVALID_NAME.format("lang.") + " at column 13"),
    ("lang..zh >= 3", INVALID_NAME.format("lang..zh") + " at column 1"),
]


@pytest.mark.parametrize("text, message", ERRORS)
def test_error_message_and_column(text: str, message: str) -> None:
    with pytest.raises(RequirementError) as caught:
        parse_requirement(text)
    assert str(caught.value).splitlines()[0] == message
    assert caught.value.text == text
    assert message.endswith(f" at column {caught.value.column}")


def test_error_shows_the_text_with_a_caret_under_the_column() -> None:
    with pytest.raises(RequirementError) as caught:
        parse_requirement("billing >= x")
    assert str(caught.value) == (
        "expected an integer level after '>=' at column 12\n"
        "  billing >= x\n"
        "             ^"
    )
    assert caught.value.reason == "expected an integer level after '>='"
    assert caught.value.column == 12


def test_caret_stays_aligned_with_tabs_and_newlines() -> None:
    with pytest.raises(RequirementError) as caught:
        parse_requirement("vip > 1 and\n\tlang.zh >= x")
    _, source, caret = str(caught.value).splitlines()
    assert source == "  vip > 1 and  lang.zh >= x"
    assert caret.index("^") == source.index("x")


def test_unknown_skill_is_named_with_a_suggestion() -> None:
    known = {"billing", "lang.zh", "lang.en"}
    with pytest.raises(RequirementError) as caught:
        parse_requirement("lang.zh >= 3 and biling >= 5", known_skills=known)
    assert caught.value.reason == "unknown skill 'biling' (did you mean 'billing'?)"
    assert caught.value.column == 18
    with pytest.raises(RequirementError) as caught:
        parse_requirement("has(vip)", known_skills=known)
    assert caught.value.reason == "unknown skill 'vip'"
    assert caught.value.column == 5


def test_not_a_string() -> None:
    with pytest.raises(TypeError, match="must be a string"):
        parse_requirement(5)  # type: ignore[arg-type]


# ---- skills mappings ---------------------------------------------------------------------------


def test_check_skills_accepts_levels_1_to_10() -> None:
    assert check_skills({"billing": 1, "lang.zh": 10, "vip": 5}) == {"billing": 1, "lang.zh": 10, "vip": 5}


@pytest.mark.parametrize(
    "skills, fragment",
    [
        ({"billing": 0}, "level must be an integer 1..10"),
        ({"billing": 11}, "got 11"),
        ({"billing": True}, "got True"),
        ({"billing": 5.0}, "got 5.0"),
        ({"Billing": 5}, "invalid skill name 'Billing'"),
        ({"and": 5}, "reserved word 'and'"),
        (["billing"], "must be a mapping"),
    ],
)
def test_check_skills_refuses(skills: Any, fragment: str) -> None:
    with pytest.raises(SkillError) as caught:
        check_skills(skills)
    assert fragment in str(caught.value)


def test_known_skills_are_validated() -> None:
    assert check_known_skills(["vip", "lang.zh"]) == {"vip", "lang.zh"}
    with pytest.raises(SkillError, match="not the string"):
        check_known_skills("vip")
    with pytest.raises(SkillError, match="invalid skill name 'Vip'"):
        parse_requirement("true", known_skills={"Vip"})


# ---- missing skill is not level 0 --------------------------------------------------------------

NO_CHINESE = {"billing": 6, "lang.en": 4}
SOME_CHINESE = {"billing": 6, "lang.zh": 2}


@pytest.mark.parametrize(
    "text, without, with_level_2",
    [
        ("lang.zh < 3", False, True),
        ("lang.zh <= 3", False, True),
        ("lang.zh != 5", False, True),
        ("lang.zh == 2", False, True),
        ("lang.zh >= 0", False, True),
        ("lang.zh > 0", False, True),
        ("has(lang.zh)", False, True),
        ("not has(lang.zh)", True, False),
        ("not lang.zh >= 3", True, True),
        ("not lang.zh < 3", True, False),
        ("true", True, True),
    ],
)
def test_missing_skill_semantics(text: str, without: bool, with_level_2: bool) -> None:
    tree = req(text)
    assert tree.matches(NO_CHINESE) is without
    assert tree.matches(SOME_CHINESE) is with_level_2


# ---- precedence: not > and > or ----------------------------------------------------------------


def test_and_binds_tighter_than_or() -> None:
    a, b, c = Compare("a", ">=", 1), Compare("b", ">=", 1), Compare("c", ">=", 1)
    assert req("a >= 1 or b >= 1 and c >= 1") == Or((a, And((b, c))))
    assert req("a >= 1 and b >= 1 or c >= 1") == Or((And((a, b)), c))
    # Observable, not just structural: only c holds.
    assert req("a >= 1 and b >= 1 or c >= 1").matches({"c": 1})
    assert not req("a >= 1 and (b >= 1 or c >= 1)").matches({"c": 1})


def test_not_binds_tighter_than_and() -> None:
    a, b = Compare("a", ">=", 1), Compare("b", ">=", 1)
    assert req("not a >= 1 and b >= 1") == And((Not(a), b))
    assert req("not (a >= 1 and b >= 1)") == Not(And((a, b)))
    assert req("not a >= 1 and b >= 1").matches({"b": 1}) is True
    assert req("not (a >= 1 and b >= 1)").matches({"a": 1, "b": 1}) is False
    assert req("not not has(a)") == Not(Not(Has("a")))


def test_same_operator_groups_flatten() -> None:
    flat = req("a >= 1 and b >= 1 and c >= 1")
    assert req("(a >= 1 and b >= 1) and c >= 1") == flat
    assert req("a >= 1 and (b >= 1 and c >= 1)") == flat
    assert len(flat.operands) == 3


# ---- describe ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, canonical",
    [
        ("billing>=5 and(lang.zh>=3 or lang.en>=3)", "billing >= 5 and (lang.zh >= 3 or lang.en >= 3)"),
        ("(billing >= 5) or (vip == 10)", "billing >= 5 or vip == 10"),
        ("(a >= 1 and b >= 1) or c >= 1", "a >= 1 and b >= 1 or c >= 1"),
        ("not (has(vip))", "not has(vip)"),
        ("not (a > 1 or b > 1)", "not (a > 1 or b > 1)"),
        ("not(a > 1 and b > 1)", "not (a > 1 and b > 1)"),
        ("((true))", "true"),
        ("a >= 05", "a >= 5"),
    ],
)
def test_describe_is_canonical_and_round_trips(text: str, canonical: str) -> None:
    tree = req(text)
    assert tree.describe() == canonical
    assert str(tree) == canonical
    assert req(tree.describe()) == tree


def test_describe_round_trips_constructed_trees() -> None:
    tree = all_of(
        any_of(Compare("a", "<", 3), Not(all_of(Has("b"), Compare("c", "!=", 0)))),
        Not(Not(any_of(Has("d"), ANY_AGENT))),
    )
    assert tree.describe() == "(a < 3 or not (has(b) and c != 0)) and not not (has(d) or true)"
    assert req(tree.describe()) == tree


def test_tree_nodes_refuse_what_could_not_round_trip() -> None:
    with pytest.raises(ValueError, match="out of range"):
        Compare("a", ">=", 11)
    with pytest.raises(TypeError, match="level must be an int"):
        Compare("a", ">=", True)
    with pytest.raises(ValueError, match="unknown comparison"):
        Compare("a", "=", 1)
    with pytest.raises(ValueError, match="invalid skill name"):
        Has("A")
    with pytest.raises(ValueError, match="at least two"):
        And((Has("a"),))
    with pytest.raises(ValueError, match="must not nest"):
        Or((Has("a"), Or((Has("b"), Has("c")))))
    assert any_of(Has("a"), any_of(Has("b"), Has("c"))) == Or((Has("a"), Has("b"), Has("c")))
    assert all_of(Has("a")) == Has("a")


# ---- score -------------------------------------------------------------------------------------


def test_score_is_none_exactly_when_not_matching() -> None:
    tree = req("billing >= 5")
    assert tree.score({"billing": 4}) is None
    assert tree.score({}) is None
    assert tree.score({"billing": 5}) == 5


def test_score_orders_agents_by_proficiency() -> None:
    tree = req("billing >= 5 and (lang.zh >= 3 or lang.en >= 3)")
    agents = {
        "expert": {"billing": 10, "lang.zh": 3},
        "bilingual": {"billing": 6, "lang.zh": 9, "lang.en": 4},
        "minimal": {"billing": 5, "lang.en": 3},
        "unqualified": {"billing": 4, "lang.zh": 10},
    }
    scores = {name: tree.score(skills) for name, skills in agents.items()}
    # bilingual: billing 6 + the better language branch (lang.zh 9), not both languages.
    assert scores == {"expert": 13, "bilingual": 15, "minimal": 8, "unqualified": None}


def test_score_counts_a_skill_once_and_ignores_negations_and_true() -> None:
    assert req("billing >= 5 and billing <= 8").score({"billing": 7}) == 7
    assert req("billing >= 5 and not has(vip)").score({"billing": 7, "lang.en": 9}) == 7
    assert req("true").score({"billing": 7}) == 0
    assert req("not lang.zh >= 3").score({"lang.zh": 2}) == 0


def test_or_takes_its_best_branch_and_the_first_on_a_tie() -> None:
    tree = req("lang.en >= 1 or lang.zh >= 1")
    assert tree.score({"lang.en": 2, "lang.zh": 8}) == 8
    assert tree.qualifying_skills({"lang.en": 2, "lang.zh": 8}) == {"lang.zh"}
    assert tree.qualifying_skills({"lang.en": 5, "lang.zh": 5}) == {"lang.en"}
    # A branch with several skills beats a single higher one when its sum is higher.
    tree = req("vip >= 1 and lang.en >= 1 or lang.zh >= 1")
    assert tree.qualifying_skills({"vip": 4, "lang.en": 4, "lang.zh": 7}) == {"vip", "lang.en"}


# ---- seeded random check against a reference evaluator -----------------------------------------

SKILL_POOL = ["billing", "lang.zh", "lang.en", "vip", "tech_2"]
OPS = [">=", ">", "<=", "<", "==", "!="]
Tree = tuple[Any, ...]


def gen(rng: random.Random, depth: int) -> tuple[list[str], Tree, int]:
    """(tokens, reference tree, precedence: 3 atom/not, 2 and, 1 or)."""
    kind = rng.choice(["cmp", "cmp", "has", "true"] if depth == 0 else ["cmp", "has", "not", "and", "or"])
    if kind == "true":
        return ["true"], ("true",), 3
    if kind == "has":
        skill = rng.choice(SKILL_POOL)
        return ["has", "(", skill, ")"], ("has", skill), 3
    if kind == "cmp":
        skill, op, level = rng.choice(SKILL_POOL), rng.choice(OPS), rng.randint(0, 10)
        return [skill, op, str(level)], ("cmp", skill, op, level), 3
    if kind == "not":
        tokens, tree, _ = child(rng, depth, 3)
        return ["not", *tokens], ("not", tree), 3
    parts = [child(rng, depth, 2 if kind == "and" else 1) for _ in range(rng.randint(2, 3))]
    tokens = [tok for i, (toks, _, _) in enumerate(parts) for tok in ([kind] if i else []) + toks]
    return tokens, (kind, [tree for _, tree, _ in parts]), 2 if kind == "and" else 1


def child(rng: random.Random, depth: int, needed: int) -> tuple[list[str], Tree, int]:
    tokens, tree, prec = gen(rng, depth - 1)
    # Parentheses where precedence demands them, and now and then where it does not.
    if prec < needed or rng.random() < 0.2:
        return ["(", *tokens, ")"], tree, 3
    return tokens, tree, prec


def join(rng: random.Random, tokens: list[str]) -> str:
    text = tokens[0]
    for prev, tok in itertools.pairwise(tokens):
        wordy = prev[-1].isalnum() and tok[0].isalnum()
        text += rng.choice([" ", "  ", "\t"] if wordy else ["", " ", "  "]) + tok
    return text


def ref_matches(tree: Tree, skills: dict[str, int]) -> bool:
    kind = tree[0]
    if kind == "true":
        return True
    if kind == "has":
        return tree[1] in skills
    if kind == "cmp":
        _, skill, op, level = tree
        if skill not in skills:
            return False
        have = skills[skill]
        return {
            ">=": have >= level, ">": have > level, "<=": have <= level,
            "<": have < level, "==": have == level, "!=": have != level,
        }[op]
    if kind == "not":
        return not ref_matches(tree[1], skills)
    results = [ref_matches(t, skills) for t in tree[1]]
    return all(results) if kind == "and" else any(results)


def ref_used(tree: Tree, skills: dict[str, int]) -> set[str] | None:
    if not ref_matches(tree, skills):
        return None
    kind = tree[0]
    if kind in ("has", "cmp"):
        return {tree[1]}
    if kind in ("true", "not"):
        return set()
    parts = [ref_used(t, skills) for t in tree[1]]
    if kind == "and":
        return set().union(*parts)  # type: ignore[arg-type]
    satisfied = [p for p in parts if p is not None]
    return max(satisfied, key=lambda used: sum(skills[s] for s in used))  # max keeps the first


def random_agent(rng: random.Random) -> dict[str, int]:
    return {s: rng.randint(1, 10) for s in SKILL_POOL if rng.random() < 0.6}


def test_random_expressions_against_reference() -> None:
    rng = random.Random(20240517)
    agents = [random_agent(rng) for _ in range(40)] + [{}]
    kinds_seen: set[str] = set()
    for _ in range(400):
        tokens, tree, _ = gen(rng, rng.randint(0, 4))
        kinds_seen.add(tree[0])
        text = join(rng, tokens)
        parsed = parse_requirement(text)
        canonical = parsed.describe()
        assert parse_requirement(canonical) == parsed, text
        assert parse_requirement(canonical).describe() == canonical, text
        for skills in agents:
            assert parsed.matches(skills) == ref_matches(tree, skills), (text, skills)
            used = ref_used(tree, skills)
            expected = None if used is None else sum(skills[s] for s in used)
            assert parsed.score(skills) == expected, (text, skills)
    assert kinds_seen == {"cmp", "has", "true", "not", "and", "or"}


# ---- widening steps ----------------------------------------------------------------------------

LADDER = [
    {"after": 0, "require": "billing >= 7"},
    {"after": 30, "require": "billing >= 3"},
    {"after": 90, "require": "true"},
]


def test_validate_steps_parses_each_expression_once() -> None:
    steps = validate_steps(LADDER)
    assert steps.steps == (
        TimeStep(0, 0.0, Compare("billing", ">=", 7)),
        TimeStep(1, 30.0, Compare("billing", ">=", 3)),
        TimeStep(2, 90.0, ANY_AGENT),
    )
    assert steps.describe() == ["after 0s: billing >= 7", "after 30s: billing >= 3", "after 90s: true"]
    assert steps.referenced_skills() == {"billing"}


def test_validate_steps_with_metric_steps() -> None:
    steps = validate_steps([
        {"after": 0, "require": "billing >= 7"},
        {"when": "estimated_wait > 60", "require": "billing >= 5"},
        {"after": 30.5, "require": "billing >= 3"},
        {"when": "service_level<0.8", "require": "true"},
    ])
    assert steps.steps[1] == MetricStep(
        1, Condition("estimated_wait", ">", 60.0), Compare("billing", ">=", 5)
    )
    assert steps.steps[3] == MetricStep(3, Condition("service_level", "<", 0.8), ANY_AGENT)
    assert steps.describe()[1:] == [
        "when estimated_wait > 60: billing >= 5",
        "after 30.5s: billing >= 3",
        "when service_level < 0.8: true",
    ]


@pytest.mark.parametrize(
    "raw, index, message",
    [
        ([], None, "steps must be a non-empty list, got []"),
        ("billing >= 3", None, "steps must be a non-empty list, got 'billing >= 3'"),
        ([{"after": 5, "require": "true"}], 0,
         "steps[0]: the first step must be 'after: 0' (the requirement callers start with)"),
        ([{"when": "service_level < 0.8", "require": "true"}], 0,
         "steps[0]: the first step must be 'after: 0' (the requirement callers start with)"),
        ([LADDER[0], {"after": 30, "require": "true"}, {"after": 30, "require": "true"}], 2,
         "steps[2]: 'after' 30 must be greater than the previous time step's 30 (steps[1])"),
        ([LADDER[0], {"after": 30, "require": "true"}, {"when": "estimated_wait > 1", "require": "true"},
          {"after": 20, "require": "true"}], 3,
         "steps[3]: 'after' 20 must be greater than the previous time step's 30 (steps[1])"),
        ([LADDER[0], "after 30"], 1,
         "steps[1]: expected a mapping with 'after' or 'when', and 'require', got 'after 30'"),
        ([{"after": 0, "requires": "true"}], 0,
         "steps[0]: unknown key(s) 'requires' (allowed: after, when, require)"),
        ([{"after": 0, "when": "service_level < 1", "require": "true"}], 0,
         "steps[0]: give either 'after' or 'when', not both"),
        ([{"require": "true"}], 0, "steps[0]: needs 'after' (seconds waited) or 'when' (a queue condition)"),
        ([{"after": 0}], 0, "steps[0]: missing 'require'"),
        ([{"after": 0, "require": True}], 0,
         "steps[0]: 'require' must be a string (quote it in YAML), got True"),
        ([{"after": -1, "require": "true"}], 0, "steps[0]: 'after' must be a number of seconds >= 0, got -1"),
        ([{"after": "0", "require": "true"}], 0,
         "steps[0]: 'after' must be a number of seconds >= 0, got '0'"),
        ([LADDER[0], {"after": float("inf"), "require": "true"}], 1,
         "steps[1]: 'after' must be a number of seconds >= 0, got inf"),
        ([LADDER[0], {"after": 30, "require": "billing >= x"}], 1,
         ("steps[1]: invalid 'require': expected an integer level after '>=' at column 12\n"
          "  billing >= x\n             ^")),
        ([LADDER[0], {"when": "ewt > 60", "require": "true"}], 1,
         ("steps[1]: invalid 'when': unknown metric 'ewt' (known: estimated_wait, service_level) "
          "at column 1\n  ewt > 60\n  ^")),
    ],
)
def test_validate_steps_errors(raw: Any, index: int | None, message: str) -> None:
    with pytest.raises(StepsError) as caught:
        validate_steps(raw)
    assert str(caught.value) == message
    assert caught.value.index == index


def test_validate_steps_checks_known_skills() -> None:
    raw = [{"after": 0, "require": "billing >= 7"}, {"after": 10, "require": "biling >= 3"}]
    with pytest.raises(StepsError, match=r"steps\[1\]: invalid 'require': unknown skill 'biling'"):
        validate_steps(raw, known_skills={"billing"})
    assert len(validate_steps(raw, known_skills={"billing", "biling"}).steps) == 2


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "expected a metric name (estimated_wait, service_level) at column 1"),
        ("estimated_wait == 60", "expected a comparison (>, >=, <, <=) after 'estimated_wait' at column 16"),
        ("estimated_wait > soon", "expected a number after '>' at column 18"),
        ("estimated_wait > 60 and", "expected the end of the condition at column 21"),
        ("service_level < 80", "service_level is a fraction from 0 to 1, got 80 at column 17"),
        ("estimated_wait > -5", "estimated_wait is in seconds and cannot be negative, got -5 at column 18"),
    ],
)
def test_condition_errors(text: str, message: str) -> None:
    with pytest.raises(RequirementError) as caught:
        parse_condition(text)
    assert str(caught.value).splitlines()[0] == message


def test_condition_holds_only_with_a_figure() -> None:
    condition = parse_condition("service_level <= .8")
    assert condition == Condition("service_level", "<=", 0.8)
    assert condition.holds({"service_level": 0.8})
    assert not condition.holds({"service_level": 0.81})
    assert not condition.holds({})  # no calls yet: no service level, no trigger
    assert not condition.holds({"service_level": float("nan")})
    assert parse_condition("service_level < 0.00001").describe() == "service_level < 0.00001"


@pytest.mark.parametrize(
    "waited, expected",
    [(0, "billing >= 7"), (29.999, "billing >= 7"), (30, "billing >= 3"), (89.9, "billing >= 3"),
     (90, "true"), (10_000, "true")],
)
def test_active_requirement_at_time_boundaries(waited: float, expected: str) -> None:
    assert active_requirement(validate_steps(LADDER), waited, {}).describe() == expected


def test_metric_step_triggers_early_and_only_while_it_holds() -> None:
    steps = validate_steps([
        {"after": 0, "require": "billing >= 7"},
        {"when": "estimated_wait > 60", "require": "billing >= 5"},
        {"after": 30, "require": "billing >= 3"},
        {"when": "service_level < 0.8", "require": "true"},
    ])
    busy = {"estimated_wait": 61.0, "service_level": 0.9}
    calm = {"estimated_wait": 60.0, "service_level": 0.9}
    assert active_requirement(steps, 5, calm).describe() == "billing >= 7"
    assert active_requirement(steps, 5, busy).describe() == "billing >= 5"
    # A later time step is wider than an earlier metric step that also holds.
    assert active_requirement(steps, 30, busy).describe() == "billing >= 3"
    # A metric step later in the list wins over every time step reached.
    assert active_requirement(steps, 5, {"service_level": 0.5}).describe() == "true"
    assert active_step(steps, 5, {"service_level": 0.5}).index == 3
    # The metric recovers: back to the narrower requirement.
    assert active_requirement(steps, 5, {"service_level": 0.85}).describe() == "billing >= 7"


def test_next_change_at_gives_each_time_step_once() -> None:
    steps = validate_steps([*LADDER[:2], {"when": "estimated_wait > 1", "require": "vip > 1"}, LADDER[2]])
    assert next_change_at(steps, 100.0) == 130.0
    assert next_change_at(steps, 100.0, now=129.9) == 130.0
    assert next_change_at(steps, 100.0, now=130.0) == 190.0  # fired: arm the next one
    assert next_change_at(steps, 100.0, now=190.0) is None
    assert next_change_at(validate_steps(LADDER[:1]), 100.0) is None


def test_timer_at_next_change_always_sees_its_step() -> None:
    # (1000.1 + 30) - 1000.1 rounds to 29.999999999999886: subtracting would miss the step.
    steps = validate_steps(LADDER)
    enqueued = 1000.1
    due = next_change_at(steps, enqueued)
    assert due is not None
    assert active_requirement(steps, due - enqueued, {}).describe() == "billing >= 7"
    assert active_requirement_at(steps, enqueued, due, {}).describe() == "billing >= 3"
    assert active_requirement_at(steps, enqueued, due - 1e-6, {}).describe() == "billing >= 7"
    # Walking the timers visits every time step in order, then stops.
    seen, now = [], enqueued
    while (due := next_change_at(steps, enqueued, now)) is not None:
        now = due
        seen.append(active_requirement_at(steps, enqueued, now, {}).describe())
    assert seen == ["billing >= 3", "true"]
