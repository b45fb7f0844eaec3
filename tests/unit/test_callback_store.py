"""The callback store on real databases (a SQLite file, and a throwaway PostgreSQL server):
idempotent virtual-hold adds, web callbacks' call ids, attempts that only one racer can start,
releases that do not count as attempts, and open callbacks surviving a re-opened database."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, make_url, text

from callcenter.callback.model import (
    AttemptDecision,
    CallbackPolicy,
    ValidatedRequest,
    after_attempt,
    validate_web_request,
)
from callcenter.callback.store import CallbackStore, callbacks_table, create_tables
from callcenter.storage import make_engine

NOW = 1_772_618_400.0      # 2026-03-04 10:00 UTC
POLICY = CallbackPolicy(max_attempts=3, retry_after_seconds=300, priority=5)


def sqlite_engine(directory: Path) -> Engine:
    engine = make_engine(f"sqlite:///{directory / 'callbacks.db'}")
    create_tables(engine)
    return engine


def postgres_engine(url: str) -> Engine:
    """An engine whose tables live in a schema of their own (the tests share one server)."""
    schema = f"t{uuid.uuid4().hex[:12]}"
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    engine = make_engine(scoped.render_as_string(hide_password=False))
    create_tables(engine)
    return engine


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path: Path) -> Iterator[Engine]:
    engine = (sqlite_engine(tmp_path) if request.param == "sqlite"
              else postgres_engine(request.getfixturevalue("postgres_url")))
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> CallbackStore:
    return CallbackStore(engine)


def web_request(number: str = "+12025550143", **changes) -> ValidatedRequest:
    fields = {"queue": "sales", "number": number, "name": "Zoë", "note": None, "not_before": None,
              "not_after": None}
    return ValidatedRequest(**{**fields, **changes})


def hold(store: CallbackStore, call_id: str = "1700000000.1", **changes):
    fields = {"queue": "sales", "number": "+12025550143", "priority": 2, "enqueued_at": NOW - 300, "now": NOW}
    return store.add_hold(call_id, **{**fields, **changes})


# ------------------------------------------------------------------------------ schema
def test_create_tables_is_idempotent_and_keeps_rows(tmp_path: Path) -> None:
    engine = sqlite_engine(tmp_path)
    hold(CallbackStore(engine))
    create_tables(engine)
    assert {c["name"] for c in inspect(engine).get_columns("callbacks")} == set(callbacks_table.c.keys())
    assert len(CallbackStore(engine).open_callbacks()) == 1
    assert {i["name"] for i in inspect(engine).get_indexes("callbacks")} >= {"ix_callbacks_status"}


# ------------------------------------------------------------------------------ adding
def test_add_hold_keeps_the_place_in_line(store: CallbackStore) -> None:
    callback = hold(store)
    assert (callback.call_id, callback.source, callback.status, callback.attempts) == \
        ("1700000000.1", "hold", "waiting", 0)
    assert (callback.enqueued_at, callback.priority, callback.created_at, callback.updated_at) == \
        (NOW - 300, 2, NOW, NOW)
    assert store.get(callback.id) == callback == store.by_call_id("1700000000.1")


def test_add_hold_is_idempotent_on_the_call_id(store: CallbackStore) -> None:
    first = hold(store)
    store.start_attempt(first.call_id, "1001", NOW + 1)
    again = hold(store, number="+12025550199", enqueued_at=NOW, now=NOW + 5)
    assert again == store.by_call_id(first.call_id)
    assert (again.id, again.number, again.enqueued_at, again.status, again.attempts) == \
        (first.id, "+12025550143", NOW - 300, "dialing", 1)
    assert len(store.search()) == 1


def test_add_hold_refuses_a_number_that_is_not_e164(store: CallbackStore) -> None:
    with pytest.raises(ValueError, match="E.164"):
        hold(store, number="2025550143")
    assert store.search() == []


def test_add_web_gets_a_cb_call_id_and_its_place(store: CallbackStore) -> None:
    now_one = store.add_web(web_request(), POLICY, NOW)
    later = store.add_web(web_request(not_before=NOW + 3600, not_after=NOW + 7200), POLICY, NOW + 1)
    assert now_one.call_id == f"cb-{now_one.id}" and later.call_id == f"cb-{later.id}"
    assert now_one.id != later.id
    assert (now_one.source, now_one.enqueued_at, now_one.priority, now_one.name) == ("web", NOW, 5, "Zoë")
    assert (later.enqueued_at, later.not_before, later.not_after) == (NOW + 3600, NOW + 3600, NOW + 7200)
    assert store.by_call_id(later.call_id) == later


# ------------------------------------------------------------------------------ reading
def test_recent_count_counts_web_requests_for_the_number_since(store: CallbackStore) -> None:
    hold(store)                                             # virtual hold: not a web request
    store.add_web(web_request(), POLICY, NOW - 4000)        # before the window
    store.add_web(web_request(), POLICY, NOW - 3600)        # exactly at its start: counted
    cancelled = store.add_web(web_request(), POLICY, NOW - 10)
    store.set_status(cancelled.call_id, "cancelled", NOW)   # asked is asked, whatever became of it
    store.add_web(web_request("+12025550199"), POLICY, NOW)  # another number
    assert store.recent_count("+12025550143", POLICY.rate_limit_since(NOW)) == 2
    assert store.recent_count("+12025550199", NOW) == 1


def test_the_rate_limit_end_to_end(store: CallbackStore) -> None:
    policy = CallbackPolicy(rate_limit_count=2)
    body = {"number": "(202) 555-0143", "queue": "sales"}
    for i in range(3):
        now = NOW + i
        recent = store.recent_count("+12025550143", policy.rate_limit_since(now))
        try:
            request = validate_web_request(body, policy=policy, known_queues={"sales"}, now=now,
                                           recent_requests_for_number=recent)
        except ValueError as exc:
            assert (i, type(exc).__name__) == (2, "CallbackRateLimited")
        else:
            store.add_web(request, policy, now)
    assert len(store.search()) == 2


def test_search_filters_and_orders_newest_first(store: CallbackStore) -> None:
    a = hold(store, "a", now=NOW)
    b = store.add_web(web_request(), POLICY, NOW + 1)
    c = hold(store, "c", queue="support", now=NOW + 2)
    store.set_status(a.call_id, "cancelled", NOW + 3)
    assert [x.call_id for x in store.search()] == [c.call_id, b.call_id, "a"]
    assert [x.call_id for x in store.search(status="waiting")] == [c.call_id, b.call_id]
    assert [x.call_id for x in store.search(queue="sales", status="waiting")] == [b.call_id]
    assert [x.call_id for x in store.search(limit=1)] == [c.call_id]
    with pytest.raises(ValueError):
        store.search(status="lost")
    with pytest.raises(ValueError):
        store.search(limit=0)


# ------------------------------------------------------------------------------ attempts
def test_start_attempt_second_racer_loses(store: CallbackStore) -> None:
    callback = hold(store)
    won = store.start_attempt(callback.call_id, "1001", NOW + 1)
    lost = store.start_attempt(callback.call_id, "1002", NOW + 1)
    assert won is not None and lost is None
    assert (won.status, won.attempts, won.agent_id, won.updated_at) == ("dialing", 1, "1001", NOW + 1)
    assert store.by_call_id(callback.call_id) == won
    assert store.start_attempt("no-such-call", "1001", NOW) is None


def test_start_attempt_from_many_connections_at_once_has_one_winner(engine: Engine) -> None:
    callback = hold(CallbackStore(engine))
    url = engine.url.render_as_string(hide_password=False)
    racers = 8
    engines = [make_engine(url) for _ in range(racers)]
    barrier = threading.Barrier(racers)
    results: list[object] = [None] * racers

    def race(i: int) -> None:
        store = CallbackStore(engines[i])
        barrier.wait()
        results[i] = store.start_attempt(callback.call_id, f"10{i:02d}", NOW + 1)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for other in engines:
        other.dispose()
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    stored = CallbackStore(engine).by_call_id(callback.call_id)
    assert (stored.status, stored.attempts, stored.agent_id) == ("dialing", 1, winners[0].agent_id)


def test_release_does_not_count_an_attempt(store: CallbackStore) -> None:
    callback = hold(store)
    store.start_attempt(callback.call_id, "1001", NOW + 1)
    released = store.release(callback.call_id, NOW + 20)
    assert (released.status, released.attempts, released.agent_id, released.updated_at) == \
        ("waiting", 0, None, NOW + 20)
    assert store.release(callback.call_id, NOW + 21) is None   # not dialing: nothing to release
    again = store.start_attempt(callback.call_id, "1002", NOW + 30)
    assert again.attempts == 1


def test_finish_attempt_applies_the_decision_until_failed(store: CallbackStore) -> None:
    callback = hold(store)
    now = NOW
    for attempt in (1, 2, 3):
        dialing = store.start_attempt(callback.call_id, "1001", now)
        assert dialing.attempts == attempt
        decision = after_attempt(POLICY, dialing, "busy", now + 40)
        finished = store.finish_attempt(callback.call_id, decision, "busy", now + 40)
        assert (finished.status, finished.last_outcome, finished.next_attempt_at) == \
            (decision.status, "busy", decision.next_attempt_at)
        now = now + 40 + 300
    assert (finished.status, finished.attempts) == ("failed", 3)
    assert store.start_attempt(callback.call_id, "1001", now) is None
    assert store.open_callbacks() == []


def test_finish_attempt_completes_and_does_not_revive_a_cancelled_one(store: CallbackStore) -> None:
    a, b = hold(store, "a"), hold(store, "b")
    store.start_attempt(a.call_id, "1001", NOW)
    done = store.finish_attempt(a.call_id, AttemptDecision("completed", None, True), "answered", NOW + 30)
    assert (done.status, done.last_outcome, done.agent_id) == ("completed", "answered", "1001")
    store.start_attempt(b.call_id, "1002", NOW)
    store.set_status(b.call_id, "cancelled", NOW + 5)
    assert store.finish_attempt(b.call_id, AttemptDecision("waiting", NOW + 300, False), "busy", NOW + 30) is None
    assert store.by_call_id(b.call_id).status == "cancelled"
    with pytest.raises(ValueError):
        store.finish_attempt(a.call_id, AttemptDecision("completed", None, True), "ANSWER", NOW)
    with pytest.raises(ValueError):
        store.finish_attempt(a.call_id, AttemptDecision("dialing", None, False), "busy", NOW)


def test_set_status_ends_only_open_callbacks(store: CallbackStore) -> None:
    callback = hold(store)
    expired = store.set_status(callback.call_id, "expired", NOW + 10)
    assert (expired.status, expired.updated_at) == ("expired", NOW + 10)
    assert store.set_status(callback.call_id, "cancelled", NOW + 11) is None
    assert store.by_call_id(callback.call_id).status == "expired"
    with pytest.raises(ValueError, match="release"):
        store.set_status(callback.call_id, "waiting", NOW)


# ------------------------------------------------------------------------------ restart
def test_open_callbacks_survive_reopening_the_database(tmp_path: Path) -> None:
    engine = sqlite_engine(tmp_path)
    store = CallbackStore(engine)
    dialing = store.add_web(web_request(not_before=NOW + 0.5, not_after=NOW + 7200.75), POLICY, NOW)
    waiting = hold(store, "1700000000.1", enqueued_at=NOW - 300.25)   # added later, ahead in line
    dialing = store.start_attempt(dialing.call_id, "1003", NOW + 1)
    store.set_status(hold(store, "1700000000.2").call_id, "cancelled", NOW)
    store.start_attempt(done := hold(store, "1700000000.3").call_id, "1004", NOW)
    store.finish_attempt(done, AttemptDecision("completed", None, True), "answered", NOW + 2)
    engine.dispose()

    reopened = make_engine(f"sqlite:///{tmp_path / 'callbacks.db'}")
    create_tables(reopened)
    restored = CallbackStore(reopened).open_callbacks()
    assert restored == [waiting, dialing]   # line order (enqueued_at), every field as it was
    reopened.dispose()
