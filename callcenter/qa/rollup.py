"""Scores rolled up per agent and per team (pure): what a QA lead or supervisor reads for a period.

Averages are plain means of evaluation totals, so a team's average weighs each evaluation once
(an agent with ten evaluations counts ten times as much as an agent with one). A critically failed
evaluation counts with its total of 0, as it was scored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from callcenter.qa.forms import one_decimal

NO_TEAM = "(none)"


def roll_up(evaluations: Iterable[Mapping], teams: Mapping[str, str]) -> dict:
    """``evaluations``: rows with agent_id, total and critical_failed (the store's dicts);
    ``teams``: agent id -> team today (agents missing from it go under "(none)").

    Returns {"agents": [...by agent id], "teams": [...by team, "(none)" last]}.
    """
    totals_by_agent: dict[str, list[float]] = {}
    critical_by_agent: dict[str, int] = {}
    for row in evaluations:
        agent_id = row["agent_id"]
        totals_by_agent.setdefault(agent_id, []).append(float(row["total"]))
        critical_by_agent[agent_id] = critical_by_agent.get(agent_id, 0) + (1 if row["critical_failed"] else 0)

    agents = []
    totals_by_team: dict[str, list[float]] = {}
    agents_by_team: dict[str, int] = {}
    for agent_id in sorted(totals_by_agent):
        totals = totals_by_agent[agent_id]
        team = teams.get(agent_id) or NO_TEAM
        agents.append({"agent_id": agent_id, "team": team, "evaluations": len(totals), "average": _mean(totals),
                       "min": min(totals), "max": max(totals), "critical_failures": critical_by_agent[agent_id]})
        totals_by_team.setdefault(team, []).extend(totals)
        agents_by_team[team] = agents_by_team.get(team, 0) + 1

    teams_rows = [{"team": team, "agents": agents_by_team[team], "evaluations": len(totals_by_team[team]),
                   "average": _mean(totals_by_team[team])}
                  for team in sorted(totals_by_team, key=lambda name: (name == NO_TEAM, name))]
    return {"agents": agents, "teams": teams_rows}


def _mean(values: list[float]) -> float:
    return one_decimal(sum(values) / len(values))
