"""The flow linter, the dry-run simulator and the ``callcenter flows`` commands."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from callcenter.acd.config import load_routing
from callcenter.cli import main
from callcenter.config import Settings
from callcenter.ivr.flow import flow_json_schema, load_flow
from callcenter.ivr.lint import Finding, SoundLibrary, lint_file, lint_paths, resolve_in_root
from callcenter.ivr.simulate import parse_digits, render, simulate
from tests.unit.ivr_samples import FLOW, MAIN, MENU_PROMPTS as MENU, QUEUES


REAL_ROOT = Path("/var/cache/callcenter/asterisk-root")
ALLISON = "usr/share/asterisk/sounds/en_US_f_Allison"


def write(directory: Path, text: str, name: str = "main", suffix: str = ".yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}{suffix}"
    path.write_text(text)
    return path


def where(findings: list[Finding]) -> list[tuple[str, int | None, int | None, str]]:
    return [(f.severity, f.line, f.column, f.field) for f in findings]


def lint(path: Path, queues=QUEUES, sounds: SoundLibrary | None = None) -> list[Finding]:
    return lint_file(path, queues=queues, sounds=sounds)


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    """A root laid out like the provisioned one: sounds/en -> /etc/alternatives/asterisk-prompt-en
    -> /usr/share/asterisk/sounds/en_US_f_Allison, both links absolute (meant for inside the root)."""
    root = tmp_path / "root"
    allison = root / ALLISON
    (allison / "digits").mkdir(parents=True)
    (allison / "hello.gsm").write_bytes(b"gsm")
    (allison / "digits" / "1.wav").write_bytes(b"wav")
    (root / "etc/alternatives").mkdir(parents=True)
    os.symlink("/usr/share/asterisk/sounds/en_US_f_Allison", root / "etc/alternatives/asterisk-prompt-en")
    os.symlink("/etc/alternatives/asterisk-prompt-en", root / "usr/share/asterisk/sounds/en")
    return root


# ---------------------------------------------------------------------------- load problems


def test_loader_problems_become_error_findings(tmp_path: Path) -> None:
    path = write(tmp_path, FLOW.replace('"1": sales', '"1": salez'))
    [finding] = lint(path)
    assert finding == Finding("error", str(path), 6, 20, "nodes.welcome.options.1",
                              "target 'salez' is not a node in this flow")
    assert str(finding) == f"{path}:6:20: error: nodes.welcome.options.1: target 'salez' is not a node in this flow"


def test_schema_and_yaml_problems_keep_their_positions(tmp_path: Path) -> None:
    schema = lint(write(tmp_path, FLOW.replace("    default: sales\n", "    default: sales\n    repeat: 3\n")))
    assert where(schema) == [("error", 8, 5, "nodes.welcome.repeat")]
    syntax = lint(write(tmp_path, FLOW.replace("[hello, digits/1]", "[hello, digits/1"), "broken"))
    assert [(f.severity, f.line) for f in syntax] == [("error", 6)] and "invalid YAML" in syntax[0].message


def test_a_clean_flow_has_no_findings(tmp_path: Path) -> None:
    assert lint(write(tmp_path, FLOW)) == []


# ------------------------------------------------------------------------------ graph checks


def test_unreachable_node_is_a_warning_at_its_name(tmp_path: Path) -> None:
    path = write(tmp_path, FLOW + "  orphan: {type: hangup}\n  lost: {type: play, prompts: [hello], next: orphan}\n")
    findings = lint(path)
    assert where(findings) == [("warning", 10, 3, "nodes.orphan"), ("warning", 11, 3, "nodes.lost")]
    assert findings[0].message == "node 'orphan' cannot be reached from the start node 'welcome'"


def test_default_and_play_next_count_as_reaching(tmp_path: Path) -> None:
    text = FLOW.replace("start: welcome", "start: intro").replace('"2": bye', '"2": sales') + \
        "  intro: {type: play, prompts: [hello], next: welcome}\n"
    text = text.replace("default: sales", "default: bye")
    assert lint(write(tmp_path, text)) == []


def test_loop_of_play_nodes_is_an_error(tmp_path: Path) -> None:
    text = """\
start: a
nodes:
  a: {type: play, prompts: [hello], next: b}
  b: {type: play, prompts: [hello], next: c}
  c: {type: play, prompts: [hello], next: a}
"""
    findings = lint(write(tmp_path, text))
    assert where(findings) == [("error", 3, 3, "nodes.a")]
    assert findings[0].message.startswith("loop a -> b -> c -> a never waits for input")


def test_loop_entered_from_a_menu_is_reported_at_its_first_node(tmp_path: Path) -> None:
    text = FLOW.replace('"2": bye', '"2": spin') + """\
  spin: {type: play, prompts: [hello], next: spun}
  spun: {type: play, prompts: [hello], next: spin}
  self: {type: play, prompts: [hello], next: self}
"""
    findings = lint(write(tmp_path, text))
    assert where(findings) == [
        ("warning", 9, 3, "nodes.bye"),
        ("error", 10, 3, "nodes.spin"),
        ("warning", 12, 3, "nodes.self"),
        ("error", 12, 3, "nodes.self"),
    ]
    assert "loop spin -> spun -> spin " in findings[1].message
    assert "loop self -> self " in findings[3].message


def test_loops_through_a_menu_wait_for_input_and_are_fine(tmp_path: Path) -> None:
    text = FLOW.replace('"2": bye', '"2": again') + "  again: {type: play, prompts: [hello], next: welcome}\n"
    text = text.replace("default: sales", "default: welcome")
    assert where(lint(write(tmp_path, text))) == [("warning", 9, 3, "nodes.bye")]


def test_long_chain_does_not_hit_the_recursion_limit(tmp_path: Path) -> None:
    lines = [f"  n{i}: {{type: play, prompts: [hello], next: n{i + 1}}}" for i in range(999)]
    text = "start: n0\nnodes:\n" + "\n".join(lines) + "\n  n999: {type: play, prompts: [hello], next: n0}\n"
    findings = lint(write(tmp_path, text))
    assert where(findings) == [("error", 3, 3, "nodes.n0")]
    assert findings[0].message.count("->") == 1000


# ------------------------------------------------------------------------------------ queues


def test_unknown_queue_is_an_error_and_other_checks_still_run(tmp_path: Path) -> None:
    path = write(tmp_path, FLOW.replace("queue: sales}", "queue: billing}") + "  orphan: {type: hangup}\n")
    findings = lint(path)
    assert where(findings) == [("error", 8, 31, "nodes.sales.queue"), ("warning", 10, 3, "nodes.orphan")]
    # the loader's own wording, as `load_flow(..., known_queues=...)` reports it
    assert findings[0].message == "queue 'billing' is not a configured queue (known: sales, support)"
    assert lint(path, queues=None) == findings[1:]


# ------------------------------------------------------------------------------------ sounds


def test_resolve_in_root_follows_absolute_links_inside_the_root(fake_root: Path) -> None:
    found = resolve_in_root(fake_root, "usr/share/asterisk/sounds/en/hello.gsm")
    assert found == fake_root / ALLISON / "hello.gsm"
    digit = resolve_in_root(fake_root, "/usr/share/asterisk/sounds/en/digits/1.wav")
    assert digit == fake_root / ALLISON / "digits/1.wav"
    assert resolve_in_root(fake_root, "usr/share/asterisk/sounds/en/nothing.gsm") is None


def test_resolve_in_root_never_leaves_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "marker").write_text("inside")
    os.symlink("../../../../../../../../etc", root / "up")  # '..' stops at the root
    os.symlink("/etc", root / "abs")  # '/' is the root's, not the host's
    assert resolve_in_root(root, "up/marker") == root / "etc" / "marker"
    assert resolve_in_root(root, "abs/marker") == root / "etc" / "marker"
    assert resolve_in_root(root, "abs/passwd") is None  # exists on the host, not in the root


def test_resolve_in_root_gives_up_on_link_loops(tmp_path: Path) -> None:
    os.symlink("b", tmp_path / "a")
    os.symlink("/a", tmp_path / "b")
    assert resolve_in_root(tmp_path, "a/x") is None


def test_missing_sound_is_an_error_at_the_prompt(tmp_path: Path, fake_root: Path) -> None:
    # hello.gsm and digits/1.wav exist; vm-goodbye does not
    findings = lint_paths([write(tmp_path / "flows", FLOW)], queues=QUEUES, asterisk_root=fake_root)
    assert where(findings) == [("error", 9, 33, "nodes.bye.prompts.0")]
    assert findings[0].message.startswith("sound 'vm-goodbye' is not in the provisioned Asterisk")
    (fake_root / ALLISON / "vm-goodbye.ulaw").write_bytes(b"ulaw")
    assert lint_paths([tmp_path / "flows"], queues=QUEUES, asterisk_root=fake_root) == []


def test_every_prompt_field_is_checked(tmp_path: Path, fake_root: Path) -> None:
    text = FLOW.replace("    default: sales\n",
                        "    default: sales\n    invalid_prompts: [nope-a]\n    timeout_prompts: [hello, nope-b]\n")
    findings = lint_paths([write(tmp_path, text)], queues=QUEUES, asterisk_root=fake_root)
    assert where(findings) == [
        ("error", 8, 23, "nodes.welcome.invalid_prompts.0"),
        ("error", 9, 30, "nodes.welcome.timeout_prompts.1"),
        ("error", 11, 33, "nodes.bye.prompts.0"),
    ]


def test_sounds_directly_in_the_sounds_folder_count(tmp_path: Path, fake_root: Path) -> None:
    # Asterisk falls back from sounds/<language>/ to sounds/ itself
    (fake_root / "usr/share/asterisk/sounds/vm-goodbye.gsm").write_bytes(b"gsm")
    assert lint_paths([write(tmp_path, FLOW)], queues=QUEUES, asterisk_root=fake_root) == []


def test_without_an_asterisk_root_the_sound_check_is_skipped_once(tmp_path: Path) -> None:
    write(tmp_path / "flows", FLOW, "a")
    write(tmp_path / "flows", FLOW.replace("vm-goodbye", "nope"), "b")
    absent = tmp_path / "no-root"
    findings = lint_paths([tmp_path / "flows"], queues=QUEUES, asterisk_root=absent)
    assert findings == [Finding("warning", str(absent), None, None, "",
                                "sound check skipped: no provisioned Asterisk root here "
                                "(`callcenter asterisk install` builds it)")]


@pytest.mark.skipif(not REAL_ROOT.is_dir(), reason="no provisioned Asterisk root")
def test_main_flow_passes_against_the_real_root() -> None:
    findings = lint_paths([MAIN], queues=load_routing(Settings().routing_file).queue_names, asterisk_root=REAL_ROOT)
    assert findings == []
    # and the check really looks: a prompt the real root lacks is reported
    assert not SoundLibrary(REAL_ROOT).has("no-such-prompt-anywhere")


# ---------------------------------------------------------------------------- directories


def test_directory_lints_every_flow_and_refuses_a_name_twice(tmp_path: Path) -> None:
    flows_dir = tmp_path / "flows"
    write(flows_dir, FLOW, "main")
    write(flows_dir, FLOW.replace('"1": sales', '"1": salez'), "other")
    write(flows_dir, FLOW, "main", ".yml")
    (flows_dir / "notes.txt").write_text("not a flow")
    findings = lint_paths([flows_dir], queues=QUEUES, asterisk_root=None)
    assert [(Path(f.file).name, f.line, f.severity) for f in findings] == [
        ("asterisk_root", None, "warning"),  # no root given: skipped
        ("main.yml", None, "error"),
        ("other.yaml", 6, "error"),
    ]
    assert "flow 'main' is defined twice" in findings[1].message


# ------------------------------------------------------------------------------- simulator


@pytest.fixture
def main_flow():
    return load_flow(MAIN, known_queues=QUEUES)


def test_parse_digits() -> None:
    assert parse_digits("9,,2") == ("9", "", "2")
    assert parse_digits("9,,") == ("9", "", "")
    assert parse_digits("") == ()
    assert parse_digits(" 1 , # ") == ("1", "#")
    with pytest.raises(ValueError, match="'x' is not a phone key"):
        parse_digits("1,x")


def test_press_2_reaches_support(main_flow) -> None:
    result = simulate(main_flow, ["2"], caller="13800138000")
    assert (result.finish.action, result.finish.queue, result.finish.priority) == ("queue", "support", 0)
    assert [(s.node, s.kind, s.prompts, s.pressed, s.received) for s in result.steps] == [
        ("welcome", "collect", MENU, "2", "2")]
    assert [(e.node, e.kind) for e in result.trail] == [("welcome", "menu_choice"), ("support", "queue")]
    assert result.variables == {"CC_ACTION": "queue", "CC_QUEUE": "support", "CC_PRIORITY": "0"}
    assert result.caller == "13800138000" and result.unused_keys == ()


def test_invalid_then_timeouts_reach_the_default(main_flow) -> None:
    at = datetime(2026, 11, 23, 9, 0)
    result = simulate(main_flow, parse_digits("9,,"), at=at)
    assert [(s.pressed, s.prompts[0]) for s in result.steps] == [
        ("9", "hello"), ("", "pm-invalid-option"), ("", "please-try-again")]
    assert [[e.kind for e in s.trail] for s in result.steps] == [
        ["menu_invalid"], ["menu_timeout"], ["menu_timeout", "menu_default", "queue"]]
    assert result.prompts == (*MENU, "pm-invalid-option", *MENU, "please-try-again", *MENU)
    assert result.finish.queue == "support" and result.at == at


def test_running_out_of_keys_is_silence(main_flow) -> None:
    result = simulate(main_flow, ["9"])
    assert [(s.pressed, s.assumed_silence) for s in result.steps] == [("9", False), (None, True), (None, True)]
    assert result.finish.queue == "support"


def test_keys_after_the_end_are_reported_unused(main_flow) -> None:
    result = simulate(main_flow, ["", "1", "2"])
    assert result.finish.queue == "sales" and result.unused_keys == ("2",)


def test_a_menu_reads_only_one_key(main_flow) -> None:
    [step] = simulate(main_flow, ["12"]).steps
    assert (step.pressed, step.received) == ("12", "1")


def test_play_and_hangup_steps(tmp_path: Path) -> None:
    text = FLOW.replace("start: welcome", "start: intro") + "  intro: {type: play, prompts: [hello], next: welcome}\n"
    result = simulate(load_flow(write(tmp_path, text)), ["2"])
    assert [(s.node, s.kind, s.prompts, s.pressed) for s in result.steps] == [
        ("intro", "play", ("hello",), None),
        ("welcome", "collect", ("hello", "digits/1"), "2"),
        ("bye", "play", ("vm-goodbye",), None),
    ]
    assert result.finish.action == "hangup" and result.variables == {"CC_ACTION": "hangup"}
    assert result.trail[-1].data == {"reason": "flow"}


def test_a_looping_flow_still_ends(tmp_path: Path) -> None:
    text = "start: a\nnodes:\n  a: {type: play, prompts: [hello], next: a}\n"
    result = simulate(load_flow(write(tmp_path, text)))
    assert len(result.steps) == 100 and result.finish.action == "hangup"
    assert result.trail[-1].data == {"reason": "step_limit"}


def test_rendering_lists_the_walk_and_the_prompts_in_order(main_flow) -> None:
    text = render(simulate(main_flow, parse_digits("9,,"), caller="555", at=datetime(2026, 11, 23, 9)))
    lines = text.splitlines()
    assert lines[0] == f"flow main ({MAIN}); caller 555; at 2026-11-23 09:00"
    assert lines[1] == "  1. welcome: play hello, for, digits/1, for, digits/2; wait 5 s for a key"
    assert lines[2:4] == ["      caller: presses 9", "      trail: welcome menu_invalid key=9"]
    assert "      trail: welcome menu_default target=support" in lines
    assert lines[-3:] == [
        "result: queue support with priority 0, requiring the queue's own steps",
        "variables: CC_ACTION=queue CC_QUEUE=support CC_PRIORITY=0",
        "prompts played: " + ", ".join((*MENU, "pm-invalid-option", *MENU, "please-try-again", *MENU)),
    ]


def test_result_as_dict_is_json(main_flow) -> None:
    data = json.loads(json.dumps(simulate(main_flow, ["2"], at=datetime(2026, 11, 23, 9)).as_dict()))
    assert data["result"] == {"action": "queue", "queue": "support", "priority": 0, "steps": None,
                              "max_wait": None, "announce": None, "transfer_to": None}
    assert data["at"] == "2026-11-23T09:00:00"
    assert data["steps"][0]["trail"][0] == {"node": "welcome", "kind": "menu_choice",
                                            "data": {"key": "2", "target": "support"}}


# ------------------------------------------------------------------------------------- CLI


@pytest.fixture
def project(tmp_path: Path, fake_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with flows/ and a settings file pointing at it and at the fake root."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CALLCENTER_CONFIG", raising=False)
    (fake_root / ALLISON / "vm-goodbye.gsm").write_bytes(b"gsm")
    write(tmp_path / "flows", FLOW)
    (tmp_path / "routing.yaml").write_text("queues: {sales: {}, support: {}}\n")
    (tmp_path / "settings.yaml").write_text(
        f"flows_dir: {tmp_path / 'flows'}\nasterisk_root: {fake_root}\nrouting_file: {tmp_path / 'routing.yaml'}\n")
    return tmp_path


def run(*args: str):
    return CliRunner().invoke(main, ["--config", "settings.yaml", "flows", *args])


def test_check_passes_on_clean_flows(project: Path) -> None:
    result = run("check")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""


def test_check_fails_and_prints_compiler_style_lines(project: Path) -> None:
    write(project / "flows", FLOW.replace("default: sales", "default: salez"))
    result = run("check")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "flows/main.yaml:7:14: error: nodes.welcome.default: target 'salez' is not a node in this flow"]


def test_check_warnings_alone_do_not_fail(project: Path) -> None:
    write(project / "flows", FLOW + "  orphan: {type: hangup}\n")
    result = run("check")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "flows/main.yaml:10:3: warning: nodes.orphan: node 'orphan' cannot be reached from the start node 'welcome'"]


def test_check_given_paths_and_json_output(project: Path) -> None:
    bad = write(project / "other", FLOW.replace("queue: sales}", "queue: billing}"), "bad")
    result = run("check", "flows", str(bad), "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data == {"ok": False, "errors": 1, "warnings": 0, "findings": [{
        "severity": "error", "file": "other/bad.yaml", "line": 8, "column": 31, "field": "nodes.sales.queue",
        "message": "queue 'billing' is not a configured queue (known: sales, support)"}]}
    clean = json.loads(run("check", "flows", "--format", "json").stdout)
    assert clean == {"ok": True, "errors": 0, "warnings": 0, "findings": []}


def test_check_defaults_to_the_repo_flows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLCENTER_CONFIG", raising=False)
    result = CliRunner().invoke(main, ["flows", "check", "--format", "json"])
    data = json.loads(result.stdout)
    errors = [f for f in data["findings"] if f["severity"] == "error"]
    assert errors == [] and result.exit_code == 0


def test_simulate_by_name_and_by_path(project: Path) -> None:
    by_name = run("simulate", "main", "--digits", "9,,2", "--caller", "555", "--at", "2026-11-23 09:00")
    assert by_name.exit_code == 0, by_name.output
    source = project / "flows" / "main.yaml"
    assert by_name.stdout.splitlines()[0] == f"flow main ({source}); caller 555; at 2026-11-23 09:00"
    assert "result: hangup" in by_name.stdout  # retries 2, third attempt '2' -> bye
    by_path = run("simulate", "flows/main.yaml", "--digits", "1", "--format", "json")
    assert by_path.exit_code == 0
    data = json.loads(by_path.stdout)
    assert data["result"] == {"action": "queue", "queue": "sales", "priority": 0, "steps": None,
                              "max_wait": None, "announce": None, "transfer_to": None}
    assert data["prompts"] == ["hello", "digits/1"] and data["at"] is None


def test_simulate_refuses_bad_input(project: Path) -> None:
    assert run("simulate", "nope").exit_code == 1
    assert run("simulate", "main", "--digits", "1,x").exit_code == 2
    assert run("simulate", "main", "--at", "tomorrow").exit_code == 2
    write(project / "flows", FLOW.replace("queue: sales}", "queue: billing}"))
    unloadable = run("simulate", "main")
    assert unloadable.exit_code == 1 and "queue 'billing' is not a configured queue" in unloadable.output


def test_published_flow_schema_is_the_one_the_loader_validates_with():
    published = json.loads((MAIN.parent / "flow.schema.json").read_text())
    assert published == flow_json_schema(), "regenerate: callcenter flows schema > ivr_flows/flow.schema.json"
    assert set(published["$defs"]) >= {"MenuNode", "QueueNode", "PlayNode", "HangupNode"}
    assert published["additionalProperties"] is False
