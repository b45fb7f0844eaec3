"""Export the event log in Asterisk's queue_log format, for tools that read it (QueueMetrics,
Wazo-style statistics, home-made scripts).

One line per fact: ``epoch|callid|queue|agent|EVENT|data1|data2|...``, as app_queue writes it
(see "Queue Logs" in the Asterisk documentation). ``docs/kpi.md`` has the mapping table.
``queue_log_lines`` is pure; ``export_queue_log`` only writes its lines to a file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callcenter.kpi.definitions import (
    ENGINE_RESET_KINDS,
    LOGGED_OUT,
    OFFER_FAILURE_KINDS,
    PAUSED,
    event_data,
    in_log_order,
)

NONE = "NONE"  # app_queue's placeholder for "no call" / "no member"
# A field may never contain the separator or end the line: caller numbers and pause reasons come
# from outside, and one stray "|" would shift every field after it.
_UNSAFE = re.compile(r"[|\r\n\x00]")


def default_agent_name(agent_id: str) -> str:
    """app_queue logs the member name, which defaults to the interface; our fallback queue's
    members are ``PJSIP/agentNNNN`` without a name, so this keeps one name per agent across the
    engine's export and Asterisk's own queue_log."""
    return f"PJSIP/agent{agent_id}"


def line(ts: float, call_id: str, queue: str, agent: str, event: str, *data: object) -> str:
    fields = [str(math.floor(ts)), call_id, queue, agent, event, *(str(d) for d in data)]
    return "|".join(_UNSAFE.sub("", f) for f in fields)


def whole_seconds(end: float, duration: float) -> int:
    """A duration as app_queue writes it: the difference of two whole-second clock readings."""
    return math.floor(end) - math.floor(end - duration)


@dataclass
class _Call:
    queue: str
    key: tuple[int, float, int]  # the router's caller order: priority, first queued, arrival
    origposition: int
    live: bool = True
    holdtime: int = 0
    answered_at: float = 0.0
    transferred: bool = False  # TRANSFER was written: the agent leg's end is not a COMPLETE*
    offers: dict[str, float] = field(default_factory=dict)  # offer id -> when it rang


@dataclass
class _Exporter:
    agent_name: Callable[[str], str]
    agent_queues: Mapping[str, Sequence[str]]
    calls: dict[str, _Call] = field(default_factory=dict)
    callers: dict[str, str] = field(default_factory=dict)
    agents: dict[str, str] = field(default_factory=dict)
    out: list[str] = field(default_factory=list)

    def position(self, call_id: str, queue: str, key: tuple[int, float, int]) -> int:
        """1 + the calls of the queue still waiting (or ringing) ahead of this one."""
        return 1 + sum(1 for other_id, c in self.calls.items()
                       if other_id != call_id and c.live and c.queue == queue and c.key < key)

    def row(self, row: Mapping[str, Any]) -> None:
        kind, ts, call_id = row["kind"], float(row["ts"]), row.get("call_id") or NONE
        data, agent_id = event_data(row), row.get("agent_id")
        call = self.calls.get(call_id)
        if kind == "call_arrived":
            self.callers[call_id] = str(data.get("caller") or "")
        elif kind == "queued" and row.get("queue"):
            self.queued(ts, call_id, row["queue"], int(data.get("priority") or 0))
        elif kind == "offered" and call is not None:
            call.offers[str(data.get("offer_id"))] = ts
        elif kind in OFFER_FAILURE_KINDS and call is not None and agent_id:
            # app_queue writes RINGNOANSWER for busy and unreachable members too
            rang = ts - call.offers.get(str(data.get("offer_id")), ts)
            self.out.append(line(ts, call_id, call.queue, self.agent_name(agent_id), "RINGNOANSWER",
                                 round(rang * 1000)))
        elif kind == "answered" and call is not None and call.live and agent_id:
            self.answered(ts, call_id, call, agent_id, data)
        elif kind == "transferred" and call is not None and agent_id and not call.live:
            # app_queue: TRANSFER|extension|context|holdtime|calltime|origposition. The caller goes
            # back to our hold loop (context cc-hold) for the target queue, or one agent first.
            target = data.get("to_agent") or data.get("to_queue") or ""
            self.out.append(line(ts, call_id, call.queue, self.agent_name(agent_id), "TRANSFER", target,
                                 "cc-hold", call.holdtime, whole_seconds(ts, ts - call.answered_at),
                                 call.origposition))
            call.transferred = True
        elif kind == "ended" and call is not None and agent_id:
            if not call.transferred:
                event = "COMPLETEAGENT" if data.get("by") == "agent" else "COMPLETECALLER"
                self.out.append(line(ts, call_id, call.queue, self.agent_name(agent_id), event, call.holdtime,
                                     whole_seconds(ts, float(data.get("talk", 0.0))), call.origposition))
            del self.calls[call_id]
        elif kind in ("abandoned", "exited") and call is not None and call.live:
            self.left(ts, call_id, call, kind, data)
        elif kind == "agent_state" and agent_id:
            self.agent_state(ts, agent_id, data.get("state") or LOGGED_OUT, data.get("reason"))
        elif kind in ENGINE_RESET_KINDS:
            self.engine_reset(ts)

    def queued(self, ts: float, call_id: str, queue: str, priority: int) -> None:
        known = self.calls.get(call_id)
        if known is not None:
            known.live = True  # re-announced to a restarted engine: the same stay in the queue
            return
        key = (-priority, ts, len(self.calls))
        call = self.calls[call_id] = _Call(queue, key, origposition=self.position(call_id, queue, key))
        self.out.append(line(ts, call_id, call.queue, NONE, "ENTERQUEUE", "", self.callers.get(call_id, "")))

    def answered(self, ts: float, call_id: str, call: _Call, agent_id: str, data: Mapping[str, Any]) -> None:
        offer_id = str(data.get("offer_id"))
        rang_ms = round((ts - call.offers.get(offer_id, ts)) * 1000)
        call.holdtime = whole_seconds(ts, float(data.get("wait", 0.0)))
        call.answered_at = ts
        call.live = False
        # The agent leg's uniqueid is ours (acd.shell.leg_id): "<call id>-o<n>" for offer "<call id>/<n>".
        leg = offer_id.replace("/", "-o")
        self.out.append(line(ts, call_id, call.queue, self.agent_name(agent_id), "CONNECT",
                             call.holdtime, leg, rang_ms // 1000))

    def left(self, ts: float, call_id: str, call: _Call, kind: str, data: Mapping[str, Any]) -> None:
        position = self.position(call_id, call.queue, call.key)
        # Every exit goes to the fallback route; app_queue's nearest is EXITWITHTIMEOUT (exact for
        # fallback:max_hold, the timeout; fallback:heartbeat is our engine failing, which
        # app_queue has no event for).
        event = "ABANDON" if kind == "abandoned" else "EXITWITHTIMEOUT"
        self.out.append(line(ts, call_id, call.queue, NONE, event, position, call.origposition,
                             whole_seconds(ts, float(data.get("wait", 0.0)))))
        del self.calls[call_id]

    def agent_state(self, ts: float, agent_id: str, state: str, reason: str | None) -> None:
        before = self.agents.get(agent_id, LOGGED_OUT)
        self.agents[agent_id] = state
        if before == LOGGED_OUT and state != LOGGED_OUT:
            self.member(ts, agent_id, "ADDMEMBER", "")
        if state == LOGGED_OUT and before != LOGGED_OUT:
            self.member(ts, agent_id, "REMOVEMEMBER", "")
        elif state == PAUSED:
            self.member(ts, agent_id, "PAUSE", reason or "")
        elif before == PAUSED:
            self.member(ts, agent_id, "UNPAUSE", "")

    def engine_reset(self, ts: float) -> None:
        # The engine forgot its agents (they log in again) and its callers (they re-announce).
        for agent_id, state in sorted(self.agents.items()):
            if state != LOGGED_OUT:
                self.agent_state(ts, agent_id, LOGGED_OUT, None)
        for call in self.calls.values():
            call.live = False

    def member(self, ts: float, agent_id: str, event: str, data: str) -> None:
        # Agent events carry no queue: one line per queue the agent is known to serve, else "NONE".
        for queue in self.agent_queues.get(agent_id) or (NONE,):
            self.out.append(line(ts, NONE, queue, self.agent_name(agent_id), event, data))


def queue_log_lines(rows: Iterable[Mapping[str, Any]], *,
                    agent_name: Callable[[str], str] = default_agent_name,
                    agent_queues: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """The queue_log lines for ``rows`` (any order; they are put in log order), without newlines."""
    exporter = _Exporter(agent_name, agent_queues or {})
    for row in in_log_order(rows):
        exporter.row(row)
    return exporter.out


def export_queue_log(rows: Iterable[Mapping[str, Any]], path: str | Path, **options: Any) -> int:
    """Write the lines to ``path`` (replacing it); returns how many were written."""
    lines = queue_log_lines(rows, **options)
    Path(path).write_text("".join(f"{text}\n" for text in lines), encoding="utf-8")
    return len(lines)
