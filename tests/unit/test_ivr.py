"""The IVR flow loader (schema, references, error positions) and the pure interpreter."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.ivr.flow import FlowError, MenuNode, QueueNode, load_flow, load_flows
from callcenter.ivr.interpreter import Collect, Finish, IvrSession, IvrStateError, Play, TrailEntry
from tests.unit.ivr_samples import FLOW, MAIN, MENU_PROMPTS, QUEUES



def write_flow(tmp_path: Path, text: str, name: str = "main") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def load_error(tmp_path: Path, text: str, **kwargs) -> str:
    path = write_flow(tmp_path, text)
    with pytest.raises(FlowError) as exc:
        load_flow(path, **kwargs)
    return str(exc.value).replace(str(path), "main.yaml")


# ------------------------------------------------------------------------------------ loading


def test_main_flow_loads() -> None:
    flow = load_flow(MAIN, known_queues=QUEUES)
    assert flow.name == "main" and flow.start == "welcome"
    welcome = flow.nodes["welcome"]
    assert isinstance(welcome, MenuNode)
    assert welcome.prompts == MENU_PROMPTS
    assert welcome.options == {"1": "sales", "2": "support"}
    assert (welcome.timeout, welcome.retries, welcome.default) == (5, 2, "support")
    assert welcome.invalid_prompts == ("pm-invalid-option",)
    assert welcome.timeout_prompts == ("please-try-again",)
    assert flow.nodes["sales"] == QueueNode(type="queue", queue="sales", priority=0)
    assert flow.nodes["support"] == QueueNode(type="queue", queue="support", priority=0)


def test_load_flows_names_flows_by_file_stem(tmp_path: Path) -> None:
    write_flow(tmp_path, MAIN.read_text(), "main")
    write_flow(tmp_path, FLOW, "after_hours")
    (tmp_path / "notes.txt").write_text("not a flow")
    (tmp_path / ".#main.yaml").write_text("editor lock file")
    flows = load_flows(tmp_path, known_queues=QUEUES)
    assert sorted(flows) == ["after_hours", "main"]
    assert flows["after_hours"].nodes["bye"].prompts == ("vm-goodbye",)


def test_load_flows_reports_every_bad_file(tmp_path: Path) -> None:
    write_flow(tmp_path, FLOW.replace("queue: sales}", "queue: billing}"), "a")
    write_flow(tmp_path, FLOW.replace("vm-goodbye]}", "vm-goodbye], extra: 1}"), "b")
    write_flow(tmp_path, FLOW.replace('"2": bye', '"2": gone'), "c")
    with pytest.raises(FlowError) as exc:
        load_flows(tmp_path, known_queues=QUEUES)
    assert [(Path(p.source).name, p.line, p.field) for p in exc.value.problems] == [
        ("a.yaml", 8, "nodes.sales.queue"),
        ("b.yaml", 9, "nodes.bye.extra"),
        ("c.yaml", 6, "nodes.welcome.options.2"),
    ]


def test_unquoted_digit_option_keys_are_accepted(tmp_path: Path) -> None:
    flow = load_flow(write_flow(tmp_path, FLOW.replace('{"1": sales, "2": bye}', "{1: sales, 2: bye}")))
    assert flow.nodes["welcome"].options == {"1": "sales", "2": "bye"}


# ------------------------------------------------------------------------------ load errors


def test_unknown_key_is_refused_with_its_position(tmp_path: Path) -> None:
    msg = load_error(tmp_path, FLOW.replace("    default: sales\n", "    default: sales\n    repeat: 3\n"))
    assert msg == (
        "main.yaml:8:5: nodes.welcome.repeat: unknown key 'repeat'; expected one of: type, prompts, "
        "options, timeout, retries, invalid_prompts, timeout_prompts, default"
    )


def test_unknown_top_level_key(tmp_path: Path) -> None:
    msg = load_error(tmp_path, "name: main\n" + FLOW)
    assert msg.startswith("main.yaml:1:1: name: unknown key 'name'; expected one of: start, nodes")


def test_dangling_option_target(tmp_path: Path) -> None:
    msg = load_error(tmp_path, FLOW.replace('"1": sales', '"1": salez'))
    assert msg == "main.yaml:6:20: nodes.welcome.options.1: target 'salez' is not a node in this flow"


def test_dangling_default_and_start(tmp_path: Path) -> None:
    msg = load_error(tmp_path, FLOW.replace("start: welcome", "start: hello").replace(
        "default: sales", "default: nobody"))
    assert msg.splitlines() == [
        "main.yaml:1:8: start: start node 'hello' is not a node in this flow",
        "main.yaml:7:14: nodes.welcome.default: target 'nobody' is not a node in this flow",
    ]


def test_dangling_play_next(tmp_path: Path) -> None:
    msg = load_error(tmp_path, FLOW + "  intro: {type: play, prompts: [hello], next: welcom}\n")
    assert msg == "main.yaml:10:47: nodes.intro.next: target 'welcom' is not a node in this flow"


@pytest.mark.parametrize("sound", ["hello.wav", "../etc/passwd", "'a b'", "Hello", "'x\"y'", "/abs"])
def test_bad_sound_name(tmp_path: Path, sound: str) -> None:
    msg = load_error(tmp_path, FLOW.replace("prompts: [vm-goodbye]", f"prompts: [vm-goodbye, {sound}]"))
    assert msg.startswith("main.yaml:9:45: nodes.bye.prompts.1: ")
    assert "is not a sound name" in msg and "no dots, spaces, quotes" in msg


@pytest.mark.parametrize("key", ['"12"', '"a"', "10", '"#1"', '" "'])
def test_bad_option_key(tmp_path: Path, key: str) -> None:
    msg = load_error(tmp_path, FLOW.replace('"2": bye', f"{key}: bye"))
    assert msg.startswith(f"main.yaml:6:27: nodes.welcome.options.{key.strip(chr(34))}: ")
    assert "is not a single key: one of 0-9, * or #" in msg


def test_star_and_hash_are_valid_option_keys(tmp_path: Path) -> None:
    flow = load_flow(write_flow(tmp_path, FLOW.replace('"2": bye', '"*": bye, "#": sales')))
    assert flow.nodes["welcome"].options == {"1": "sales", "*": "bye", "#": "sales"}


def test_unknown_queue(tmp_path: Path) -> None:
    msg = load_error(tmp_path, FLOW.replace("queue: sales}", "queue: billing}"), known_queues=QUEUES)
    assert msg == ("main.yaml:8:31: nodes.sales.queue: queue 'billing' is not a configured queue "
                   "(known: sales, support)")
    # without known_queues only the name's syntax is checked
    assert load_flow(tmp_path / "main.yaml").nodes["sales"].queue == "billing"


@pytest.mark.parametrize(
    ("replace", "expected"),
    [
        (("default: sales", "timeout: 61"), "main.yaml:7:14: nodes.welcome.timeout: Input should be less"),
        (("default: sales", "timeout: 0"), "main.yaml:7:14: nodes.welcome.timeout: Input should be greater"),
        (("default: sales", "retries: 6"), "main.yaml:7:14: nodes.welcome.retries: Input should be less"),
        (("default: sales", "retries: yes"),
         "main.yaml:7:14: nodes.welcome.retries: expected a whole number, got True"),
        (("queue: sales}", "queue: sales, priority: 11}"), "main.yaml:8:48: nodes.sales.priority: Input"),
        (("type: hangup", "type: dial"), "main.yaml:9:8: nodes.bye: unknown node type 'dial'"),
        (("    type: menu\n", ""), "main.yaml:4:5: nodes.welcome: missing 'type'; expected one of: menu"),
        (("    options: {\"1\": sales, \"2\": bye}\n", ""),
         "main.yaml:4:5: nodes.welcome.options: required"),
        (("sales: {type: queue, queue: sales}", "sales: [queue]"),
         "main.yaml:8:10: nodes.sales: expected a mapping"),
    ],
)
def test_schema_errors_name_line_and_field(tmp_path: Path, replace: tuple[str, str], expected: str) -> None:
    assert load_error(tmp_path, FLOW.replace(*replace)).startswith(expected)


def test_duplicate_node_is_refused(tmp_path: Path) -> None:
    msg = load_error(tmp_path, FLOW + "  sales: {type: hangup}\n")
    assert msg == "main.yaml:10:3: duplicate key 'sales'"


def test_yaml_syntax_error_has_position(tmp_path: Path) -> None:
    msg = load_error(tmp_path, FLOW.replace("[hello, digits/1]", "[hello, digits/1"))
    assert msg.startswith("main.yaml:6:") and "invalid YAML" in msg


@pytest.mark.parametrize("text", ["", "- a\n", "just text\n"])
def test_not_a_mapping(tmp_path: Path, text: str) -> None:
    assert "expected a mapping with 'start' and 'nodes'" in load_error(tmp_path, text)


def test_bad_flow_file_name(tmp_path: Path) -> None:
    with pytest.raises(FlowError, match="flow name 'Main Menu'"):
        load_flow(write_flow(tmp_path, FLOW, "Main Menu"))


# -------------------------------------------------------------------------------- interpreter


@pytest.fixture
def main_flow():
    return load_flow(MAIN, known_queues=QUEUES)


def first_collect() -> Collect:
    return Collect(prompts=MENU_PROMPTS, max_digits=1, timeout=5.0)


def kinds(session: IvrSession) -> list[str]:
    return [entry.kind for entry in session.trail]


def test_press_1_goes_to_sales(main_flow) -> None:
    session = IvrSession(main_flow, caller_number="13800138000")
    assert session.start() == first_collect()
    finish = session.digits("1")
    assert finish == Finish(action="queue", queue="sales", priority=0,
                            variables={"CC_ACTION": "queue", "CC_QUEUE": "sales", "CC_PRIORITY": "0"})
    assert session.finished and session.result is finish
    assert session.trail == [
        TrailEntry("welcome", "menu_choice", {"key": "1", "target": "sales"}),
        TrailEntry("sales", "queue", {"queue": "sales", "priority": 0}),
    ]


def test_press_2_goes_to_support(main_flow) -> None:
    session = IvrSession(main_flow)
    session.start()
    finish = session.digits("2")
    assert (finish.action, finish.queue, finish.priority) == ("queue", "support", 0)
    assert finish.variables["CC_QUEUE"] == "support"


def test_timeouts_through_retries_reach_default(main_flow) -> None:
    session = IvrSession(main_flow)
    session.start()
    retry = Collect(prompts=("please-try-again", *MENU_PROMPTS), max_digits=1, timeout=5.0)
    assert session.digits("") == retry
    assert session.digits("") == retry
    finish = session.digits("")
    assert (finish.action, finish.queue) == ("queue", "support")
    assert session.trail == [
        TrailEntry("welcome", "menu_timeout", {}),
        TrailEntry("welcome", "menu_timeout", {}),
        TrailEntry("welcome", "menu_timeout", {}),
        TrailEntry("welcome", "menu_default", {"target": "support"}),
        TrailEntry("support", "queue", {"queue": "support", "priority": 0}),
    ]


def test_invalid_then_timeouts_reach_default(main_flow) -> None:
    session = IvrSession(main_flow)
    session.start()
    after_invalid = session.digits("9")
    assert after_invalid == Collect(prompts=("pm-invalid-option", *MENU_PROMPTS), max_digits=1, timeout=5.0)
    assert session.digits("").prompts == ("please-try-again", *MENU_PROMPTS)
    finish = session.digits("")
    assert finish.queue == "support"
    assert kinds(session) == ["menu_invalid", "menu_timeout", "menu_timeout", "menu_default", "queue"]
    assert session.trail[0].data == {"key": "9"}


def test_valid_key_after_failures_is_taken(main_flow) -> None:
    session = IvrSession(main_flow)
    session.start()
    session.digits("")
    session.digits("*")
    assert session.digits("1").queue == "sales"
    assert kinds(session) == ["menu_timeout", "menu_invalid", "menu_choice", "queue"]


@pytest.mark.parametrize("keys", ["12", "a", "1\n", " 1", "１", "\x00", "1" * 500])
def test_untrusted_keys_are_invalid_and_logged_safely(main_flow, keys: str) -> None:
    session = IvrSession(main_flow)
    session.start()
    assert session.digits(keys).prompts[0] == "pm-invalid-option"
    logged = session.trail[-1]
    assert logged.kind == "menu_invalid"
    assert len(logged.data["key"]) <= 11 and set(logged.data["key"]) <= set("0123456789*#ABCD?.")


def test_no_default_hangs_up(tmp_path: Path) -> None:
    flow = load_flow(write_flow(tmp_path, FLOW.replace("    default: sales\n", "    retries: 0\n")))
    session = IvrSession(flow)
    session.start()
    finish = session.digits("")
    assert finish == Finish(action="hangup", queue=None, priority=0, variables={"CC_ACTION": "hangup"})
    assert session.trail[-1] == TrailEntry("welcome", "hangup", {"reason": "no_default"})


def test_hangup_node_plays_then_finishes(tmp_path: Path) -> None:
    session = IvrSession(load_flow(write_flow(tmp_path, FLOW)))
    session.start()
    assert session.digits("2") == Play(prompts=("vm-goodbye",))
    assert not session.finished
    assert session.played().action == "hangup"
    assert session.trail[-1] == TrailEntry("bye", "hangup", {"reason": "flow"})


def test_play_node_then_menu(tmp_path: Path) -> None:
    intro = "  intro: {type: play, prompts: [hello], next: welcome}\n"
    text = FLOW.replace("start: welcome", "start: intro") + intro
    session = IvrSession(load_flow(write_flow(tmp_path, text)))
    assert session.start() == Play(prompts=("hello",))
    assert session.played() == Collect(prompts=("hello", "digits/1"), max_digits=1, timeout=5.0)


def test_looping_flow_hits_the_step_limit(tmp_path: Path) -> None:
    text = """\
start: a
nodes:
  a: {type: play, prompts: [hello], next: b}
  b: {type: play, prompts: [hello], next: a}
"""
    session = IvrSession(load_flow(write_flow(tmp_path, text)), max_steps=10)
    instr = session.start()
    answers = 0
    while isinstance(instr, Play):
        instr = session.played()
        answers += 1
    assert answers == 10
    assert instr.action == "hangup"
    assert session.trail == [TrailEntry("a", "step_limit", {"steps": 10}),
                             TrailEntry("a", "hangup", {"reason": "step_limit"})]


def test_menu_reentry_resets_retries_but_loops_are_capped(tmp_path: Path) -> None:
    text = FLOW.replace("default: sales", "default: welcome")
    session = IvrSession(load_flow(write_flow(tmp_path, text)))
    instr = session.start()
    while isinstance(instr, Collect):
        instr = session.digits("")
    assert instr.action == "hangup" and session.steps == 101
    assert kinds(session)[:4] == ["menu_timeout", "menu_timeout", "menu_timeout", "menu_default"]
    assert kinds(session)[-2:] == ["step_limit", "hangup"]


def test_out_of_turn_calls_are_refused(main_flow) -> None:
    session = IvrSession(main_flow)
    with pytest.raises(IvrStateError):
        session.digits("1")
    session.start()
    with pytest.raises(IvrStateError):
        session.start()
    with pytest.raises(IvrStateError):
        session.played()
    session.digits("1")
    with pytest.raises(IvrStateError):
        session.digits("1")


def test_same_answers_same_result(main_flow) -> None:
    def run() -> tuple[list[object], list[TrailEntry]]:
        session = IvrSession(main_flow)
        out = [session.start(), session.digits("7"), session.digits(""), session.digits("2")]
        return out, session.trail

    assert run() == run()
