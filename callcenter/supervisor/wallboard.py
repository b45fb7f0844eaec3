"""What the wallboard shows, computed from the router's live state and today's figures. Pure:
the same inputs give the same board, so it is tested without a browser or an engine.

Colour levels (``ok`` / ``warn`` / ``alert``) are decided here from configurable thresholds, so
the page only maps a level to a colour, and a TV screen and a test agree on what is red."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from callcenter.kpi.realtime import RealtimeSnapshot

Level = Literal["ok", "warn", "alert"]


class WallboardSettings(BaseModel):
    """Thresholds of the wallboard's colours, and how often it is pushed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    push_seconds: float = Field(1.0, gt=0, le=60, description="how often open wallboards get a fresh board")
    waiting_warn: int = Field(3, ge=1, description="calls waiting in a queue: amber from this many")
    waiting_alert: int = Field(10, ge=1, description="... red from this many")
    longest_wait_warn: float = Field(30, gt=0, description="seconds the longest caller has waited: amber")
    longest_wait_alert: float = Field(90, gt=0, description="... red")
    sl_warn_margin: float = Field(0.05, ge=0, le=1,
                                  description="service level below target: red; within this margin above it: amber")
    wrapup_warn: float = Field(60, gt=0, description="seconds in wrap-up: amber (an agent stuck in wrap-up)")
    wrapup_alert: float = Field(180, gt=0)
    paused_warn: float = Field(900, gt=0, description="seconds paused: amber")
    paused_alert: float = Field(1800, gt=0)
    call_warn: float = Field(600, gt=0, description="seconds on the current call: amber")
    call_alert: float = Field(1200, gt=0)

    @model_validator(mode="after")
    def _alert_after_warn(self) -> "WallboardSettings":
        for name in ("waiting", "longest_wait", "wrapup", "paused", "call"):
            if getattr(self, f"{name}_alert") < getattr(self, f"{name}_warn"):
                raise ValueError(f"{name}_alert must not be below {name}_warn")
        return self


def level(value: float | None, warn: float, alert: float) -> Level:
    """Higher is worse."""
    if value is None or value < warn:
        return "ok"
    return "alert" if value >= alert else "warn"


def sl_level(value: float | None, target: float, margin: float) -> Level:
    """Lower is worse; no calls yet today is not a problem."""
    if value is None or value >= target + margin:
        return "ok"
    return "warn" if value >= target else "alert"


AGENT_LEVELS = {"wrap_up": ("wrapup_warn", "wrapup_alert"), "paused": ("paused_warn", "paused_alert"),
                "on_call": ("call_warn", "call_alert")}


def build_board(queues: Sequence[Mapping[str, Any]], agents: Sequence[Mapping[str, Any]],
                today: RealtimeSnapshot, settings: WallboardSettings, *, now: float,
                teams: Mapping[str, str | None] | None = None) -> dict[str, Any]:
    """``queues`` / ``agents``: the router's snapshots at ``now``; ``today``: the live KPI
    snapshot (per-queue outcomes since local midnight)."""
    teams = teams or {}
    today_by_queue = {q.queue: q for q in today.queues}
    board_queues = []
    for q in queues:
        waiting = len(q["waiting"]) + len(q["ringing"])
        longest = max((c["wait"] for c in [*q["waiting"], *q["ringing"]]), default=None)
        figures = today_by_queue.get(q["queue"])
        sl = figures.today.service_level.of_offered if figures else None
        target = q["service_level_target"]
        board_queues.append({
            "queue": q["queue"],
            "waiting": waiting,
            "longest_wait": longest,
            "estimated_wait": q["estimated_wait"],
            "agents_available": q["agents_available"],
            "agents_logged_in": q["agents_logged_in"],
            "sl_today": sl,
            "sl_target": target,
            "sl_seconds": q["service_level_seconds"],
            "calls": [{"call_id": c["call_id"], "wait": c["wait"], "priority": c["priority"], "state": state}
                      for state, group in (("waiting", q["waiting"]), ("ringing", q["ringing"])) for c in group],
            "offered_today": figures.today.offered if figures else 0,
            "answered_today": figures.today.answered if figures else 0,
            "abandoned_today": figures.today.abandoned if figures else 0,
            "levels": {
                "waiting": level(waiting, settings.waiting_warn, settings.waiting_alert),
                "longest_wait": level(longest, settings.longest_wait_warn, settings.longest_wait_alert),
                "sl": sl_level(sl, target, settings.sl_warn_margin),
            },
        })
    board_agents = []
    for a in agents:
        if a["state"] == "logged_out":
            continue
        on_call = a["state"] in ("on_call", "wrap_up") and a["call_id"] is not None
        thresholds = AGENT_LEVELS.get(a["state"])
        handled = a["talk_today"] + a.get("wrapup_today", 0.0)
        board_agents.append({
            "agent_id": a["agent_id"],
            "team": teams.get(a["agent_id"]),
            "state": a["state"],
            "reason": a["reason"],
            "seconds_in_state": a["seconds_in_state"],
            "call_id": a["call_id"],
            "call_seconds": a["seconds_in_state"] if a["state"] == "on_call" else None,
            "calls_today": a["calls_today"],
            # talk (holds included) + after-call work, per call answered today
            "aht_today": handled / a["calls_today"] if a["calls_today"] else None,
            "queues": a["queues"],
            "skills": a["skills"],
            "level": level(a["seconds_in_state"], getattr(settings, thresholds[0]), getattr(settings, thresholds[1]))
            if thresholds else "ok",
            "on_call": on_call,
        })
    states: dict[str, int] = {}
    for a in board_agents:
        states[a["state"]] = states.get(a["state"], 0) + 1
    return {
        "at": now,
        "day": today.day,
        "queues": board_queues,
        "agents": board_agents,
        "totals": {
            "waiting": sum(q["waiting"] for q in board_queues),
            "longest_wait": max((q["longest_wait"] for q in board_queues if q["longest_wait"] is not None), default=None),
            "answered_today": sum(q["answered_today"] for q in board_queues),
            "abandoned_today": sum(q["abandoned_today"] for q in board_queues),
            "agents_by_state": dict(sorted(states.items())),
        },
    }
