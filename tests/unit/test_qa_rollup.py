"""Scores rolled up per agent and per team: averages of totals, lowest and highest, critical
failures counted, agents without a team under "(none)", and a stable order."""

from __future__ import annotations

from callcenter.qa.rollup import roll_up


def evaluation(agent_id: str, total: float, critical: bool = False) -> dict:
    return {"agent_id": agent_id, "total": total, "critical_failed": ["verified"] if critical else []}


def test_agents_and_teams_are_summed_up():
    rows = [evaluation("1002", 90.0), evaluation("1001", 80.0), evaluation("1001", 0.0, critical=True),
            evaluation("1001", 95.0), evaluation("1003", 70.0), evaluation("1009", 66.66)]
    teams = {"1001": "blue", "1002": "blue", "1003": "red", "1004": "red"}
    assert roll_up(rows, teams) == {
        "agents": [
            {"agent_id": "1001", "team": "blue", "evaluations": 3, "average": 58.3, "min": 0.0, "max": 95.0,
             "critical_failures": 1},
            {"agent_id": "1002", "team": "blue", "evaluations": 1, "average": 90.0, "min": 90.0, "max": 90.0,
             "critical_failures": 0},
            {"agent_id": "1003", "team": "red", "evaluations": 1, "average": 70.0, "min": 70.0, "max": 70.0,
             "critical_failures": 0},
            {"agent_id": "1009", "team": "(none)", "evaluations": 1, "average": 66.7, "min": 66.66, "max": 66.66,
             "critical_failures": 0},
        ],
        "teams": [
            # each evaluation weighs once: (80 + 0 + 95 + 90) / 4
            {"team": "blue", "agents": 2, "evaluations": 4, "average": 66.3},
            {"team": "red", "agents": 1, "evaluations": 1, "average": 70.0},
            {"team": "(none)", "agents": 1, "evaluations": 1, "average": 66.7},
        ],
    }


def test_the_order_does_not_depend_on_the_input_order():
    rows = [evaluation(a, t) for a, t in [("1003", 50.0), ("1001", 70.0), ("1002", 60.0)]]
    teams = {"1001": "zulu", "1002": "alpha"}
    forward, backward = roll_up(rows, teams), roll_up(reversed(rows), teams)
    assert forward == backward
    assert [a["agent_id"] for a in forward["agents"]] == ["1001", "1002", "1003"]
    assert [t["team"] for t in forward["teams"]] == ["alpha", "zulu", "(none)"]


def test_nothing_to_roll_up():
    assert roll_up([], {"1001": "blue"}) == {"agents": [], "teams": []}
