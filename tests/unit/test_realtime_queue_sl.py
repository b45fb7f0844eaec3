"""RealtimeKpis with per-queue service-level thresholds (``queue_sl_seconds``): the queue's own
threshold decides whether a call was answered (or abandoned) "within", the snapshot reports that
threshold, and a queue without one falls back to the global ``sl_seconds``."""

from __future__ import annotations

from datetime import UTC, datetime

from callcenter.acd.model import Event, QueueConfig
from callcenter.acd.router import Router
from callcenter.kpi.realtime import RealtimeKpis

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC).timestamp()


class Rows:
    """Event rows shaped like the ones the router and the event log write."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, offset: float, kind: str, call_id: str | None, queue: str | None = None,
            agent_id: str | None = None, **data) -> dict:
        row = {"id": len(self.rows) + 1, "ts": T0 + offset, "kind": kind, "call_id": call_id, "queue": queue,
               "agent_id": agent_id, "data": data}
        self.rows.append(row)
        return row

    def answered(self, call_id: str, queue: str, at: float, wait: float) -> None:
        self.add(at - wait, "queued", call_id, queue, priority=0)
        self.add(at, "answered", call_id, queue, "1001", offer_id=f"{call_id}/1", wait=wait)

    def abandoned(self, call_id: str, queue: str, at: float, wait: float) -> None:
        self.add(at - wait, "queued", call_id, queue, priority=0)
        self.add(at, "abandoned", call_id, queue, wait=wait, stage="waiting")


def fed(rows: Rows, **kwargs) -> RealtimeKpis:
    live = RealtimeKpis(tz="UTC", **kwargs)
    for row in sorted(rows.rows, key=lambda r: (r["ts"], r["id"])):
        live.apply(row)
    return live


def today(live: RealtimeKpis, queue: str, now: float = T0 + 3600):
    return {q.queue: q for q in live.snapshot(now).queues}[queue].today


OWN = {"sales": 30.0}  # sales has its own 30 s; support none: the global 20 s


def test_a_25_s_answer_is_within_for_a_30_s_queue_and_not_for_the_20_s_default():
    rows = Rows()
    rows.answered("s1", "sales", at=100, wait=25)
    rows.answered("p1", "support", at=200, wait=25)
    live = fed(rows, sl_seconds=20, queue_sl_seconds=OWN.get)
    sales, support = today(live, "sales"), today(live, "support")
    assert (sales.answered, sales.service_level.answered_within, sales.service_level.of_offered) == (1, 1, 1.0)
    assert (support.answered, support.service_level.answered_within, support.service_level.of_offered) == (1, 0, 0.0)


def test_the_snapshot_reports_each_queues_threshold():
    rows = Rows()
    rows.answered("s1", "sales", at=100, wait=5)
    rows.answered("p1", "support", at=100, wait=5)
    live = fed(rows, sl_seconds=20, queue_sl_seconds=OWN.get)
    assert today(live, "sales").service_level.threshold == 30.0
    assert today(live, "support").service_level.threshold == 20.0


def test_a_queue_with_no_call_today_still_reports_its_own_threshold():
    rows = Rows()
    rows.answered("s1", "sales", at=100, wait=5)
    live = fed(rows, sl_seconds=20, queue_sl_seconds=OWN.get)
    tomorrow = today(live, "sales", now=T0 + 86400)
    assert (tomorrow.offered, tomorrow.service_level.threshold, tomorrow.service_level.of_offered) == (0, 30.0, None)


def test_none_falls_back_to_the_global_threshold():
    rows = Rows()
    rows.answered("s1", "sales", at=100, wait=25)
    by_default = fed(rows, sl_seconds=20)  # no queue_sl_seconds at all
    assert (today(by_default, "sales").service_level.threshold,
            today(by_default, "sales").service_level.answered_within) == (20, 0)
    none_for_all = fed(rows, sl_seconds=30, queue_sl_seconds=lambda queue: None)
    assert (today(none_for_all, "sales").service_level.threshold,
            today(none_for_all, "sales").service_level.answered_within) == (30, 1)


def test_a_queues_own_threshold_may_be_stricter_than_the_global_one():
    rows = Rows()
    rows.answered("s1", "sales", at=100, wait=15)
    live = fed(rows, sl_seconds=20, queue_sl_seconds={"sales": 10.0}.get)
    assert today(live, "sales").service_level.answered_within == 0


def test_a_wait_exactly_on_the_queues_threshold_is_within():
    rows = Rows()
    rows.answered("s1", "sales", at=100, wait=30)
    rows.answered("s2", "sales", at=200, wait=30.001)
    live = fed(rows, sl_seconds=20, queue_sl_seconds=OWN.get)
    assert today(live, "sales").service_level.answered_within == 1


def test_abandons_within_follow_the_queues_threshold_too():
    rows = Rows()
    rows.answered("s1", "sales", at=100, wait=10)
    rows.abandoned("s2", "sales", at=200, wait=25)  # within 30 s: a "met" abandon for sales
    rows.answered("p1", "support", at=100, wait=10)
    rows.abandoned("p2", "support", at=200, wait=25)  # not within the global 20 s
    live = fed(rows, sl_seconds=20, queue_sl_seconds=OWN.get)
    sales, support = today(live, "sales").service_level, today(live, "support").service_level
    assert (sales.abandoned_within, sales.abandons_met) == (1, 1.0)
    assert (support.abandoned_within, support.abandons_met) == (0, 0.5)


def test_the_threshold_is_read_when_a_call_resolves():
    """A reloaded routing file counts from then on: calls already counted keep their verdict."""
    thresholds = {"sales": 30.0}
    rows = Rows()
    rows.answered("s1", "sales", at=100, wait=25)
    live = RealtimeKpis(tz="UTC", sl_seconds=20, queue_sl_seconds=thresholds.get)
    for row in rows.rows:
        live.apply(row)
    thresholds["sales"] = 20.0  # the routing file was reloaded
    later = Rows()
    later.answered("s2", "sales", at=300, wait=25)
    for row in later.rows:
        live.apply(row)
    sl = today(live, "sales").service_level
    assert (sl.answered_within, sl.threshold) == (1, 20.0)


def test_wired_like_the_engine_to_the_routers_queue_configs():
    router = Router([QueueConfig("sales", service_level_seconds=30), QueueConfig("support")],
                    ring_timeout=15, wrapup_seconds=0)
    live = RealtimeKpis(tz="UTC", sl_seconds=20,
                        queue_sl_seconds=lambda q: router.queue_config(q).service_level_seconds)
    steps = [(0, lambda t: router.enqueue("s1", "sales", t)), (0, lambda t: router.enqueue("p1", "support", t)),
             (25, lambda t: router.login("1001", ["sales"], t)), (25, lambda t: router.offer_answered("s1/1", t)),
             (25, lambda t: router.login("1002", ["support"], t)), (25, lambda t: router.offer_answered("p1/1", t))]
    for offset, step in steps:
        for effect in step(T0 + offset):
            if isinstance(effect, Event):
                live.apply({"ts": T0 + offset, "kind": effect.kind, "call_id": effect.call_id, "queue": effect.queue,
                            "agent_id": effect.agent_id, "data": effect.data})
    snap = {q.queue: q.today for q in live.snapshot(T0 + 60).queues}
    assert (snap["sales"].answered, snap["sales"].service_level.answered_within,
            snap["sales"].service_level.threshold) == (1, 1, 30)
    assert (snap["support"].answered, snap["support"].service_level.answered_within,
            snap["support"].service_level.threshold) == (1, 0, 20)  # QueueConfig's default 20 s
