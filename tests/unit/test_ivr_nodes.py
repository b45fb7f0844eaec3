"""The input, set, branch and schedule nodes: loading (errors with positions), the interpreter,
the simulator and the linter, and the condition / template / pattern languages behind them."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from callcenter.config import PROJECT_DIR
from callcenter.ivr.expressions import ExpressionError, check_pattern, evaluate, parse_condition
from callcenter.ivr.flow import InputNode, load_flow
from callcenter.ivr.interpreter import Collect, Finish, IvrSession, IvrStateError, TrailEntry
from callcenter.ivr.lint import lint_file
from callcenter.ivr.simulate import parse_digits, render, simulate
from tests.unit.ivr_samples import QUEUES, load_error, write

EXAMPLE = PROJECT_DIR / "docs" / "examples" / "support_hours.yaml"
SHANGHAI = ZoneInfo("Asia/Shanghai")

# Line numbers are asserted below: 3 'ask', 11 'tag', 15 'route', 20 'vip', 24 'sales', 25 'bye'.
FLOW = """\
start: ask
nodes:
  ask:
    type: input
    prompts: [hello]
    variable: account
    min_digits: 4
    max_digits: 6
    next: tag
    default: bye
  tag:
    type: set
    variables: {segment: "acct-${account}", who: "${caller}"}
    next: route
  route:
    type: branch
    cases:
      - {if: 'segment == "acct-9999" or caller starts_with "+86"', goto: vip}
    else: sales
  vip:
    type: set
    variables: {priority: 5}
    next: sales
  sales: {type: queue, queue: sales}
  bye: {type: hangup}
"""

SCHEDULED = """\
start: hours
schedules:
  office:
    timezone: Asia/Shanghai
    hours: {mon-fri: "09:00-18:00"}
    holidays: [2026-10-01]
nodes:
  hours: {type: schedule, schedule: office, open: sales, closed: bye, holiday: party}
  sales: {type: queue, queue: sales}
  bye: {type: hangup}
  party: {type: hangup, prompts: [hello]}
"""


def session_for(tmp_path: Path, text: str = FLOW, **kwargs) -> IvrSession:
    return IvrSession(load_flow(write(tmp_path, text)), **kwargs)


# ------------------------------------------------------------------------------------ loading


def test_the_flow_loads(tmp_path: Path) -> None:
    flow = load_flow(write(tmp_path, FLOW), known_queues=QUEUES)
    ask = flow.nodes["ask"]
    assert isinstance(ask, InputNode)
    assert (ask.min_digits, ask.max_digits, ask.terminator, ask.retries) == (4, 6, "#", 2)
    assert [t for _, t in flow.nodes["route"].targets()] == ["vip", "sales"]


@pytest.mark.parametrize(
    ("replace", "expected"),
    [
        (("max_digits: 6", "max_digits: 33"), "main.yaml:8:17: nodes.ask.max_digits: Input should be less than"),
        (("min_digits: 4", "min_digits: 0"), "main.yaml:7:17: nodes.ask.min_digits: Input should be greater"),
        (("min_digits: 4", "min_digits: 7"), "main.yaml:7:17: nodes.ask.min_digits: min_digits 7 is more than"),
        (("variable: account", "variable: Account"), "main.yaml:6:15: nodes.ask.variable: 'Account' is not a "
                                                     "variable name"),
        (("variable: account", "variable: caller"), "main.yaml:6:15: nodes.ask.variable: 'caller' cannot hold"),
        (("default: bye", "terminator: '*'"), "main.yaml:10:17: nodes.ask.terminator: Input should be"),
    ],
)
def test_input_load_errors(tmp_path: Path, replace: tuple[str, str], expected: str) -> None:
    assert load_error(tmp_path, FLOW.replace(*replace))[0].startswith(expected)


def test_input_missing_field_and_dangling_default(tmp_path: Path) -> None:
    assert load_error(tmp_path, FLOW.replace("    max_digits: 6\n", "")) == [
        "main.yaml:4:5: nodes.ask.max_digits: required field is missing"]
    assert load_error(tmp_path, FLOW.replace("default: bye", "default: byee")) == [
        "main.yaml:10:14: nodes.ask.default: target 'byee' is not a node in this flow"]


@pytest.mark.parametrize(
    ("pattern", "column", "message"),
    [
        ("'12a4'", 17, "'a' is not allowed in a digit pattern"),
        ("'(\\d+)+'", 15, "a repeated group must not contain a quantifier"),
        ("'(1|2){3}'", 15, "a repeated group must not contain"),
        ("'[12'", 15, "invalid pattern"),
    ],
)
def test_input_pattern_is_checked_at_load(tmp_path: Path, pattern: str, column: int, message: str) -> None:
    text = FLOW.replace("    next: tag\n", f"    pattern: {pattern}\n    next: tag\n", 1)
    [error] = load_error(tmp_path, text)
    assert error.startswith(f"main.yaml:9:{column}: nodes.ask.pattern: {message}")


def test_set_load_errors(tmp_path: Path) -> None:
    assert load_error(tmp_path, FLOW.replace("{priority: 5}", "{priority: 11}")) == [
        "main.yaml:22:27: nodes.vip.variables.priority: priority must be a whole number from -10 to 10, got 11"]
    assert load_error(tmp_path, FLOW.replace("{priority: 5}", "{priority: high}"))[0].startswith(
        "main.yaml:22:27: nodes.vip.variables.priority: priority must be a whole number")
    assert load_error(tmp_path, FLOW.replace("{priority: 5}", "{Bad-Name: x}")) == [
        "main.yaml:22:17: nodes.vip.variables.Bad-Name: 'Bad-Name' is not a variable name: a lowercase "
        "letter, then lowercase letters, digits or '_' (at most 32)"]
    assert load_error(tmp_path, FLOW.replace("{priority: 5}", "{caller: x}")) == [
        "main.yaml:22:17: nodes.vip.variables.caller: 'caller' is the caller's number and cannot be set"]
    assert load_error(tmp_path, FLOW.replace("{priority: 5}", "{flag: yes}"))[0].startswith(
        "main.yaml:22:23: nodes.vip.variables.flag")


def test_set_template_errors_point_into_the_string(tmp_path: Path) -> None:
    # "acct-${account" starts at column 27 (the quote); the '${' is 5 characters in
    assert load_error(tmp_path, FLOW.replace("acct-${account}", "acct-${account")) == [
        "main.yaml:13:32: nodes.tag.variables.segment: '${' without a closing '}'"]
    assert load_error(tmp_path, FLOW.replace("${caller}", "${Caller}")) == [
        "main.yaml:13:53: nodes.tag.variables.who: 'Caller' is not a variable name (lowercase letter, "
        "then lowercase letters, digits or '_', at most 32)"]


@pytest.mark.parametrize(
    ("condition", "column", "message"),
    [
        ('segment = "x"', 23, "unexpected '='"),
        ('segment == x', 26, "expected a quoted string, got 'x'"),
        ('segment == "x" and', 33, "expected a variable name, got 'the end'"),
        ('(segment == "x"', 30, "expected ')' to close the '(' at column 1"),
        ('segment in "x"', 26, "expected '[' after 'in'"),
        ('segment like "x"', 23, "expected ==, !=, in, matches or starts_with, got 'like'"),
        ('segment matches "(\\d+)+"', 32,
         "a repeated group must not contain a quantifier or '|' (it could take exponential time to match)"),
        ('segment == "x" segment', 30, "expected 'and', 'or' or the end, got 'segment'"),
    ],
)
def test_branch_condition_errors_have_columns(tmp_path: Path, condition: str, column: int, message: str) -> None:
    text = FLOW.replace('\'segment == "acct-9999" or caller starts_with "+86"\'', f"'{condition}'")
    [error] = load_error(tmp_path, text)
    assert error == f"main.yaml:18:{column}: nodes.route.cases.0.if: condition: {message}"


def test_branch_shape_errors(tmp_path: Path) -> None:
    assert load_error(tmp_path, FLOW.replace("    else: sales\n", "")) == [
        "main.yaml:16:5: nodes.route.else: required field is missing"]
    assert load_error(tmp_path, FLOW.replace("goto: vip}", "goto: vip, then: x}")) == [
        "main.yaml:18:79: nodes.route.cases.0.then: unknown key 'then'; expected one of: if, goto"]
    assert load_error(tmp_path, FLOW.replace("goto: vip}", "goto: vipp}")) == [
        "main.yaml:18:74: nodes.route.cases.0.goto: target 'vipp' is not a node in this flow"]


def test_schedule_load_errors(tmp_path: Path) -> None:
    assert load_error(tmp_path, SCHEDULED.replace("Asia/Shanghai", "Asia/Peking")) == [
        "main.yaml:4:15: schedules.office.timezone: 'Asia/Peking' is not an IANA time zone "
        "(e.g. Asia/Shanghai, Europe/Berlin, UTC)"]
    assert load_error(tmp_path, SCHEDULED.replace("mon-fri", "mon-frii"))[0].startswith(
        "main.yaml:5:13: schedules.office.hours.mon-frii: 'mon-frii' is not a day")
    assert load_error(tmp_path, SCHEDULED.replace("09:00-18:00", "18:00-09:00"))[0].startswith(
        "main.yaml:5:23: schedules.office.hours.mon-fri: '18:00-09:00' ends before it starts")
    assert load_error(tmp_path, SCHEDULED.replace("2026-10-01", "2026-13-01")) == [
        "main.yaml:6:16: invalid YAML: '2026-13-01' is not a valid date (month must be in 1..12)"]
    assert load_error(tmp_path, SCHEDULED.replace("2026-10-01", "'2026-02-30'"))[0].startswith(
        "main.yaml:6:16: schedules.office.holidays.0: ")
    assert load_error(tmp_path, SCHEDULED.replace("schedule: office", "schedule: shop")) == [
        "main.yaml:8:37: nodes.hours.schedule: schedule 'shop' is not defined (known: office)"]
    assert load_error(tmp_path, SCHEDULED.replace("    timezone: Asia/Shanghai\n", "")) == [
        "main.yaml:4:5: schedules.office.timezone: required field is missing"]


def test_hours_24x7_and_bad_hours_shape(tmp_path: Path) -> None:
    flow = load_flow(write(tmp_path, SCHEDULED.replace('{mon-fri: "09:00-18:00"}', "24x7")))
    assert flow.schedules["office"].state_at(datetime(2026, 11, 22, 3, 0)) == "open"  # a Sunday night
    assert load_error(tmp_path, SCHEDULED.replace('{mon-fri: "09:00-18:00"}', "always"))[0].startswith(
        "main.yaml:5:12: schedules.office.hours: hours must be '24x7' or a mapping")


# -------------------------------------------------------------------------------- interpreter


def test_input_ok_then_set_and_branch_to_else(tmp_path: Path) -> None:
    session = session_for(tmp_path, caller_number="13800138000")
    assert session.start() == Collect(prompts=("hello",), max_digits=6, timeout=5.0)
    finish = session.digits("1234#")
    assert finish == Finish("queue", "sales", 0, {
        "CC_ACTION": "queue", "CC_QUEUE": "sales", "CC_PRIORITY": "0",
        "CC_VAR_account": "1234", "CC_VAR_segment": "acct-1234", "CC_VAR_who": "13800138000"})
    assert session.trail == [
        TrailEntry("ask", "input_ok", {"variable": "account", "digits": 4}),
        TrailEntry("tag", "set", {"variables": "segment,who"}),
        TrailEntry("route", "branch", {"case": "else", "target": "sales"}),
        TrailEntry("sales", "queue", {"queue": "sales", "priority": 0}),
    ]


@pytest.mark.parametrize(("digits", "caller"), [("9999", ""), ("1234", "+8613800138000")])
def test_branch_case_and_set_priority_reach_the_queue(tmp_path: Path, digits: str, caller: str) -> None:
    session = session_for(tmp_path, caller_number=caller)
    session.start()
    finish = session.digits(digits)
    assert (finish.queue, finish.priority, finish.variables["CC_PRIORITY"]) == ("sales", 5, "5")
    assert TrailEntry("route", "branch", {"case": 0, "target": "vip"}) in session.trail


def test_an_explicit_queue_priority_wins_over_a_set_one(tmp_path: Path) -> None:
    session = session_for(tmp_path, FLOW.replace("queue: sales}", "queue: sales, priority: -1}"))
    session.start()
    assert session.digits("9999").priority == -1


def test_invalid_and_timeout_answers_reach_the_default(tmp_path: Path) -> None:
    text = FLOW.replace("    next: tag\n", "    pattern: '9\\d+'\n    invalid_prompts: [pm-invalid-option]\n"
                        "    timeout_prompts: [please-try-again]\n    next: tag\n", 1)
    session = session_for(tmp_path, text)
    session.start()
    assert session.digits("1234") == Collect(("pm-invalid-option", "hello"), 6, 5.0)  # pattern
    assert session.digits("#").prompts == ("please-try-again", "hello")  # '#' alone: nothing entered
    finish = session.digits("12")  # too short
    assert finish == Finish("hangup", None, 0, {"CC_ACTION": "hangup"})
    assert session.trail == [
        TrailEntry("ask", "input_invalid", {"digits": 4}),
        TrailEntry("ask", "input_timeout", {}),
        TrailEntry("ask", "input_invalid", {"digits": 2}),
        TrailEntry("ask", "input_default", {"target": "bye"}),
        TrailEntry("bye", "hangup", {"reason": "flow"}),
    ]


@pytest.mark.parametrize("answer", ["12#34", "12a4", "1234567", "1" * 500])
def test_malformed_answers_are_invalid(tmp_path: Path, answer: str) -> None:
    session = session_for(tmp_path)
    session.start()
    assert isinstance(session.digits(answer), Collect)
    assert session.trail[-1].kind == "input_invalid"


def test_terminator_none_keeps_the_hash(tmp_path: Path) -> None:
    text = FLOW.replace("    next: tag\n", "    terminator: none\n    pattern: '\\d+#'\n    next: tag\n", 1)
    session = session_for(tmp_path, text)
    session.start()
    assert session.digits("1234#").variables["CC_VAR_account"] == "1234#"


def test_entered_digits_never_reach_the_trail(tmp_path: Path) -> None:
    secret = "987654"
    session = session_for(tmp_path, FLOW.replace("default: bye", "default: bye\n    pattern: '1\\d+'"))
    session.start()
    session.digits(secret)  # invalid (pattern)
    session.digits("")
    session.digits("123456")
    assert session.finished
    trail_text = repr(session.trail)
    assert secret not in trail_text and "123456" not in trail_text and "acct-" not in trail_text
    assert [e.data.get("digits") for e in session.trail if e.kind.startswith("input")] == [6, None, 6]


def test_templates_are_rendered_once_and_caller_is_sanitised(tmp_path: Path) -> None:
    session = session_for(tmp_path, caller_number="${account}\r\n" + "5" * 100)
    session.start()
    variables = session.digits("1234").variables
    assert variables["CC_VAR_who"] == "${account}" + "5" * 54  # control characters dropped, cut at 64


def test_set_and_branch_loops_hit_the_step_limit(tmp_path: Path) -> None:
    text = """\
start: a
nodes:
  a: {type: set, variables: {n: "x"}, next: b}
  b: {type: branch, cases: [{if: 'n == "x"', goto: a}], else: a}
"""
    session = session_for(tmp_path, text, max_steps=10)
    finish = session.start()
    assert finish.action == "hangup"
    assert session.trail[-2:] == [TrailEntry("a", "step_limit", {"steps": 10}),
                                  TrailEntry("a", "hangup", {"reason": "step_limit"})]


@pytest.mark.parametrize(
    ("now", "state", "node"),
    [
        # Monday 2026-11-23 09:30 in Shanghai is 01:30 UTC: open there, though it is night in UTC
        (datetime(2026, 11, 23, 1, 30, tzinfo=timezone.utc), "open", "sales"),
        # Monday 08:59 in Shanghai (Monday 00:59 UTC): not yet open
        (datetime(2026, 11, 23, 0, 59, tzinfo=timezone.utc), "closed", "bye"),
        # Friday 2026-11-27 18:00 Shanghai is 10:00 UTC: the end is exclusive
        (datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc), "closed", "bye"),
        # Sunday 2026-11-22 20:00 UTC is already Monday 04:00 in Shanghai: still closed
        (datetime(2026, 11, 22, 20, 0, tzinfo=timezone.utc), "closed", "bye"),
        # Monday 01:00 UTC is 09:00 in Shanghai: the start is inclusive
        (datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc), "open", "sales"),
        # 2026-09-30 16:30 UTC is 2026-10-01 00:30 in Shanghai: the holiday has begun there
        (datetime(2026, 9, 30, 16, 30, tzinfo=timezone.utc), "holiday", "party"),
        # a naive time is Shanghai wall clock (what `flows simulate --at` passes)
        (datetime(2026, 10, 1, 10, 0), "holiday", "party"),
        (datetime(2026, 10, 2, 10, 0), "open", "sales"),
        (datetime(2026, 10, 2, 10, 0, tzinfo=SHANGHAI), "open", "sales"),
    ],
)
def test_schedule_across_time_zones(tmp_path: Path, now: datetime, state: str, node: str) -> None:
    session = session_for(tmp_path, SCHEDULED, now=now)
    session.start()
    entry = session.trail[0]
    assert entry == TrailEntry("hours", "schedule", {"schedule": "office", "state": state, "target": node})
    assert session.node == node


def test_holiday_without_a_holiday_node_is_closed(tmp_path: Path) -> None:
    session = session_for(tmp_path, SCHEDULED.replace(", holiday: party", ""), now=datetime(2026, 10, 1, 10))
    session.start()
    assert session.trail[0].data == {"schedule": "office", "state": "holiday", "target": "bye"}


def test_schedule_needs_the_time(tmp_path: Path) -> None:
    with pytest.raises(IvrStateError, match="needs the time"):
        session_for(tmp_path, SCHEDULED).start()


# ------------------------------------------------------------------------- condition language


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ('a == "x"', True),
        ('a != "x"', False),
        ('a in ["y", "x"]', True),
        ('a matches "x|z"', True),
        ('a matches "x."', False),  # the whole value must match
        ('caller starts_with "+86"', True),
        ('not a == "x" or b == ""', True),  # 'not' binds tighter than 'or'; unset b reads as ""
        ('not (a == "x" or b == "")', False),
        ('a == "x" and (b == "y" or caller matches "\\+86\\d+")', True),
        ('undefined == ""', True),
        ("a == 'x' and c == \"say \\\"hi\\\"\"", True),
    ],
)
def test_conditions(condition: str, expected: bool) -> None:
    variables = {"a": "x", "c": 'say "hi"', "caller": "+8613800138000"}
    assert evaluate(parse_condition(condition), variables) is expected


def test_conditions_cannot_run_code() -> None:
    with pytest.raises(ExpressionError):
        parse_condition('__import__("os").system("true")')
    with pytest.raises(ExpressionError, match="nested too deep"):
        parse_condition("(" * 40 + 'a == "x"' + ")" * 40)


def test_digit_patterns() -> None:
    assert check_pattern(r"(\d{4}|\d{6})?", digits_only=True).fullmatch("123456")
    assert check_pattern(r"[0-9]{4}\*", digits_only=True).fullmatch("1234*")
    with pytest.raises(ExpressionError, match="not allowed"):
        check_pattern(r"(?P<x>\d)", digits_only=True)


# ------------------------------------------------------------------------------------- linter


def test_loop_through_set_and_branch_nodes_is_an_error(tmp_path: Path) -> None:
    text = """\
start: a
nodes:
  a: {type: set, variables: {n: "x"}, next: b}
  b: {type: branch, cases: [{if: 'n == "x"', goto: a}], else: c}
  c: {type: hangup}
"""
    findings = lint_file(write(tmp_path, text), queues=None, sounds=None)
    assert [(f.severity, f.line, f.column, f.field) for f in findings] == [("error", 3, 3, "nodes.a")]
    assert findings[0].message.startswith("loop a -> b -> a never waits for input")


def test_a_loop_through_an_input_node_waits(tmp_path: Path) -> None:
    text = FLOW.replace("else: sales", "else: ask")
    assert lint_file(write(tmp_path, text), queues=QUEUES, sounds=None) == []


def test_unreachable_is_found_through_branch_targets(tmp_path: Path) -> None:
    text = FLOW.replace("goto: vip}", "goto: sales}") + "  lost: {type: hangup}\n"
    findings = lint_file(write(tmp_path, text), queues=QUEUES, sounds=None)
    assert [(f.severity, f.line, f.field) for f in findings] == [
        ("warning", 20, "nodes.vip"), ("warning", 26, "nodes.lost")]


def test_a_variable_never_set_is_a_warning(tmp_path: Path) -> None:
    text = FLOW.replace('segment == "acct-9999"', 'segmnt == "acct-9999"')
    findings = lint_file(write(tmp_path, text), queues=QUEUES, sounds=None)
    assert [(f.severity, f.line, f.field) for f in findings] == [("warning", 18, "nodes.route.cases.0.if")]
    assert "variable 'segmnt' is never set" in findings[0].message


# ---------------------------------------------------------------------- the example and simulate


def test_the_example_flow_loads_and_lints_clean() -> None:
    flow = load_flow(EXAMPLE, known_queues=QUEUES)
    assert flow.name == "support_hours" and set(flow.schedules) == {"support"}
    assert lint_file(EXAMPLE, queues=QUEUES, sounds=None) == []


def test_simulate_the_example_vip_caller() -> None:
    result = simulate(load_flow(EXAMPLE), parse_digits("912345"), caller="+8613800138000",
                      at=datetime(2026, 11, 23, 9, 0))
    assert render(result).splitlines() == [
        f"flow support_hours ({EXAMPLE}); caller +8613800138000; at 2026-11-23 09:00",
        "      trail: hours schedule schedule=support state=open target=account",
        "  1. account: play hello; wait 5 s for up to 8 keys",
        "      caller: presses 912345",
        "      trail: account input_ok variable=account digits=6",
        "      trail: tag set variables=segment,language",
        "      trail: route branch case=0 target=vip",
        "      trail: vip set variables=priority,segment",
        "      trail: support queue queue=support priority=5",
        "result: queue support with priority 5, requiring the queue's own steps",
        "variables: CC_ACTION=queue CC_QUEUE=support CC_PRIORITY=5 CC_VAR_account=912345 "
        "CC_VAR_segment=vip CC_VAR_language=zh CC_VAR_priority=5",
        "prompts played: hello",
    ]


def test_simulate_the_example_at_night_and_on_a_holiday() -> None:
    flow = load_flow(EXAMPLE)
    night = simulate(flow, at=datetime(2026, 11, 23, 22, 0))  # Shanghai wall clock: closed
    assert [e.data.get("state") for e in night.trail[:1]] == ["closed"]
    assert (night.finish.action, night.prompts) == ("hangup", ("vm-goodbye",))
    holiday = simulate(flow, at=datetime(2026, 10, 1, 2, 0, tzinfo=timezone.utc))
    assert holiday.trail[0].data["state"] == "holiday"


def test_simulate_invalid_account_goes_to_the_default_queue() -> None:
    result = simulate(load_flow(EXAMPLE), parse_digits("0123456,,"), at=datetime(2026, 11, 23, 9, 0))
    assert [e.kind for e in result.trail] == [
        "schedule", "input_invalid", "input_timeout", "input_timeout", "input_default", "queue"]
    assert (result.finish.queue, result.finish.priority) == ("support", 0)
    assert "CC_VAR_account" not in result.variables
    assert [s.max_digits for s in result.steps] == [8, 8, 8]
