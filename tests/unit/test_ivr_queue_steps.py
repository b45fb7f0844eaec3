"""A queue node may give its callers their own widening steps (e.g. a Chinese-language branch):
validated at load with the routing file's rules, carried by the IVR's outcome, shown by simulate."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from callcenter.ivr.flow import FlowError, parse_flow
from callcenter.ivr.interpreter import Finish, IvrSession
from callcenter.ivr.simulate import render, simulate

FLOW = """start: language
nodes:
  language: {type: menu, prompts: [hello], options: {"1": english, "2": chinese}, default: english}
  english: {type: queue, queue: support}
  chinese:
    type: queue
    queue: support
    steps:
      - {after: 0, require: "lang.zh >= 5"}
      - {after: 60, require: "has(lang.zh)"}
"""


def finish_for(keys: str) -> Finish:
    session = IvrSession(parse_flow(FLOW, "main"), caller_number="100", now=datetime.now(timezone.utc))
    outcome = session.digits(keys) if not isinstance(session.start(), Finish) else None
    assert isinstance(outcome, Finish)
    return outcome


def test_the_queue_nodes_steps_come_with_the_outcome():
    chinese = finish_for("2")
    assert chinese.queue == "support"
    assert chinese.steps.describe() == ["after 0s: lang.zh >= 5", "after 60s: has(lang.zh)"]
    assert finish_for("1").steps is None  # the queue's own steps apply


def test_bad_steps_are_refused_at_load_with_their_place():
    broken = FLOW.replace('after: 60, require: "has(lang.zh)"', 'after: 60, require: "lang.zh >= 11"')
    with pytest.raises(FlowError) as caught:
        parse_flow(broken, "main", source="main.yaml")
    (problem,) = caught.value.problems
    assert (problem.source, problem.line, problem.field) == ("main.yaml", 9, "nodes.chinese.steps")  # its first item
    assert "steps[1]: invalid 'require': level 11 is out of range 0..10" in problem.message


def test_simulate_shows_the_requirement_the_caller_would_wait_with():
    result = simulate(parse_flow(FLOW, "main"), ("2",), caller="100")
    assert result.as_dict()["result"]["steps"] == ["after 0s: lang.zh >= 5", "after 60s: has(lang.zh)"]
    assert "result: queue support with priority 0, requiring after 0s: lang.zh >= 5; after 60s: has(lang.zh)" \
        in render(result)
