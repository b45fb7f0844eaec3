"""An agent's own figures for today, as the desktop shows them: the same definitions as the KPI
reports (callcenter.kpi.definitions), over the agent's own events only. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from callcenter.kpi.definitions import ANSWERED, OFFER_FAILURE_KINDS, agent_kpis, agent_spans, reconstruct_calls


def agent_day_figures(rows: Iterable[Mapping[str, Any]], agent_id: str, start: float, now: float) -> dict[str, Any]:
    rows = list(rows)
    calls = [c for c in reconstruct_calls(rows) if c.outcome == ANSWERED and c.agent_id == agent_id]
    spans = [s for s in agent_spans(rows) if s.agent_id == agent_id]
    missed = sum(1 for r in rows if r["kind"] in OFFER_FAILURE_KINDS and r.get("agent_id") == agent_id)
    k = agent_kpis(agent_id, calls, spans, missed, start, now, now)
    return {"answered": k.answered, "handled": k.handled, "aht": k.aht, "avg_talk": k.avg_talk,
            "avg_acw": k.avg_acw, "missed": k.offers_not_taken, "logged_in": k.logged_in_time,
            "paused": k.paused_time, "occupancy": k.occupancy}
