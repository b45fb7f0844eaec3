"""The lookup, goto, transfer and voicemail nodes, say items, the call's language, and a queue
node's announcements and max wait: loading (errors with positions), the interpreter, the linter,
and the shipped service-line flows simulated end to end."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from callcenter.acd.model import MaxWait, MaxWaitAction
from callcenter.config import PROJECT_DIR
from callcenter.ivr.flow import load_flow, load_flows
from callcenter.ivr.interpreter import Collect, Finish, IvrSession, Lookup, Play, Say
from callcenter.ivr.lint import lint_paths
from callcenter.ivr.simulate import parse_digits, render, simulate
from tests.unit.ivr_samples import QUEUES, load_error, write

FLOWS = PROJECT_DIR / "ivr_flows"
OPEN = datetime(2026, 11, 23, 9, 0)  # a Monday morning, Shanghai wall clock
CLOSED = datetime(2026, 11, 23, 23, 0)

# Line numbers are asserted below: 3 'ask', 11 the prompts of 'read_back', 13 'find', 20 'vip'.
FLOW = """\
start: ask
nodes:
  ask:
    type: input
    prompts: [hello]
    variable: account
    max_digits: 8
    next: read_back
  read_back:
    type: play
    prompts: [you-entered, {say: digits, value: "${account}"}, {say: number, value: "${account}"}]
    next: find
  find:
    type: lookup
    by: account
    variable: account
    priority_by_tier: {vip: 7}
    found: vip
    not_found: plain
  vip: {type: set, variables: {language: "${customer_language}"}, next: plain}
  plain: {type: queue, queue: sales}
"""


def walk_to_lookup(tmp_path: Path, account: str = "12345678") -> tuple[IvrSession, Lookup]:
    session = IvrSession(load_flow(write(tmp_path, FLOW)))
    assert isinstance(session.start(), Collect)
    read_back = session.digits(account + "#")
    assert isinstance(read_back, Play)
    assert read_back.prompts == ("you-entered", Say("digits", account), Say("number", account))
    lookup = session.played()
    assert isinstance(lookup, Lookup)
    return session, lookup


# ---------------------------------------------------------------------------------- lookup


def test_lookup_by_account_asks_for_the_entered_digits(tmp_path: Path) -> None:
    _session, lookup = walk_to_lookup(tmp_path)
    assert lookup == Lookup("account", "12345678")


def test_a_found_vip_gets_the_tiers_priority_and_the_customers_language(tmp_path: Path) -> None:
    session, _ = walk_to_lookup(tmp_path)
    finish = session.looked_up("found", {"id": 42, "tier": "vip", "language": "zh"})
    assert isinstance(finish, Finish) and (finish.queue, finish.priority) == ("sales", 7)
    assert session.language == "zh"
    assert {k: v for k, v in finish.variables.items() if k.startswith("CC_VAR_customer")} == {
        "CC_VAR_customer_id": "42", "CC_VAR_customer_tier": "vip", "CC_VAR_customer_language": "zh"}
    assert [e.data for e in session.trail if e.kind == "lookup"] == [
        {"by": "account", "status": "found", "tier": "vip", "customer_id": "42", "target": "vip"}]


@pytest.mark.parametrize("status", ["not_found", "unavailable"])
def test_a_missing_or_unavailable_customer_goes_to_not_found_with_no_customer_variables(tmp_path, status) -> None:
    session, _ = walk_to_lookup(tmp_path)
    finish = session.looked_up(status)
    assert (finish.queue, finish.priority) == ("sales", 0)
    assert not any(k.startswith("CC_VAR_customer") for k in finish.variables)
    assert session.trail[-2].data == {"by": "account", "status": status, "target": "plain"}


def test_a_tier_without_a_priority_and_a_bad_crm_language_change_nothing(tmp_path: Path) -> None:
    session, _ = walk_to_lookup(tmp_path)
    finish = session.looked_up("found", {"id": 1, "tier": "gold", "language": "../../etc"})
    assert finish.priority == 0 and session.language is None
    assert "CC_VAR_customer_language" not in finish.variables


def test_unsayable_values_are_skipped_not_half_said(tmp_path: Path) -> None:
    session = IvrSession(load_flow(write(tmp_path, FLOW)))
    session.start()
    read_back = session.digits("12*#")  # '*' is no number: the number item is dropped
    assert read_back.prompts == ("you-entered", Say("digits", "12*"))


@pytest.mark.parametrize("replace, expected", [
    (("    variable: account\n    priority_by_tier", "    priority_by_tier"),
     "main.yaml:14:5: nodes.find.variable: a lookup by account needs 'variable' (the collected digits)"),
    (("by: account", "by: caller"), "... "),
    (("{say: digits,", "{say: shout,"),
     "main.yaml:11:34: nodes.read_back.prompts.1.say: Input should be 'digits', 'number', 'alpha' or 'time'"),
    (('value: "${account}"}, {say: number', 'value: "${acc"}, {say: number'),
     "main.yaml:11:50: nodes.read_back.prompts.1.value: '${' without a closing '}'"),
    (("{vip: 7}", "{vip: 11}"),
     "main.yaml:17:29: nodes.find.priority_by_tier.vip: Input should be less than or equal to 10"),
    (('language: "${customer_language}"', "language: Chinese"),
     "main.yaml:20:42: nodes.vip.variables.language: 'Chinese' is not a sound language: a folder name under "
     "Asterisk's sounds/ such as 'en' or 'zh' (two lowercase letters, then optional _suffixes)"),
])
def test_load_errors_of_the_new_fields(tmp_path: Path, replace: tuple[str, str], expected: str) -> None:
    problems = load_error(tmp_path, FLOW.replace(*replace), known_queues=QUEUES)
    if expected.endswith("... "):
        assert problems == ["main.yaml:16:15: nodes.find.variable: only a lookup by account reads a variable"]
    else:
        assert problems == [expected]


# ------------------------------------------------------------------- queue: max wait, announcements


QUEUE_FLOW = """\
start: q
nodes:
  q:
    type: queue
    queue: sales
    max_wait: {seconds: 120, then: overflow, queue: support}
    announce: {first_after: 5, every: 45, estimated_wait: false}
"""


def test_a_queue_nodes_max_wait_and_announcements_reach_the_finish(tmp_path: Path) -> None:
    finish = IvrSession(load_flow(write(tmp_path, QUEUE_FLOW), known_queues=QUEUES)).start()
    assert finish.max_wait == MaxWait(120.0, MaxWaitAction.OVERFLOW, "support")
    assert finish.announce is not None and (finish.announce.first_after, finish.announce.every) == (5, 45)
    assert (finish.announce.position, finish.announce.estimated_wait) == (True, False)


@pytest.mark.parametrize("max_wait, expected", [
    ("{seconds: 120, then: overflow}",
     "main.yaml:6:15: nodes.q.max_wait: give 'queue' (the overflow target) with 'then: overflow', and only then"),
    ("{seconds: 120, then: voicemail, queue: support}",
     "main.yaml:6:15: nodes.q.max_wait: give 'queue' (the overflow target) with 'then: overflow', and only then"),
    ("{seconds: 120, then: overflow, queue: sales}",
     "main.yaml:6:53: nodes.q.max_wait.queue: cannot overflow into 'sales', the queue the caller is already in"),
    ("{seconds: 120, then: overflow, queue: billing}",
     "main.yaml:6:53: nodes.q.max_wait.queue: queue 'billing' is not a configured queue (known: sales, support)"),
    ("{seconds: 120, then: hold}",
     "main.yaml:6:36: nodes.q.max_wait.then: Input should be 'overflow', 'voicemail' or 'fallback'"),
])
def test_queue_max_wait_errors(tmp_path: Path, max_wait: str, expected: str) -> None:
    text = QUEUE_FLOW.replace("{seconds: 120, then: overflow, queue: support}", max_wait)
    assert load_error(tmp_path, text, known_queues=QUEUES) == [expected]


def test_announcement_timing_is_bounded(tmp_path: Path) -> None:
    assert load_error(tmp_path, QUEUE_FLOW.replace("every: 45", "every: 5"), known_queues=QUEUES) == [
        "main.yaml:7:39: nodes.q.announce.every: Input should be greater than or equal to 15"]
    assert load_error(tmp_path, QUEUE_FLOW.replace("estimated_wait: false", "often: true"), known_queues=QUEUES) == [
        "main.yaml:7:43: nodes.q.announce.often: unknown key 'often'; expected one of: "
        "position, estimated_wait, every, first_after"]


# ---------------------------------------------------------------- transfer, voicemail, goto


def test_transfer_and_voicemail_end_the_ivr_with_what_the_dialplan_needs(tmp_path: Path) -> None:
    out = IvrSession(load_flow(write(tmp_path, 'start: t\nnodes:\n  t: {type: transfer, to: "+8613900000000"}\n')))
    assert out.start() == Finish("transfer", variables={"CC_ACTION": "transfer", "CC_TRANSFER_TO": "+8613900000000"},
                                 transfer_to="+8613900000000")
    box = IvrSession(load_flow(write(tmp_path, "start: v\nnodes:\n  v: {type: voicemail, mailbox: support}\n")))
    assert box.start() == Finish("voicemail", "support", variables={"CC_ACTION": "voicemail", "CC_QUEUE": "support"})


@pytest.mark.parametrize("node, expected", [
    ('{type: transfer, to: "2001;Dial(x)"}',
     "main.yaml:3:27: nodes.t.to: '2001;Dial(x)' is not an extension or phone number: 2 to 20 digits, "
     "optionally after a '+'"),
    ("{type: voicemail, mailbox: billing}",
     "main.yaml:3:33: nodes.t.mailbox: queue 'billing' is not a configured queue (known: sales, support)"),
    ("{type: goto, flow: Other}",
     "main.yaml:3:25: nodes.t.flow: 'Other' is not a flow name (a file name without .yaml) matching "
     "^[a-z0-9][a-z0-9_-]{0,63}$"),
])
def test_call_ending_node_errors(tmp_path: Path, node: str, expected: str) -> None:
    assert load_error(tmp_path, f"start: t\nnodes:\n  t: {node}\n", known_queues=QUEUES) == [expected]


GOTO_FLOWS = {
    "main": "start: g\nnodes:\n  g: {type: set, variables: {topic: billing}, next: go}\n"
            "  go: {type: goto, flow: other, node: second}\n",
    "other": "start: first\nnodes:\n  first: {type: hangup}\n"
             "  second: {type: set, variables: {seen: \"${topic}\"}, next: q}\n  q: {type: queue, queue: sales}\n",
}


def test_goto_goes_on_in_the_other_flow_keeping_the_variables(tmp_path: Path) -> None:
    for name, text in GOTO_FLOWS.items():
        write(tmp_path, text, name)
    flows = load_flows(tmp_path)
    session = IvrSession(flows["main"], flows=flows)
    finish = session.start()
    assert (finish.action, finish.queue, finish.variables["CC_VAR_seen"]) == ("queue", "sales", "billing")
    assert session.flow.name == "other"
    assert [(e.node, e.kind, e.data) for e in session.trail if e.kind == "goto"] == [
        ("go", "goto", {"flow": "other", "entry": "second"})]


def test_goto_to_a_missing_flow_or_node_is_the_fallback_route_not_silence(tmp_path: Path) -> None:
    for name, text in GOTO_FLOWS.items():
        write(tmp_path, text, name)
    flows = load_flows(tmp_path)
    assert IvrSession(flows["main"]).start().action == "fallback"  # no way to find flows
    (tmp_path / "other.yaml").write_text(GOTO_FLOWS["other"].replace("second:", "later:").replace("first: {type", "first: {type"))
    renamed = load_flows(tmp_path)
    missing = IvrSession(renamed["main"], flows=renamed)
    assert missing.start() == Finish("fallback", variables={"CC_ACTION": "fallback", "CC_VAR_topic": "billing"})
    assert missing.trail[-1].kind == "goto_missing"


def test_lint_reports_gotos_to_flows_or_nodes_that_do_not_exist(tmp_path: Path) -> None:
    write(tmp_path, GOTO_FLOWS["main"].replace("node: second", "node: third"), "main")
    write(tmp_path, GOTO_FLOWS["other"], "other")
    write(tmp_path, "start: g\nnodes:\n  g: {type: goto, flow: nowhere}\n", "lost")
    findings = [str(f).replace(str(tmp_path) + "/", "") for f in lint_paths([tmp_path], queues=QUEUES, asterisk_root=None)
                if f.severity == "error"]
    assert findings == [
        f"lost.yaml:3:25: error: nodes.g.flow: flow 'nowhere' does not exist (no nowhere.yaml in {tmp_path})",
        "main.yaml:4:39: error: nodes.go.node: node 'third' is not in flow 'other'",
    ]


# ------------------------------------------------------------------ the shipped service line


def crm(lookup: Lookup):
    """A CRM that knows one VIP by account number and one regular customer by phone."""
    if lookup.by == "account" and lookup.value == "12345678":
        return "found", {"id": 1, "tier": "vip", "language": "zh"}
    if lookup.by == "caller" and lookup.value == "+442079460958":
        return "found", {"id": 2, "tier": "regular", "language": "en"}
    return "not_found", None


def test_the_shipped_flows_load_and_lint_clean() -> None:
    flows = load_flows(FLOWS, known_queues=QUEUES | {"billing"})
    assert {"main", "service", "after_hours"} <= set(flows)
    assert [f for f in lint_paths([FLOWS], queues=QUEUES | {"billing"}, asterisk_root=None)
            if not f.message.startswith("sound check skipped")] == []


def test_simulate_the_service_line_for_a_chinese_speaking_vip() -> None:
    flows = load_flows(FLOWS)
    result = simulate(flows["service"], parse_digits("2,12345678#,1"), caller="13912340001", at=OPEN,
                      flows=flows.get, lookup=crm)
    assert render(result).splitlines() == [
        f"flow service ({FLOWS / 'service.yaml'}); caller 13912340001; at 2026-11-23 09:00",
        "      trail: hours schedule schedule=service state=open target=language",
        "  1. language: play hello, for, digits/1, for, digits/2; wait 4 s for a key",
        "      caller: presses 2",
        "      trail: language menu_choice key=2 target=chinese",
        "      trail: chinese set variables=language",
        "  2. account: play (zh) number, astcc-followed-by-the-pound-key; wait 6 s for up to 12 keys",
        "      caller: presses 12345678#",
        "      trail: account input_ok variable=account digits=8",
        "  3. confirm: play (zh) you-entered, say digits 12345678, if-correct-press, digits/1; wait 4 s for a key",
        "      caller: presses 1",
        "      trail: confirm menu_choice key=1 target=by_account",
        "  4. by_account: look up the customer by account 12345678",
        "      trail: by_account lookup by=account status=found tier=vip customer_id=1 target=route",
        "      trail: route branch case=0 target=support_zh",
        "      trail: support_zh queue queue=support priority=5",
        "result: queue support with priority 5, requiring after 0s: lang.zh >= 5; after 90s: true; max wait 900 s, "
        "then voicemail; announcing position and estimated wait after 10 s, then every 60 s",
        "variables: CC_ACTION=queue CC_QUEUE=support CC_PRIORITY=5 CC_VAR_language=zh CC_VAR_account=12345678 "
        "CC_VAR_customer_id=1 CC_VAR_customer_tier=vip CC_VAR_customer_language=zh CC_VAR_priority=5",
        "prompts played: hello, for, digits/1, for, digits/2, number, astcc-followed-by-the-pound-key, "
        "you-entered, say digits 12345678, if-correct-press, digits/1",
    ]


def test_simulate_the_service_line_for_a_caller_without_an_account_known_by_number() -> None:
    flows = load_flows(FLOWS)
    result = simulate(flows["service"], parse_digits("1,,,"), caller="+442079460958", at=OPEN,
                      flows=flows.get, lookup=crm)
    assert [(e.kind, e.data.get("status")) for e in result.trail if e.kind in ("input_default", "lookup")] == [
        ("input_default", None), ("lookup", "found")]
    assert (result.finish.queue, result.finish.priority, result.finish.steps) == ("support", 0, None)
    assert result.variables["CC_VAR_customer_tier"] == "regular"


def test_simulate_the_service_line_after_hours() -> None:
    flows = load_flows(FLOWS)
    transfer = simulate(flows["service"], parse_digits("9"), at=CLOSED, flows=flows.get)
    assert [e.kind for e in transfer.trail] == ["schedule", "goto", "menu_choice", "transfer"]
    assert transfer.steps[0].prompts[2] == Say("time", "07:30") and transfer.finish.transfer_to == "+8613900000000"
    message = simulate(flows["service"], parse_digits(""), at=CLOSED, flows=flows.get)
    assert (message.finish.action, message.finish.queue) == ("voicemail", "support")
