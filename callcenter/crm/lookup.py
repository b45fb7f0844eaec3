"""The CRM as the call flow sees it: an async lookup that always answers within its timeout.

A caller must never wait on the CRM. The synchronous store runs in a worker thread; a lookup that is
slow or fails is reported as 'unavailable' (treated as an unknown caller) with a warning, instead
of holding up the call or raising into the call flow.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from callcenter.crm.store import CustomerCard

log = logging.getLogger(__name__)

LookupKey = Literal["caller", "account"]
LookupStatus = Literal["found", "not_found", "unavailable"]

# A timed-out lookup's worker thread cannot be stopped and runs on (see CustomerDirectory.lookup).
# With this many of them still running the database is clearly stuck: answer 'unavailable' at once
# rather than take more threads from the default executor, which asyncio.to_thread shares with the
# rest of the engine. Lookups that are merely in flight do not count, so a burst of calls is fine.
DEFAULT_MAX_STUCK = 4
T = TypeVar("T")


class CustomerSource(Protocol):
    """What the directory needs of a store (CrmStore has it)."""

    def lookup_by_number(self, raw: str) -> CustomerCard | None: ...

    def lookup_by_account(self, digits: str) -> CustomerCard | None: ...


def query_by(store: CustomerSource, by: LookupKey) -> Callable[[str], CustomerCard | None]:
    """The store's lookup for ``by``: the caller's number, or an account number. An unknown ``by``
    is a programming error and raises ValueError."""
    if by == "caller":
        return store.lookup_by_number
    if by == "account":
        return store.lookup_by_account
    raise ValueError(f"lookup by {by!r}: expected 'caller' or 'account'")


@dataclass(frozen=True)
class LookupOutcome:
    status: LookupStatus
    card: CustomerCard | None
    elapsed: float                   # seconds the caller waited for this answer


class CustomerDirectory:
    """Finds the customer for a call by caller ID or account number, in at most ``timeout_seconds``."""

    def __init__(self, store: CustomerSource, timeout_seconds: float, *,
                 max_stuck: int = DEFAULT_MAX_STUCK, clock: Callable[[], float] = time.monotonic):
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, not {timeout_seconds}")
        self.store = store
        self.timeout_seconds = timeout_seconds
        self.max_stuck = max_stuck
        self.clock = clock
        # Store calls whose thread has not returned yet (held here: the loop keeps only weak
        # references to tasks), and among them those nobody waits for any more.
        self._running: set[asyncio.Task] = set()
        self._stuck: set[asyncio.Task] = set()

    async def lookup(self, by: LookupKey, value: str) -> LookupOutcome:
        """'found' with the card, 'not_found', or 'unavailable' (timed out, failed, or too many
        earlier lookups still stuck). Never raises for the store's sake; an unknown ``by`` is a
        programming error and raises ValueError."""
        query = query_by(self.store, by)
        started = self.clock()
        answered, card = await self.bounded(f"CRM lookup by {by} {value!r}", query, value)
        status: LookupStatus = "unavailable" if not answered else ("found" if card else "not_found")
        outcome = self._outcome(status, card, started)
        log.debug("CRM lookup by %s %r: %s in %.3fs", by, value, outcome.status, outcome.elapsed)
        return outcome

    async def bounded(self, what: str, work: Callable[..., T], *args: object) -> tuple[bool, T | None]:
        """Run the synchronous ``work(*args)`` against the CRM in a worker thread, waiting at most
        the timeout: (True, its result), or (False, None) if it timed out, failed, or too many
        earlier calls are still stuck. Never raises for the store's sake."""
        if self.stuck >= self.max_stuck:
            log.warning("%s: %d timed-out CRM calls still running; treated as unavailable", what, self.stuck)
            return False, None
        # The store call is a task of its own, shielded from wait_for's cancellation: on a timeout
        # (or when the call goes away) we stop waiting, but the worker thread cannot be interrupted
        # and runs the query to its end; the task tracks it until then.
        call = asyncio.create_task(asyncio.to_thread(work, *args), name=f"crm: {what}")
        self._running.add(call)
        call.add_done_callback(self._finished)
        try:
            return True, await asyncio.wait_for(asyncio.shield(call), self.timeout_seconds)
        except TimeoutError:
            log.warning("%s: no answer within %.3fs; treated as unavailable", what, self.timeout_seconds)
        except Exception as exc:  # whatever the store raises, the call goes on
            log.warning("%s failed: %r; treated as unavailable", what, exc)
        finally:
            if not call.done():  # timed out, or the caller's task was cancelled
                self._stuck.add(call)
        return False, None

    @property
    def stuck(self) -> int:
        """Lookups that timed out (or were abandoned) and whose worker thread still runs."""
        return len(self._stuck)

    def _outcome(self, status: LookupStatus, card: CustomerCard | None, started: float) -> LookupOutcome:
        return LookupOutcome(status, card, self.clock() - started)

    def _finished(self, call: asyncio.Task) -> None:
        self._running.discard(call)
        self._stuck.discard(call)
        # Fetch the exception of a call nobody waited for, so asyncio does not report it as lost.
        if not call.cancelled() and (exc := call.exception()) is not None:
            log.debug("CRM lookup finished with %r", exc)
