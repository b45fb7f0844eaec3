"""The routing file: the shipped one loads, every kind of mistake is reported with file, line,
column and field, and `callcenter routing check` exits non-zero on any of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from callcenter.acd.config import RoutingConfigError, load_routing, parse_routing
from callcenter.acd.model import MaxWaitAction, Strategy
from callcenter.cli import main
from callcenter.config import PROJECT_DIR

GOOD = """\
skills: [billing, lang.zh]
priority_aging_seconds: 120
queues:
  billing:
    strategy: best-proficiency
    weight: 2
    service_level: {target: 0.9, seconds: 15}
    steps:
      - {after: 0, require: "billing >= 7"}
      - {after: 30, require: "billing >= 3"}
    max_wait: {seconds: 300, then: overflow, queue: general}
  general:
    max_wait: {seconds: 600, then: voicemail}
agents:
  "1001": {queues: [billing, general], skills: {billing: 8}, wrapup_seconds: 10}
  "1002": {queues: [general], skills: {lang.zh: 4}, weight: 2}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(RoutingConfigError) as caught:
        parse_routing(text, "r.yaml")
    return [str(p) for p in caught.value.problems]


def test_the_shipped_routing_file_loads_and_covers_every_default_agent():
    plan = load_routing(PROJECT_DIR / "routing.yaml")
    assert plan.queue_names == ["sales", "support", "billing"]
    assert sorted(plan.agents) == [str(n) for n in range(1001, 1011)]


def test_a_good_file_becomes_queue_configs_and_agent_profiles():
    plan = parse_routing(GOOD, "r.yaml")
    billing, general = plan.queues
    assert (billing.strategy, billing.weight, billing.service_level_target, billing.service_level_seconds) == (
        Strategy.BEST_PROFICIENCY, 2, 0.9, 15.0)
    assert billing.steps.describe() == ["after 0s: billing >= 7", "after 30s: billing >= 3"]
    assert (billing.max_wait.action, billing.max_wait.target) == (MaxWaitAction.OVERFLOW, "general")
    assert general.steps.describe() == ["after 0s: true"] and general.strategy is Strategy.LONGEST_IDLE
    assert plan.agents["1001"].skills == {"billing": 8} and plan.agents["1001"].wrapup_seconds == 10
    assert plan.agents["1002"].queues == {"general"} and plan.agents["1002"].weight == 2
    assert (plan.priority_aging_seconds, plan.max_no_answers, plan.known_skills) == (
        120, 1, {"billing", "lang.zh"})


@pytest.mark.parametrize("change, expected", [
    (("strategy: best-proficiency", "strategy: fastest"),
     "r.yaml:5:15: queues.billing.strategy: expected one of: 'longest-idle'"),
    (('"billing >= 3"', '"biling >= 3"'),
     "r.yaml:10:9: queues.billing.steps.1: invalid 'require': unknown skill 'biling' (did you mean 'billing'?)"),
    (("queues: [general], skills", "queues: [genral], skills"),
     "r.yaml:16:20: agents.1002.queues: unknown queue(s) ['genral']"),
    (("skills: {billing: 8}", "skills: {billing: 11}"),
     "r.yaml:15:48: agents.1001.skills: skill 'billing': level must be an integer 1..10"),
    (("skills: {lang.zh: 4}", "skills: {lang.en: 4}"),
     "r.yaml:16:40: agents.1002.skills.lang.en: unknown skill 'lang.en'"),
    (("then: voicemail", "then: overflow, queue: billing"),
     "r.yaml:4:3: queues: queue billing: max_wait overflows in a circle back to billing"),
    (("then: voicemail", "then: overflow"),
     "r.yaml:13:15: queues.general.max_wait: give 'queue' (the overflow target) with 'then: overflow', and only then"),
    (("weight: 2\n", "weight: 2\n    colour: red\n"),
     "r.yaml:7:5: queues.billing.colour: unknown key 'colour'"),
    (('"1002"', '"1001"'), "r.yaml:16:3: duplicate key '1001'"),
    (("{after: 30,", "{after: 0,"), "r.yaml:10:9: queues.billing.steps.1: 'after' 0 must be greater than"),
])
def test_mistakes_are_reported_with_file_line_column_and_field(change, expected):
    old, new = change
    assert old in GOOD
    found = problems(GOOD.replace(old, new, 1))
    assert any(p.startswith(expected) for p in found), found


def test_every_problem_is_reported_at_once():
    text = GOOD.replace("{queues: [general], skills", "{queues: [nope], skills").replace("billing: 8", "tech: 3")
    assert len(problems(text)) == 2


def test_a_file_that_is_not_a_mapping_or_not_yaml_is_refused_clearly(tmp_path: Path):
    assert problems("- just a list\n") == ["r.yaml:1:1: expected a mapping with 'queues' (and usually 'agents')"]
    assert problems("queues: {a: [\n")[0].startswith("r.yaml:2:1: invalid YAML")
    with pytest.raises(RoutingConfigError, match="cannot read routing file"):
        load_routing(tmp_path / "missing.yaml")


def test_routing_check_command_exit_codes_and_json(tmp_path: Path):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GOOD)
    bad.write_text(GOOD.replace("strategy: best-proficiency", "strategy: fastest"))
    ok = CliRunner().invoke(main, ["routing", "check", str(good)])
    assert ok.exit_code == 0 and "billing: best-proficiency; after 0s: billing >= 7" in ok.output
    assert "max wait 300s -> overflow general" in ok.output
    failed = CliRunner().invoke(main, ["routing", "check", str(bad), "--format", "json"])
    assert failed.exit_code == 1
    report = json.loads(failed.stdout)
    assert report["ok"] is False and report["problems"][0]["field"] == "queues.billing.strategy"
    assert (report["problems"][0]["line"], report["problems"][0]["column"]) == (5, 15)
