"""The async customer directory calls use: answers found / not_found from the real store, and
'unavailable' (quickly, without raising) when the store is slow or broken."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

import pytest

from callcenter.crm.lookup import CustomerDirectory, LookupOutcome
from callcenter.crm.store import CrmStore, CustomerCard
from tests.unit.test_crm_store import migrated_store

TIMEOUT = 0.1


@pytest.fixture
def store(tmp_path: Path) -> CrmStore:
    return migrated_store(tmp_path)


class SlowStore:
    """Answers only after ``delay`` seconds, or when released."""

    def __init__(self, delay: float):
        self.delay = delay
        self.release = threading.Event()

    def lookup_by_number(self, raw: str) -> CustomerCard | None:
        self.release.wait(self.delay)
        return None

    lookup_by_account = lookup_by_number


class BrokenStore:
    def lookup_by_number(self, raw: str) -> CustomerCard | None:
        raise ConnectionError("database is down")

    lookup_by_account = lookup_by_number


def test_found_and_not_found(store: CrmStore) -> None:
    li_wei = store.add_customer("Li Wei", phones=["13800138000"], accounts=["12345678"], tier="vip")
    directory = CustomerDirectory(store, timeout_seconds=5)

    async def lookups() -> list[LookupOutcome]:
        return [await directory.lookup("caller", "+86 138 0013 8000"),
                await directory.lookup("account", "12345678"),
                await directory.lookup("caller", "13900139000"),
                await directory.lookup("caller", "anonymous"),
                await directory.lookup("account", "99999999")]

    by_caller, by_account, *nobody = asyncio.run(lookups())
    assert (by_caller.status, by_caller.card.id, by_caller.card.matched_by) == ("found", li_wei, "phone")
    assert (by_account.status, by_account.card.id, by_account.card.matched_by) == ("found", li_wei, "account")
    assert [(o.status, o.card) for o in nobody] == [("not_found", None)] * 3
    assert all(0 <= o.elapsed < 5 for o in (by_caller, by_account, *nobody))


def test_a_slow_store_is_unavailable_after_the_timeout_without_blocking_the_loop(caplog) -> None:
    slow = SlowStore(delay=2.0)
    directory = CustomerDirectory(slow, timeout_seconds=TIMEOUT)

    async def lookup_while_the_loop_ticks() -> tuple[LookupOutcome, int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        outcome = await directory.lookup("caller", "13800138000")
        ticker.cancel()
        slow.release.set()   # let the abandoned worker thread end, so asyncio.run need not wait for it
        return outcome, ticks

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="callcenter.crm.lookup"):
        outcome, ticks = asyncio.run(lookup_while_the_loop_ticks())
    assert (outcome.status, outcome.card) == ("unavailable", None)
    assert TIMEOUT <= outcome.elapsed < TIMEOUT + 0.5
    assert time.monotonic() - started < 1.5
    assert ticks >= 3                           # the event loop kept running meanwhile
    assert "no answer within 0.100s" in caplog.text


def test_a_store_that_raises_is_unavailable(caplog) -> None:
    directory = CustomerDirectory(BrokenStore(), timeout_seconds=TIMEOUT)
    with caplog.at_level(logging.WARNING, logger="callcenter.crm.lookup"):
        outcomes = [asyncio.run(directory.lookup("caller", "13800138000")),
                    asyncio.run(directory.lookup("account", "12345678"))]
    assert [(o.status, o.card) for o in outcomes] == [("unavailable", None)] * 2
    assert "ConnectionError('database is down')" in caplog.text


def test_with_too_many_lookups_stuck_the_next_is_unavailable_at_once() -> None:
    slow = SlowStore(delay=5.0)
    directory = CustomerDirectory(slow, timeout_seconds=TIMEOUT, max_stuck=1)

    async def lookups() -> list[LookupOutcome]:
        stuck = await directory.lookup("caller", "13800138000")        # times out; its thread runs on
        assert directory.stuck == 1
        refused = await directory.lookup("account", "12345678")        # not even tried
        slow.release.set()
        while directory.stuck:                                          # the stuck thread ends
            await asyncio.sleep(0.01)
        slow.release.clear()
        slow.delay = 0
        return [stuck, refused, await directory.lookup("caller", "13800138000")]

    stuck, refused, after = asyncio.run(lookups())
    assert stuck.status == refused.status == "unavailable"
    assert stuck.elapsed >= TIMEOUT > refused.elapsed
    assert after.status == "not_found"                                  # the CRM is back


def test_an_unknown_kind_of_lookup_is_a_programming_error(store: CrmStore) -> None:
    with pytest.raises(ValueError, match="lookup by 'email'"):
        asyncio.run(CustomerDirectory(store, timeout_seconds=TIMEOUT).lookup("email", "x"))  # type: ignore[arg-type]
