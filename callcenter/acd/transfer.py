"""Blind transfer to one named agent, expressed in the router's own terms: skills routing.

Every logged-in agent holds an identity skill, ``agent.<id>`` at the top level. A call transferred
to agent 1002 is queued again with steps whose first step requires ``agent.1002``, so the router
offers it to that agent (and nobody else) when they are free; after ``exclusive_seconds`` the
queue's own steps apply, so a caller is never stuck behind one busy agent. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping

from callcenter.acd.requirements import MAX_LEVEL
from callcenter.acd.steps import Steps, TimeStep, validate_steps

IDENTITY_PREFIX = "agent."
DEFAULT_EXCLUSIVE_SECONDS = 30.0


def identity_skill(agent_id: str) -> str:
    return f"{IDENTITY_PREFIX}{agent_id}"


def with_identity(agent_id: str, skills: Mapping[str, int] | None) -> dict[str, int]:
    """The agent's skills plus their identity skill (which no routing file may set)."""
    return {**(skills or {}), identity_skill(agent_id): MAX_LEVEL}


def is_identity_skill(name: str) -> bool:
    return name.startswith(IDENTITY_PREFIX)


def steps_to_agent(agent_id: str, queue_steps: Steps, exclusive_seconds: float = DEFAULT_EXCLUSIVE_SECONDS) -> Steps:
    """Only ``agent_id`` for ``exclusive_seconds``, then the queue's own time steps, shifted by
    that much. (A queue's metric steps are not carried over: the widening is by time only.)"""
    if exclusive_seconds <= 0:
        raise ValueError(f"exclusive_seconds must be positive, not {exclusive_seconds}")
    ladder = [{"after": 0, "require": f"{identity_skill(agent_id)} >= 1"}]
    ladder += [{"after": exclusive_seconds + step.after, "require": step.require.describe()}
               for step in queue_steps.steps if isinstance(step, TimeStep)]
    return validate_steps(ladder)
