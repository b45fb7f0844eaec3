"""KPI definitions: what each call-center figure means, computed from event rows.

Pure: the functions take the rows ``callcenter.events.log.read_events`` returns (dicts with
``id``, ``ts``, ``kind``, ``call_id``, ``queue``, ``agent_id``, ``data``) and return dataclasses.
No I/O, no clock (the end of observation is a parameter), no settings. ``docs/kpi.md`` states
every definition in words; the two must say the same thing.

Two kinds of figures, on purpose:
- *call figures* (offered, answered, SL, ASA, AHT, ...) belong to the interval in which the
  call was first queued, whenever it ended;
- *time figures* (logged-in, paused, handling time, occupancy) are agent state time clipped to
  the interval's wall-clock bounds.

Legs have a *direction*: inbound (a caller waiting in the hold loop: the only legs in SL, ASA
and abandonment), callback (the agent-first call back of a hold or web callback) or outbound (a
campaign call). Every answered leg counts for handling (AHT, handled) whatever its direction.
Callbacks and campaign dials are also kept as their own records (``CallbackRecord``,
``CampaignAttempt``) for the callback and campaign figures.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

DEFAULT_SL_SECONDS = 20.0
DEFAULT_SHORT_ABANDON_SECONDS = 5.0
DEFAULT_FCR_DAYS = 7.0

# Interval name -> length in minutes; "day" is a local calendar day (23-25 h across DST).
INTERVALS: dict[str, int | None] = {"15m": 15, "30m": 30, "60m": 60, "1h": 60, "day": None}

ANSWERED, ABANDONED, EXITED = "answered", "abandoned", "exited"
OUTCOME_KINDS = frozenset({ANSWERED, ABANDONED, EXITED})
# An inbound leg the caller left by accepting a callback: neither answered nor abandoned.
CALLBACK = "callback"
# Leg directions.
INBOUND, OUTBOUND = "inbound", "outbound"  # and CALLBACK
# A callback's final status (event kind -> status); a callback leg still open gets the status as outcome.
CALLBACK_FINAL_KINDS = {"callback_completed": "completed", "callback_failed": "failed",
                        "callback_expired": "expired", "callback_cancelled": "cancelled"}
CAMPAIGN_OUTCOMES = ("connected", "busy", "no_answer", "failed", "interrupted", "dnc")
OFFER_FAILURE_KINDS = frozenset({"ring_no_answer", "busy", "unreachable"})
# The engine forgets every agent and call when it stops or starts: callers announce themselves
# again (keeping their place), agents log in again.
ENGINE_RESET_KINDS = frozenset({"engine_started", "engine_stopped"})
LOGGED_OUT, PAUSED, ON_CALL, WRAP_UP = "logged_out", "paused", "on_call", "wrap_up"
HANDLING_STATES = frozenset({ON_CALL, WRAP_UP})


class KpiError(ValueError):
    """A report was asked for with impossible parameters (unknown interval, negative threshold)."""


# ---------------------------------------------------------------------------- rows
def event_data(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row's ``data`` as a dict (a JSON string when read by a driver without JSON support)."""
    data = row.get("data")
    if isinstance(data, str):
        data = json.loads(data or "{}")
    return dict(data or {})


def in_log_order(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Rows in insertion order (``id``); rows without an id keep the order they were given in."""
    return sorted(rows, key=lambda r: r.get("id") or 0)


# ---------------------------------------------------------------------------- calls
@dataclass(frozen=True)
class CallRecord:
    """One queue *leg* of a call as the event log tells it: from entering a queue to its
    outcome and, when answered, to the end of its handling. A call an agent transfers queues
    again: that is a second leg (``leg`` 1) of the same call id, in the target queue."""

    call_id: str
    queue: str
    queued_at: float  # ts of the leg's first `queued` event: decides its interval
    priority: int = 0
    # answered / abandoned / exited; inbound: callback (the caller accepted a callback);
    # callback legs: failed / expired (the callback's final status); None = unresolved
    outcome: str | None = None
    resolved_at: float | None = None
    wait: float | None = None  # the router's `wait`: seconds from enqueue to the outcome
    stage: str | None = None  # abandoned/exited: waiting or ringing
    exit_reason: str | None = None
    agent_id: str | None = None  # who answered
    talk: float | None = None  # answer to end, hold excluded; None while connected or if the end was never seen
    acw: float | None = None  # wrap-up after the call; None until the agent's next state
    live: bool = False  # unresolved and known to the running engine (waiting or ringing)
    leg: int = 0  # 0: the caller's own entry; n: the leg after the n-th transfer
    hold: float = 0.0  # seconds the caller spent on hold with this leg's agent
    ended_by: str | None = None  # caller / agent / transfer, when the engine knew
    transferred_out: bool = False  # this leg's agent transferred the call on
    # inbound / callback / outbound. A leg queued by a transfer is inbound whatever the call was.
    direction: str = INBOUND
    callback_offered: bool = False  # inbound: the hold loop offered this caller a callback
    campaign: str | None = None  # outbound: the campaign that dialled the customer

    @property
    def transferred_in(self) -> bool:
        return self.leg > 0

    @property
    def handle_time(self) -> float | None:
        """talk + hold + ACW, each second once; None until all three are known."""
        if self.talk is None or self.acw is None:
            return None
        return self.talk + self.hold + self.acw


@dataclass(frozen=True)
class Contact:
    """One call as a customer contact, for first-contact resolution and satisfaction. It belongs
    to the queue and interval of its first leg and to the agent of its last answered leg."""

    call_id: str
    arrived_at: float  # `call_arrived` (else first `queued`)
    customer: str | None  # "crm:<id>", else "tel:<number>"; None: anonymous
    queue: str | None  # first leg's queue; None: never queued (IVR only)
    queued_at: float | None
    agent_id: str | None  # the agent of its last answered leg; None: never answered
    reported_resolved: bool | None = None  # the call's last disposition: resolved on first contact?
    csat: int | None = None  # the caller's first satisfaction answer, 1..5
    fcr: bool | None = None  # no repeat contact within the window; None: not scored
    fcr_excluded: str | None = None  # why not scored: outbound, unanswered, anonymous, too_recent
    outbound: bool = False  # a campaign call: not in FCR (neither scored nor a repeat contact)


@dataclass(frozen=True)
class CallbackRecord:
    """One callback, from its creation to its final status. It belongs to a queue and an
    interval: a hold callback to those of the inbound leg it ended (the caller's queue and
    queued time), a web callback to its request's queue and time."""

    callback_id: str
    call_id: str
    queue: str
    source: str  # hold / web
    created_at: float  # decides its interval (see above)
    attempts: int = 0  # `callback_attempt` rows: agent-first dials to the customer
    status: str | None = None  # completed / failed / expired / cancelled; None: still pending
    delay: float | None = None  # due (accepted, or first queued for a web callback) to answered


@dataclass(frozen=True)
class CampaignAttempt:
    """One campaign dial (`campaign_dialed`) and its outcome, at the time it was dialled; or an
    outcome with no dial (``dialed`` False: a number the do-not-call list blocked, or a dial row
    missing from the log), at the time of the outcome."""

    campaign: str
    call_id: str | None
    queue: str | None
    contact_id: str | None
    mode: str | None  # preview / progressive
    dialed_at: float  # decides its interval
    dialed: bool = True
    outcome: str | None = None  # connected / busy / no_answer / failed / interrupted / dnc / other
    final: bool = False  # the outcome says the contact is finished
    leg: CallRecord | None = None  # the connected customer's leg in the campaign's queue


CSAT_SCALE = range(1, 6)
CSAT_TOP_BOX = frozenset({4, 5})
ANONYMOUS_CALLERS = frozenset({"anonymous", "unknown", "restricted", "private", "unavailable"})


def customer_of(caller: str | None, customer_id: str | None) -> str | None:
    """The identity repeat contacts are matched on: the CRM id when known, else the caller
    number (its digits, with a leading +), else None: a withheld or unusable number."""
    if customer_id:
        return f"crm:{customer_id}"
    text = (caller or "").strip()
    if not text or text.lower() in ANONYMOUS_CALLERS:
        return None
    number = ("+" if text.startswith("+") else "") + "".join(ch for ch in text if ch.isdigit())
    return f"tel:{number}" if number.strip("+") else None


class _Fold:
    """One pass over the rows, in log order, building call legs, agent state spans, offer
    failures and contacts. Each ``feed`` is O(1); the report never holds the rows themselves."""

    def __init__(self) -> None:
        self.legs: list[dict[str, Any]] = []
        self.current: dict[str, dict[str, Any]] = {}  # call -> its latest leg
        self.transferring: set[str] = set()  # calls transferred whose next `queued` starts a leg
        self.answered_by: dict[tuple[str, str], dict[str, Any]] = {}  # (call, agent) -> leg, for hold
        self.wrapping: dict[str, dict[str, Any]] = {}  # agent -> leg whose ACW is running or due
        self.spans: list[StateSpan] = []
        self.states: dict[str, tuple[str, float]] = {}  # agent -> (state, since), logged-in only
        self.failures: list[tuple[float, str]] = []  # (ts, agent) of offers not taken
        self.arrivals: dict[str, dict[str, Any]] = {}  # call -> arrived_at, caller, customer_id
        self.dispositions: dict[str, bool] = {}  # call -> its last disposition's `resolved`
        self.surveys: dict[str, int] = {}  # call -> first satisfaction score
        self.survey_rows: dict[str, tuple[str | None, str | None, float]] = {}  # call -> its (queue, agent, ts)
        self.callbacks: dict[str, dict[str, Any]] = {}  # callback id -> record, in order of creation
        self.callback_of_call: dict[str, dict[str, Any]] = {}  # call -> its latest callback record
        self.attempts: list[dict[str, Any]] = []  # campaign dials, in order
        self.attempt_of_call: dict[str, dict[str, Any]] = {}  # call -> its latest campaign dial
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self._on = {
            "queued": self._queued, ANSWERED: self._outcome, ABANDONED: self._outcome, EXITED: self._outcome,
            "ended": self._ended, "transferred": self._transferred, "hold_ended": self._hold_ended,
            "agent_state": self._agent_state, "call_arrived": self._arrived, "ivr_lookup": self._customer,
            "screen_pop": self._customer, "disposition": self._disposition, "survey_answered": self._survey,
            "callback_offered": self._callback_offered, "callback_accepted": self._callback_accepted,
            "callback_requested": self._callback_requested, "callback_attempt": self._callback_attempt,
            **dict.fromkeys(CALLBACK_FINAL_KINDS, self._callback_final),
            "campaign_dialed": self._campaign_dialed, "campaign_outcome": self._campaign_outcome,
            **dict.fromkeys(OFFER_FAILURE_KINDS, self._failure), **dict.fromkeys(ENGINE_RESET_KINDS, self._reset),
        }

    def feed_all(self, rows: Iterable[Mapping[str, Any]]) -> _Fold:
        on = self._on
        for row in rows:
            ts = float(row["ts"])
            if self.first_ts is None:
                self.first_ts = ts
            self.last_ts = ts if self.last_ts is None or ts > self.last_ts else self.last_ts
            handler = on.get(row["kind"])
            if handler is not None:
                handler(row, ts)
        return self

    # ---- calls
    def _queued(self, row: Mapping[str, Any], ts: float) -> None:
        call_id, queue = row.get("call_id"), row.get("queue")
        if call_id is None or not queue:
            return
        leg = self.current.get(call_id)
        if leg is None or call_id in self.transferring:
            transferred = call_id in self.transferring
            self.transferring.discard(call_id)
            self.arrivals.setdefault(call_id, {"arrived_at": ts})
            data = event_data(row)
            number = 0 if leg is None else leg["leg"] + 1
            # A leg queued by a transfer is a live caller waiting again: inbound, whatever the call was.
            if transferred:
                direction = INBOUND
            elif data.get("callback") or data.get("dial_out") == CALLBACK or call_id in self.callback_of_call:
                direction = CALLBACK
            elif data.get("campaign") or data.get("dial_out") or call_id in self.attempt_of_call:
                direction = OUTBOUND
            else:
                direction = INBOUND
            leg = self._open_leg(call_id, queue, ts, number, direction, int(data.get("priority") or 0))
            if direction == CALLBACK:
                leg["_callback"] = self.callback_of_call.get(call_id)
            elif direction == OUTBOUND:
                attempt = self.attempt_of_call.get(call_id)
                leg["campaign"] = data.get("campaign") or (attempt["campaign"] if attempt else None)
                if attempt is not None and attempt["leg"] is None:
                    self._link(attempt, leg)
        elif leg.get("outcome") is None:
            # re-adopted after a restart, or a callback queued again for its next attempt: the
            # same stay in the queue
            leg["live"] = True

    def _open_leg(self, call_id: str, queue: str, ts: float, number: int, direction: str,
                  priority: int) -> dict[str, Any]:
        leg = {"call_id": call_id, "queue": queue, "queued_at": ts, "leg": number, "live": True,
               "priority": priority, "direction": direction}
        self.current[call_id] = leg
        self.legs.append(leg)
        return leg

    def _outcome(self, row: Mapping[str, Any], ts: float) -> None:
        leg = self.current.get(row.get("call_id"))  # type: ignore[arg-type]
        if leg is None or leg.get("outcome") is not None:
            return  # a leg has one fate: later outcomes are ignored
        data = event_data(row)
        leg.update(outcome=row["kind"], resolved_at=ts, wait=float(data.get("wait", 0.0)), live=False,
                   stage=data.get("stage"), exit_reason=data.get("reason"))
        if row["kind"] == ANSWERED and row.get("agent_id"):
            leg["agent_id"] = row["agent_id"]
            self.answered_by[(leg["call_id"], row["agent_id"])] = leg
        record = leg.get("_callback")
        if row["kind"] == ANSWERED and record is not None and record.get("delay") is None:
            record["delay"] = ts - leg["queued_at"]

    def _ended(self, row: Mapping[str, Any], ts: float) -> None:
        leg = self.current.get(row.get("call_id"))  # type: ignore[arg-type]
        if leg is None or leg.get("outcome") != ANSWERED or "talk_gross" in leg:
            return
        data = event_data(row)
        leg["talk_gross"] = float(data.get("talk", 0.0))
        leg["ended_by"] = data.get("by")
        if row.get("agent_id") is not None:
            self.wrapping[row["agent_id"]] = leg

    def _transferred(self, row: Mapping[str, Any], ts: float) -> None:
        leg = self.current.get(row.get("call_id"))  # type: ignore[arg-type]
        if leg is not None and leg.get("outcome") == ANSWERED:
            leg["transferred_out"] = True
            self.transferring.add(leg["call_id"])

    def _hold_ended(self, row: Mapping[str, Any], ts: float) -> None:
        # Attributed by (call, agent): the hangup that ends a hold may be logged after `ended`.
        leg = self.answered_by.get((row.get("call_id"), row.get("agent_id")))  # type: ignore[arg-type]
        if leg is not None:
            leg["hold"] = leg.get("hold", 0.0) + max(0.0, float(event_data(row).get("seconds", 0.0)))

    # ---- callbacks
    def _callback_offered(self, row: Mapping[str, Any], ts: float) -> None:
        leg = self.current.get(row.get("call_id"))  # type: ignore[arg-type]
        if leg is not None and leg["direction"] == INBOUND and leg.get("outcome") is None:
            leg["callback_offered"] = True

    def _callback_accepted(self, row: Mapping[str, Any], ts: float) -> None:
        # The caller hangs up but keeps their place: the inbound leg ends here (outcome
        # callback) and the call's later offers and answer are a new, callback leg.
        call_id, data = row.get("call_id"), event_data(row)
        leg = self.current.get(call_id)  # type: ignore[arg-type]
        queue = row.get("queue") or (leg["queue"] if leg else None)
        if not call_id or not queue or str(data.get("callback_id") or call_id) in self.callbacks:
            return
        if leg is not None and leg["direction"] == INBOUND and leg.get("outcome") is None:
            wait = data.get("wait")
            leg.update(outcome=CALLBACK, resolved_at=ts, live=False,
                       wait=float(wait) if wait is not None else ts - leg["queued_at"])
            record = self._new_callback(data, call_id, leg["queue"], "hold", leg["queued_at"])
        else:  # no open inbound leg (a log that starts mid-call): the callback on its own
            record = self._new_callback(data, call_id, queue, "hold", ts)
        number = leg["leg"] if leg is not None else 0
        callback_leg = self._open_leg(call_id, queue, ts, number, CALLBACK, leg.get("priority", 0) if leg else 0)
        callback_leg["_callback"] = record

    def _callback_requested(self, row: Mapping[str, Any], ts: float) -> None:
        call_id, data, queue = row.get("call_id"), event_data(row), row.get("queue")
        if call_id and queue and str(data.get("callback_id") or call_id) not in self.callbacks:
            self._new_callback(data, call_id, queue, "web", ts)
            self.arrivals.setdefault(call_id, {"arrived_at": ts})  # the customer reached out now

    def _new_callback(self, data: Mapping[str, Any], call_id: str, queue: str, source: str,
                      created_at: float) -> dict[str, Any]:
        callback_id = str(data.get("callback_id") or call_id)
        record = {"callback_id": callback_id, "call_id": call_id, "queue": queue, "source": source,
                  "created_at": created_at, "attempts": 0}
        self.callbacks[callback_id] = record
        self.callback_of_call[call_id] = record
        return record

    def _callback_of(self, row: Mapping[str, Any]) -> dict[str, Any] | None:
        callback_id = event_data(row).get("callback_id")
        if callback_id is not None and str(callback_id) in self.callbacks:
            return self.callbacks[str(callback_id)]
        return self.callback_of_call.get(row.get("call_id"))  # type: ignore[arg-type]

    def _callback_attempt(self, row: Mapping[str, Any], ts: float) -> None:
        record = self._callback_of(row)
        if record is None:
            return
        record["attempts"] += 1
        leg = self.current.get(record["call_id"])
        if (event_data(row).get("outcome") != ANSWERED and leg is not None and leg["direction"] == CALLBACK
                and leg.get("outcome") is None):
            leg["live"] = False  # out of the queue until its retry queues it again

    def _callback_final(self, row: Mapping[str, Any], ts: float) -> None:
        record = self._callback_of(row)
        if record is None or record.get("status") is not None:
            return  # a callback has one final status
        status = record["status"] = CALLBACK_FINAL_KINDS[row["kind"]]
        leg = self.current.get(record["call_id"])
        if leg is not None and leg["direction"] == CALLBACK and leg.get("outcome") is None and status != "completed":
            leg.update(outcome=status, resolved_at=ts, live=False)

    # ---- campaigns
    def _campaign_dialed(self, row: Mapping[str, Any], ts: float) -> None:
        call_id, data = row.get("call_id"), event_data(row)
        if call_id and data.get("campaign") not in (None, ""):
            attempt = self._new_attempt(row, data, ts, dialed=True)
            leg = self.current.get(call_id)
            # A preview contact queues (agent-first) before the customer is dialled.
            if (leg is not None and leg["direction"] == OUTBOUND and leg["leg"] == 0
                    and leg.get("outcome") is None):
                self._link(attempt, leg)

    def _new_attempt(self, row: Mapping[str, Any], data: Mapping[str, Any], ts: float, *,
                     dialed: bool) -> dict[str, Any]:
        contact, call_id = data.get("contact_id"), row.get("call_id") or None
        attempt = {"campaign": str(data["campaign"]), "call_id": call_id, "queue": row.get("queue"),
                   "contact_id": None if contact in (None, "") else str(contact), "mode": data.get("mode"),
                   "dialed_at": ts, "dialed": dialed, "leg": None}
        self.attempts.append(attempt)
        if call_id is not None:
            self.attempt_of_call[call_id] = attempt
        return attempt

    @staticmethod
    def _link(attempt: dict[str, Any], leg: dict[str, Any]) -> None:
        previous = leg.get("_attempt")
        if previous is not None:
            previous["leg"] = None  # the leg belongs to the dial that reached the customer: the latest
        attempt["leg"], leg["_attempt"] = leg, attempt

    def _campaign_outcome(self, row: Mapping[str, Any], ts: float) -> None:
        call_id, data = row.get("call_id"), event_data(row)
        attempt = self.attempt_of_call.get(call_id) if call_id else None  # type: ignore[arg-type]
        if attempt is None:
            # Never dialled (dnc: the list blocked it, no call id) or its dial row is not in the
            # log: an outcome, not a dial, at the outcome's time.
            if data.get("campaign") in (None, ""):
                return
            attempt = self._new_attempt(row, data, ts, dialed=False)
        elif "outcome" in attempt:
            return  # one dial, one outcome: later ones are ignored
        outcome = data.get("outcome")
        attempt["outcome"] = outcome if outcome in CAMPAIGN_OUTCOMES else "other"
        attempt["final"] = bool(data.get("final"))
        leg = self.current.get(call_id)
        if (attempt["outcome"] != "connected" and leg is not None and leg["direction"] == OUTBOUND
                and leg.get("outcome") is None):
            leg["live"] = False  # a preview contact not reached: no longer waiting for anyone

    # ---- agents
    def _agent_state(self, row: Mapping[str, Any], ts: float) -> None:
        agent_id = row.get("agent_id")
        if not agent_id:
            return
        state = event_data(row).get("state") or LOGGED_OUT
        previous = self.states.pop(agent_id, None)
        if previous is not None:
            self.spans.append(StateSpan(agent_id, previous[0], previous[1], ts))
        if state != LOGGED_OUT:
            self.states[agent_id] = (state, ts)
        leg = self.wrapping.get(agent_id)
        if leg is not None:
            # After `ended` the agent's next state is wrap_up (ACW runs until the state after
            # it) or, with no wrap-up configured, directly something else (ACW 0).
            if state == WRAP_UP and "acw_from" not in leg:
                leg["acw_from"] = ts
            else:
                leg["acw"] = ts - leg.pop("acw_from", ts)
                del self.wrapping[agent_id]

    def _failure(self, row: Mapping[str, Any], ts: float) -> None:
        if row.get("agent_id"):
            self.failures.append((ts, row["agent_id"]))

    def _reset(self, row: Mapping[str, Any], ts: float) -> None:
        self.wrapping.clear()  # a wrap-up cut by a restart has no measurable end
        for leg in self.current.values():
            leg["live"] = False
        for agent_id, (state, since) in self.states.items():
            self.spans.append(StateSpan(agent_id, state, since, ts))
        self.states.clear()

    # ---- contacts
    def _arrived(self, row: Mapping[str, Any], ts: float) -> None:
        call_id = row.get("call_id")
        if call_id:
            arrival = self.arrivals.setdefault(call_id, {"arrived_at": ts})
            arrival.setdefault("caller", str(event_data(row).get("caller") or ""))

    def _customer(self, row: Mapping[str, Any], ts: float) -> None:
        customer_id = event_data(row).get("customer_id")
        call_id = row.get("call_id")
        if call_id and customer_id not in (None, ""):
            self.arrivals.setdefault(call_id, {"arrived_at": ts}).setdefault("customer_id", str(customer_id))

    def _disposition(self, row: Mapping[str, Any], ts: float) -> None:
        if row.get("call_id"):
            self.dispositions[row["call_id"]] = bool(event_data(row).get("resolved"))

    def _survey(self, row: Mapping[str, Any], ts: float) -> None:
        data, call_id = event_data(row), row.get("call_id")
        score = data.get("score")
        if (call_id and data.get("question", "csat") == "csat" and call_id not in self.surveys
                and isinstance(score, int) and not isinstance(score, bool) and score in CSAT_SCALE):
            self.surveys[call_id] = score
            self.survey_rows[call_id] = (row.get("queue") or None, row.get("agent_id") or None, ts)

    # ---- results
    def calls(self) -> list[CallRecord]:
        out = []
        for leg in self.legs:
            fields = {k: v for k, v in leg.items() if k not in ("acw_from", "talk_gross", "_callback", "_attempt")}
            if "talk_gross" in leg:
                fields["talk"] = max(0.0, leg["talk_gross"] - leg.get("hold", 0.0))
            out.append(CallRecord(**fields))
        return out

    def callback_records(self) -> list[CallbackRecord]:
        return [CallbackRecord(**r) for r in self.callbacks.values()]

    def campaign_attempts(self, calls: Sequence[CallRecord]) -> list[CampaignAttempt]:
        """``calls``: :meth:`calls`'s answer (the legs, in the same order)."""
        record_of = {id(leg): call for leg, call in zip(self.legs, calls, strict=True)}
        return [CampaignAttempt(**{**a, "leg": record_of[id(a["leg"])] if a["leg"] is not None else None})
                for a in self.attempts]

    def all_spans(self) -> list[StateSpan]:
        """Closed spans, then the states still open at the end of the data (end None)."""
        return self.spans + [StateSpan(a, state, since, None) for a, (state, since) in self.states.items()]

    def contacts(self, calls: Sequence[CallRecord]) -> list[Contact]:
        first: dict[str, CallRecord] = {}
        last_agent: dict[str, str] = {}
        for call in calls:
            first.setdefault(call.call_id, call)
            if call.outcome == ANSWERED and call.agent_id:
                last_agent[call.call_id] = call.agent_id
        out = []
        # A survey answer whose call has no queue leg in the log is placed by the survey row:
        # its queue and agent, at the time of the answer.
        unplaced = {c: where for c, where in self.survey_rows.items() if c not in first and where[0]}
        out = []
        for call_id in list(self.arrivals) + [c for c in unplaced if c not in self.arrivals]:
            arrival = self.arrivals.get(call_id) or {"arrived_at": unplaced[call_id][2]}
            leg = first.get(call_id)
            queue, queued_at, agent_id = (leg.queue, leg.queued_at, last_agent.get(call_id)) if leg else (None, None, None)
            if leg is None and call_id in unplaced:
                queue, agent_id, queued_at = unplaced[call_id]
            out.append(Contact(
                call_id=call_id, arrived_at=arrival["arrived_at"],
                customer=customer_of(arrival.get("caller"), arrival.get("customer_id")),
                queue=queue, queued_at=queued_at, agent_id=agent_id,
                reported_resolved=self.dispositions.get(call_id), csat=self.surveys.get(call_id),
                outbound=leg is not None and leg.direction == OUTBOUND))
        return out


def calls_and_spans(rows: Iterable[Mapping[str, Any]], *, ordered: bool = False
                    ) -> tuple[list[CallRecord], list[StateSpan], float | None]:
    """Inbound legs, agent state spans and the last row's ts, in one pass (``ordered``: the rows
    already come in log order, e.g. streamed from the database). Inbound only: this is the
    forecast's history, the report's offered calls; callback and campaign legs are not arrivals."""
    fold = _Fold().feed_all(rows if ordered else in_log_order(rows))
    return [c for c in fold.calls() if c.direction == INBOUND], fold.all_spans(), fold.last_ts


def reconstruct_calls(rows: Iterable[Mapping[str, Any]]) -> list[CallRecord]:
    """Every queue leg, in order of queuing.

    A call queued again without a transfer (re-announced to a restarted engine) keeps its leg and
    first ``queued`` time; a leg's first outcome wins and later ones are ignored (it has one fate).
    After ``transferred`` the call's next ``queued`` starts a new leg.
    """
    return _Fold().feed_all(in_log_order(rows)).calls()


def score_first_contact_resolution(contacts: Sequence[Contact], *, window_days: float, until: float) -> list[Contact]:
    """Each answered contact scored: resolved when the same customer made no other contact in
    the ``window_days`` after it (arrival to arrival, the window's end included). Only contacts
    at least the window old at ``until`` are scored; anonymous callers never are."""
    window = window_days * 86400.0
    arrivals: dict[str, list[float]] = {}
    for contact in contacts:
        if contact.customer is not None and not contact.outbound:
            arrivals.setdefault(contact.customer, []).append(contact.arrived_at)
    for times in arrivals.values():
        times.sort()
    scored = []
    for contact in contacts:
        if contact.outbound:
            excluded, fcr = "outbound", None
        elif contact.agent_id is None:
            excluded, fcr = "unanswered", None
        elif contact.customer is None:
            excluded, fcr = "anonymous", None
        elif contact.arrived_at + window > until:
            excluded, fcr = "too_recent", None
        else:
            times = arrivals[contact.customer]
            later = bisect_right(times, contact.arrived_at)
            excluded, fcr = None, not (later < len(times) and times[later] <= contact.arrived_at + window)
        scored.append(replace(contact, fcr=fcr, fcr_excluded=excluded))
    return scored


# ---------------------------------------------------------------------------- agents
@dataclass(frozen=True)
class StateSpan:
    agent_id: str
    state: str
    start: float
    end: float | None  # None: still in this state at the end of the data


def agent_spans(rows: Iterable[Mapping[str, Any]]) -> list[StateSpan]:
    """Every agent's state over time (logged-out time is not a span)."""
    return _Fold().feed_all(in_log_order(rows)).all_spans()


def agent_states(rows: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Every agent ever seen and its state after the last row (logged_out after an engine reset)."""
    states: dict[str, str] = {}
    for row in in_log_order(rows):
        if row["kind"] == "agent_state" and row.get("agent_id"):
            states[row["agent_id"]] = event_data(row).get("state") or LOGGED_OUT
        elif row["kind"] in ENGINE_RESET_KINDS:
            states = dict.fromkeys(states, LOGGED_OUT)
    return states


def _overlap(span: StateSpan, start: float, end: float, until: float) -> float:
    span_end = until if span.end is None else min(span.end, until)
    return max(0.0, min(span_end, end) - max(span.start, start))


# ---------------------------------------------------------------------------- results
@dataclass(frozen=True)
class ServiceLevel:
    """Service level "X % within Y s"; a call waiting exactly Y s is within."""

    threshold: float  # Y, seconds
    answered_within: int
    abandoned_within: int  # abandons (short ones excluded) with wait <= Y
    of_offered: float | None  # (a) answered_within / offered  [the default]
    of_answered: float | None  # (b) answered_within / answered
    abandons_met: float | None  # (c) (answered_within + abandoned_within) / offered


@dataclass(frozen=True)
class Fcr:
    """First-contact resolution, measured (no repeat contact) and as agents reported it."""

    window_days: float
    scored: int  # answered contacts old enough, from a known customer
    resolved: int  # of those, no repeat contact within the window
    rate: float | None  # resolved / scored
    anonymous: int  # answered contacts not scored: withheld or unusable number, no CRM id
    too_recent: int  # answered contacts not scored yet: younger than the window
    reported: int  # contacts with a disposition
    reported_resolved: int  # of those, marked resolved by the agent
    reported_rate: float | None  # reported_resolved / reported


@dataclass(frozen=True)
class Csat:
    """Customer satisfaction from the post-call survey (scale 1..5), top-2-box."""

    responses: int  # n: contacts with an answer
    satisfied: int  # answers 4 or 5
    top2_box: float | None  # satisfied / responses
    mean_score: float | None


@dataclass(frozen=True)
class CallbackFigures:
    """Callbacks of a queue: offered to waiting callers, accepted, requested on the web, and
    what became of them. Inbound legs by their queued interval; callbacks by their own
    (:class:`CallbackRecord`)."""

    offered: int  # inbound legs the hold loop offered a callback (once or more)
    accepted: int  # hold callbacks: callers who chose a callback (their inbound leg's outcome)
    requested: int  # web callbacks
    attempts: int  # agent-first dials to the customer, of these callbacks
    completed: int
    failed: int
    expired: int
    cancelled: int  # withdrawn (web page or supervisor) before it was done
    pending: int  # no final status yet
    completion_rate: float | None  # completed / (completed + failed + expired): cancelled ones left out
    avg_delay: float | None  # mean time from due (accepted; web: first queued) to the customer answering


@dataclass(frozen=True)
class QueueKpis:
    queue: str  # "*" for all queues together
    queued: int  # legs queued (raw, every one)
    unresolved: int  # queued, no outcome yet: in no other figure
    offered: int  # answered + abandoned + exited (short abandons excluded)
    offered_raw: int  # offered + short_abandoned
    answered: int
    abandoned: int  # wait >= short-abandon threshold
    abandoned_raw: int  # abandoned + short_abandoned
    short_abandoned: int  # wait < short-abandon threshold
    exited: int  # left for the fallback route: offered, never answered
    transferred_in: int  # legs that an agent's transfer queued here (in queued and, resolved, in offered)
    transferred_out: int  # answered legs whose agent transferred the call on
    service_level: ServiceLevel
    answer_rate: float | None  # answered / offered
    abandon_rate: float | None  # abandoned / offered
    asa: float | None  # mean wait of answered calls
    longest_wait: float | None  # max wait of answered and abandoned (not short) calls
    avg_talk: float | None  # mean talk (hold excluded) of answered calls that ended
    avg_hold: float | None  # mean hold of answered calls that ended (calls never held count 0)
    held: int  # answered calls that ended having been on hold
    avg_acw: float | None  # mean after-call work of calls whose wrap-up is over
    aht: float | None  # mean (talk + hold + ACW) of calls whose handling is over
    handled: int  # calls in aht
    fcr: Fcr
    csat: Csat
    # Legs that are not inbound: in the handling figures above, in none of the call figures.
    callback_answered: int  # callback legs answered (the customer picked up and was connected)
    outbound_answered: int  # campaign legs answered by an agent
    campaign_abandoned: int  # connected campaign customers who hung up waiting for an agent
    callbacks: CallbackFigures


@dataclass(frozen=True)
class AgentKpis:
    agent_id: str
    answered: int  # calls this agent answered (by the call's queued interval)
    avg_talk: float | None
    avg_hold: float | None
    avg_acw: float | None
    aht: float | None
    handled: int  # calls in aht
    transferred_out: int  # answered calls this agent transferred on
    offers_not_taken: int  # ring_no_answer / busy / unreachable events in the interval
    logged_in_time: float  # seconds in any state but logged_out, within the interval
    paused_time: float
    handling_time: float  # on_call + wrap_up
    occupancy: float | None  # handling_time / (logged_in_time - paused_time)
    fcr: Fcr  # contacts whose last answered leg was this agent's
    csat: Csat
    callback_answered: int  # callback legs this agent answered (in handled, aht; not in answered)
    outbound_answered: int  # campaign legs this agent answered (in handled, aht; not in answered)


@dataclass(frozen=True)
class CampaignOutcomes:
    connected: int = 0
    busy: int = 0
    no_answer: int = 0
    failed: int = 0
    interrupted: int = 0
    dnc: int = 0
    other: int = 0  # an outcome the report does not know


@dataclass(frozen=True)
class CampaignKpis:
    """One campaign's dials in the interval (by the time they were dialled)."""

    campaign: str
    contacts: int  # distinct contact ids dialled
    attempts: int  # dials (`campaign_dialed`)
    pending: int  # dials with no outcome yet
    outcomes: CampaignOutcomes  # every outcome: the dials' and the undialled ones' (dnc)
    connect_rate: float | None  # dials connected / dials with an outcome
    final: CampaignOutcomes  # the outcomes that finished their contact
    answered: int  # connected customers answered by an agent
    abandoned: int  # connected customers who hung up waiting for an agent (not inbound abandons)
    abandon_rate: float | None  # abandoned / outcomes.connected
    aht: float | None  # mean talk + hold + ACW of the answered ones whose handling is over
    handled: int  # legs in aht


@dataclass(frozen=True)
class IntervalKpis:
    label: str  # local start, ISO 8601 with offset (or "all")
    start: float  # epoch seconds, inclusive
    end: float  # epoch seconds, exclusive
    total: QueueKpis
    queues: tuple[QueueKpis, ...]
    agents: tuple[AgentKpis, ...]
    # campaign -> figures; empty when the interval has no campaign dial
    campaigns: Mapping[str, CampaignKpis] = field(default_factory=dict)


@dataclass(frozen=True)
class KpiReport:
    interval: str | None
    tz: str
    sl_seconds: float
    short_abandon_seconds: float
    observed_until: float | None
    intervals: tuple[IntervalKpis, ...]
    fcr_days: float = DEFAULT_FCR_DAYS


# ---------------------------------------------------------------------------- formulas
def ratio(numerator: float, denominator: float) -> float | None:
    """None when there is nothing to divide by: no data is neither 0 % nor 100 %."""
    return numerator / denominator if denominator else None


def mean(values: Sequence[float]) -> float | None:
    # fsum is exactly rounded whatever the order, so incremental and batch results agree.
    return math.fsum(values) / len(values) if values else None


def service_level(threshold: float, answered_within: int, abandoned_within: int,
                  offered: int, answered: int) -> ServiceLevel:
    return ServiceLevel(
        threshold=threshold,
        answered_within=answered_within,
        abandoned_within=abandoned_within,
        of_offered=ratio(answered_within, offered),
        of_answered=ratio(answered_within, answered),
        abandons_met=ratio(answered_within + abandoned_within, offered),
    )


def is_short_abandon(call: CallRecord, short_abandon_seconds: float) -> bool:
    return call.outcome == ABANDONED and (call.wait or 0.0) < short_abandon_seconds


def fcr_figures(contacts: Sequence[Contact], window_days: float) -> Fcr:
    """``contacts`` scored by :func:`score_first_contact_resolution`."""
    scored = [c for c in contacts if c.fcr is not None]
    resolved = sum(1 for c in scored if c.fcr)
    reported = [c for c in contacts if c.reported_resolved is not None and not c.outbound]
    reported_resolved = sum(1 for c in reported if c.reported_resolved)
    return Fcr(window_days=window_days, scored=len(scored), resolved=resolved, rate=ratio(resolved, len(scored)),
               anonymous=sum(1 for c in contacts if c.fcr_excluded == "anonymous"),
               too_recent=sum(1 for c in contacts if c.fcr_excluded == "too_recent"),
               reported=len(reported), reported_resolved=reported_resolved,
               reported_rate=ratio(reported_resolved, len(reported)))


def csat_figures(contacts: Sequence[Contact]) -> Csat:
    scores = [c.csat for c in contacts if c.csat is not None]
    satisfied = sum(1 for s in scores if s in CSAT_TOP_BOX)
    return Csat(responses=len(scores), satisfied=satisfied, top2_box=ratio(satisfied, len(scores)),
                mean_score=mean([float(s) for s in scores]))


def _handling_figures(answered: Sequence[CallRecord]) -> dict[str, Any]:
    ended = [c for c in answered if c.talk is not None]
    handled = [c.handle_time for c in answered if c.handle_time is not None]
    return {"avg_talk": mean([c.talk for c in ended]),  # type: ignore[misc]
            "avg_hold": mean([c.hold for c in ended]),
            "avg_acw": mean([c.acw for c in answered if c.acw is not None]),
            "aht": mean(handled),  # type: ignore[arg-type]
            "handled": len(handled),
            "transferred_out": sum(1 for c in answered if c.transferred_out)}


def callback_figures(legs: Sequence[CallRecord], callbacks: Sequence[CallbackRecord]) -> CallbackFigures:
    """``legs``: the inbound legs of the queue and interval; ``callbacks``: its callbacks."""
    status = {s: sum(1 for c in callbacks if c.status == s) for s in ("completed", "failed", "expired", "cancelled")}
    finished = status["completed"] + status["failed"] + status["expired"]
    return CallbackFigures(
        offered=sum(1 for c in legs if c.callback_offered),
        accepted=sum(1 for c in callbacks if c.source == "hold"),
        requested=sum(1 for c in callbacks if c.source == "web"),
        attempts=sum(c.attempts for c in callbacks),
        completed=status["completed"], failed=status["failed"], expired=status["expired"],
        cancelled=status["cancelled"], pending=len(callbacks) - finished - status["cancelled"],
        completion_rate=ratio(status["completed"], finished),
        avg_delay=mean([c.delay for c in callbacks if c.delay is not None]),  # type: ignore[misc]
    )


def queue_kpis(queue: str, legs: Sequence[CallRecord], *, sl_seconds: float = DEFAULT_SL_SECONDS,
               short_abandon_seconds: float = DEFAULT_SHORT_ABANDON_SECONDS,
               contacts: Sequence[Contact] = (), fcr_days: float = DEFAULT_FCR_DAYS,
               callbacks: Sequence[CallbackRecord] = ()) -> QueueKpis:
    """The call figures over the inbound ``legs`` (legs already chosen by queue and interval,
    every direction), the handling figures over all of them, the contact figures over
    ``contacts`` (chosen the same way, by their first leg) and the callback figures over
    ``callbacks`` (chosen the same way, by their creation)."""
    calls = [c for c in legs if c.direction == INBOUND]
    answered = [c for c in calls if c.outcome == ANSWERED]
    connected = [c for c in legs if c.outcome == ANSWERED]  # every direction: the handling figures
    shorts = [c for c in calls if is_short_abandon(c, short_abandon_seconds)]
    abandoned = [c for c in calls if c.outcome == ABANDONED and not is_short_abandon(c, short_abandon_seconds)]
    exited = [c for c in calls if c.outcome == EXITED]
    offered = len(answered) + len(abandoned) + len(exited)
    waits = [c.wait for c in answered + abandoned if c.wait is not None]
    return QueueKpis(
        queue=queue,
        queued=len(calls),
        unresolved=sum(1 for c in calls if c.outcome is None),
        offered=offered,
        offered_raw=offered + len(shorts),
        answered=len(answered),
        abandoned=len(abandoned),
        abandoned_raw=len(abandoned) + len(shorts),
        short_abandoned=len(shorts),
        exited=len(exited),
        transferred_in=sum(1 for c in calls if c.transferred_in),
        service_level=service_level(
            sl_seconds,
            answered_within=sum(1 for c in answered if (c.wait or 0.0) <= sl_seconds),
            abandoned_within=sum(1 for c in abandoned if (c.wait or 0.0) <= sl_seconds),
            offered=offered, answered=len(answered)),
        answer_rate=ratio(len(answered), offered),
        abandon_rate=ratio(len(abandoned), offered),
        asa=mean([c.wait or 0.0 for c in answered]),
        longest_wait=max(waits, default=None),
        held=sum(1 for c in connected if c.talk is not None and c.hold > 0),
        fcr=fcr_figures(contacts, fcr_days),
        csat=csat_figures(contacts),
        **_handling_figures(connected),
        callback_answered=sum(1 for c in connected if c.direction == CALLBACK),
        outbound_answered=sum(1 for c in connected if c.direction == OUTBOUND),
        campaign_abandoned=sum(1 for c in legs if c.direction == OUTBOUND and c.outcome == ABANDONED),
        callbacks=callback_figures(calls, callbacks),
    )


def agent_kpis(agent_id: str, calls: Sequence[CallRecord], spans: Sequence[StateSpan],
               offers_not_taken: int, start: float, end: float, until: float, *,
               contacts: Sequence[Contact] = (), fcr_days: float = DEFAULT_FCR_DAYS) -> AgentKpis:
    """``calls``: the legs this agent answered in the interval, every direction (``answered``
    counts the inbound ones, the handling figures all); ``spans``: this agent's states;
    ``contacts``: the interval's contacts whose last answered leg was this agent's."""
    def time_in(states: Iterable[str] | None) -> float:
        return math.fsum(_overlap(s, start, end, until) for s in spans if states is None or s.state in states)

    logged_in, paused, handling = time_in(None), time_in({PAUSED}), time_in(HANDLING_STATES)
    return AgentKpis(
        agent_id=agent_id,
        answered=sum(1 for c in calls if c.direction == INBOUND),
        offers_not_taken=offers_not_taken,
        logged_in_time=logged_in,
        paused_time=paused,
        handling_time=handling,
        occupancy=ratio(handling, logged_in - paused),
        fcr=fcr_figures(contacts, fcr_days),
        csat=csat_figures(contacts),
        **_handling_figures(calls),
        callback_answered=sum(1 for c in calls if c.direction == CALLBACK),
        outbound_answered=sum(1 for c in calls if c.direction == OUTBOUND),
    )


def campaign_kpis(campaign: str, attempts: Sequence[CampaignAttempt]) -> CampaignKpis:
    """The figures of one campaign's dials (already chosen by interval)."""
    def tally(chosen: Iterable[CampaignAttempt]) -> CampaignOutcomes:
        counts: dict[str, int] = {}
        for a in chosen:
            counts[a.outcome] = counts.get(a.outcome, 0) + 1  # type: ignore[index]
        return CampaignOutcomes(**counts)

    with_outcome = [a for a in attempts if a.outcome is not None]
    outcomes = tally(with_outcome)
    dials = [a for a in attempts if a.dialed]
    dials_done = sum(1 for a in dials if a.outcome is not None)
    answered = [a.leg for a in dials if a.leg is not None and a.leg.outcome == ANSWERED]
    handled = [c.handle_time for c in answered if c.handle_time is not None]
    abandoned = sum(1 for a in dials if a.leg is not None and a.leg.outcome == ABANDONED)
    return CampaignKpis(
        campaign=campaign,
        contacts=len({a.contact_id if a.contact_id is not None else f"call:{a.call_id}" for a in dials}),
        attempts=len(dials),
        pending=len(dials) - dials_done,
        outcomes=outcomes,
        connect_rate=ratio(sum(1 for a in dials if a.outcome == "connected"), dials_done),
        final=tally(a for a in with_outcome if a.final),
        answered=len(answered),
        abandoned=abandoned,
        abandon_rate=ratio(abandoned, outcomes.connected),
        aht=mean(handled),  # type: ignore[arg-type]
        handled=len(handled),
    )


# ---------------------------------------------------------------------------- intervals
def interval_start(ts: float, interval: str, tz: ZoneInfo) -> float:
    """Epoch start of the ``interval`` (local wall clock in ``tz``) that contains ``ts``."""
    minutes = _interval_minutes(interval)
    local = datetime.fromtimestamp(ts, tz)
    if minutes is None:
        floor = local.replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        of_day = local.hour * 60 + local.minute
        floor_minute = of_day - of_day % minutes
        floor = local.replace(hour=floor_minute // 60, minute=floor_minute % 60, second=0, microsecond=0)
    return floor.timestamp()


def interval_end(start: float, interval: str, tz: ZoneInfo) -> float:
    """Epoch end (exclusive) of the interval starting at ``start``."""
    minutes = _interval_minutes(interval)
    if minutes is None:
        next_day = datetime.fromtimestamp(start, tz).date() + timedelta(days=1)
        return datetime.combine(next_day, time(0), tzinfo=tz).timestamp()
    following = interval_start(start + minutes * 60, interval, tz)
    # Guard against zones whose offset is not a multiple of the interval (30-min DST shifts).
    return following if following > start else start + minutes * 60


def _interval_minutes(interval: str) -> int | None:
    if interval not in INTERVALS:
        raise KpiError(f"unknown interval {interval!r} (one of {', '.join(INTERVALS)})")
    return INTERVALS[interval]


def label(ts: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, tz).isoformat()


def _buckets(interval: str | None, tz: ZoneInfo, start: float, stop: float,
             stop_inclusive: bool) -> list[tuple[str, float, float]]:
    if interval is None:
        return [("all", start, stop)]
    buckets = []
    bucket = interval_start(start, interval, tz)
    while bucket < stop or (stop_inclusive and bucket <= stop):
        end = interval_end(bucket, interval, tz)
        buckets.append((label(bucket, tz), bucket, end))
        bucket = end
    return buckets




# ---------------------------------------------------------------------------- report
def kpi_report(
    rows: Iterable[Mapping[str, Any]],
    *,
    interval: str | None = None,
    tz: str = "UTC",
    start: float | None = None,
    end: float | None = None,
    queue: str | None = None,
    agent: str | None = None,
    sl_seconds: float = DEFAULT_SL_SECONDS,
    short_abandon_seconds: float = DEFAULT_SHORT_ABANDON_SECONDS,
    fcr_days: float = DEFAULT_FCR_DAYS,
    now: float | None = None,
    ordered: bool = False,
) -> KpiReport:
    """Call figures per queue (and all queues) and time figures per agent, per interval.

    ``start``/``end`` (epoch, end exclusive) bound the calls by their queued time; without
    them the report spans the data. ``now`` is the end of observation: agent states still open
    count up to it (default: the last row's ts), and FCR scores contacts at least ``fcr_days``
    old at it. ``queue`` limits the call figures to one queue; ``agent`` limits the agent rows to
    one agent (queue figures are not per agent). ``ordered``: the rows already come in log order
    (``id``), so they are read once as a stream instead of being sorted in memory."""
    if sl_seconds < 0 or short_abandon_seconds < 0 or fcr_days < 0:
        raise KpiError("the service-level, short-abandon and FCR thresholds must be zero or more")
    zone = ZoneInfo(tz)
    fold = _Fold().feed_all(rows if ordered else in_log_order(rows))
    until = now if now is not None else fold.last_ts
    if until is None:
        return KpiReport(interval, tz, sl_seconds, short_abandon_seconds, None, (), fcr_days)
    all_calls = fold.calls()
    calls = [c for c in all_calls if queue is None or c.queue == queue]
    spans = [s for s in fold.all_spans() if agent is None or s.agent_id == agent]
    contacts = [c for c in score_first_contact_resolution(fold.contacts(all_calls), window_days=fcr_days, until=until)
                if c.queued_at is not None and (queue is None or c.queue == queue)]
    callbacks = [c for c in fold.callback_records() if queue is None or c.queue == queue]
    attempts = [a for a in fold.campaign_attempts(all_calls) if queue is None or a.queue == queue]
    first = min([c.queued_at for c in calls] + [s.start for s in spans] + [c.created_at for c in callbacks]
                + [a.dialed_at for a in attempts], default=until)
    lo = start if start is not None else first
    hi = end if end is not None else max(until, lo)
    # Without an explicit end the data's last moment belongs to the report (it is not an
    # exclusive bound anyone chose).
    buckets = _buckets(interval, zone, lo, hi, stop_inclusive=end is None)
    find = _BucketFinder(buckets, lo, hi, inclusive_end=end is None)
    legs_in = find.group(calls, lambda c: c.queued_at)
    contacts_in = find.group(contacts, lambda c: c.queued_at)  # type: ignore[arg-type, return-value]
    callbacks_in = find.group(callbacks, lambda c: c.created_at)
    attempts_in = find.group(attempts, lambda a: a.dialed_at)
    # offer failures are agent events: they count where they happened
    missed: dict[tuple[int, str], int] = {}
    for ts, agent_id in fold.failures:
        index = find.index(ts, failures=True)
        if index is not None and (agent is None or agent_id == agent):
            missed[(index, agent_id)] = missed.get((index, agent_id), 0) + 1
    spans_in = _spans_by_bucket(spans, buckets, until)
    thresholds = {"sl_seconds": sl_seconds, "short_abandon_seconds": short_abandon_seconds, "fcr_days": fcr_days}
    out = []
    for index, (name, b_start, b_end) in enumerate(buckets):
        in_bucket, bucket_contacts = legs_in.get(index, []), contacts_in.get(index, [])
        bucket_callbacks = callbacks_in.get(index, [])
        queue_names = ([queue] if queue is not None
                       else sorted({c.queue for c in in_bucket} | {c.queue for c in bucket_callbacks}
                                   | {c.queue for c in bucket_contacts}))  # type: ignore[misc]
        by_queue = _group(in_bucket, lambda c: c.queue)
        contacts_by_queue = _group(bucket_contacts, lambda c: c.queue)
        callbacks_by_queue = _group(bucket_callbacks, lambda c: c.queue)
        by_campaign = _group(attempts_in.get(index, []), lambda a: a.campaign)
        answered_by = _group([c for c in in_bucket if c.outcome == ANSWERED], lambda c: c.agent_id)
        contacts_by_agent = _group(bucket_contacts, lambda c: c.agent_id)
        agent_ids = {a for a in spans_in.get(index, {}) if a} | {a for a in answered_by if a}
        agent_ids |= {a for (i, a) in missed if i == index} | {a for a in contacts_by_agent if a}
        if agent is not None:
            agent_ids &= {agent}
        out.append(IntervalKpis(
            label=name, start=b_start, end=b_end,
            total=queue_kpis(queue or "*", in_bucket, contacts=bucket_contacts, callbacks=bucket_callbacks,
                             **thresholds),
            queues=tuple(queue_kpis(q, by_queue.get(q, []), contacts=contacts_by_queue.get(q, []),
                                    callbacks=callbacks_by_queue.get(q, []), **thresholds)
                         for q in queue_names),
            agents=tuple(
                agent_kpis(a, answered_by.get(a, []), spans_in.get(index, {}).get(a, []), missed.get((index, a), 0),
                           b_start, b_end, until, contacts=contacts_by_agent.get(a, []), fcr_days=fcr_days)
                for a in sorted(agent_ids, key=_agent_sort_key)),
            campaigns={name: campaign_kpis(name, by_campaign[name]) for name in sorted(by_campaign)},
        ))
    return KpiReport(interval, tz, sl_seconds, short_abandon_seconds, until, tuple(out), fcr_days)


class _BucketFinder:
    """Which bucket a moment belongs to, by binary search over the bucket starts."""

    def __init__(self, buckets: Sequence[tuple[str, float, float]], lo: float, hi: float, *, inclusive_end: bool):
        self.starts = [b[1] for b in buckets]
        self.ends = [b[2] for b in buckets]
        self.lo, self.hi, self.inclusive_end = lo, hi, inclusive_end
        self.whole = len(buckets) == 1 and buckets[0][0] == "all"

    def index(self, ts: float, *, failures: bool = False) -> int | None:
        if not self.starts:
            return None
        if self.whole:
            # calls: [lo, hi) or [lo, hi] without a chosen end; failures: the interval's wall clock
            inside = self.lo <= ts and (ts < self.hi or (self.inclusive_end and ts == self.hi))
            return 0 if inside else None
        if ts < self.lo or ts > self.hi or (ts == self.hi and not self.inclusive_end):
            if not failures:
                return None
        i = bisect_right(self.starts, ts) - 1
        return i if i >= 0 and ts < self.ends[i] else None

    def group(self, items: Iterable[Any], when: Any) -> dict[int, list[Any]]:
        grouped: dict[int, list[Any]] = {}
        for item in items:
            i = self.index(when(item))
            if i is not None:
                grouped.setdefault(i, []).append(item)
        return grouped


def _group(items: Iterable[Any], key: Any) -> dict[Any, list[Any]]:
    grouped: dict[Any, list[Any]] = {}
    for item in items:
        grouped.setdefault(key(item), []).append(item)
    return grouped


def _spans_by_bucket(spans: Sequence[StateSpan], buckets: Sequence[tuple[str, float, float]],
                     until: float) -> dict[int, dict[str, list[StateSpan]]]:
    """Each span under every bucket it overlaps (positively), per agent."""
    starts = [b[1] for b in buckets]
    out: dict[int, dict[str, list[StateSpan]]] = {}
    for span in spans:
        span_end = until if span.end is None else min(span.end, until)
        i = max(0, bisect_right(starts, span.start) - 1)
        while i < len(buckets) and buckets[i][1] < span_end:
            if _overlap(span, buckets[i][1], buckets[i][2], until) > 0:
                out.setdefault(i, {}).setdefault(span.agent_id, []).append(span)
            i += 1
    return out


def _agent_sort_key(agent_id: str) -> tuple[int, int, str]:
    # Agent ids are extensions: "999" before "1001".
    return (0, int(agent_id), agent_id) if agent_id.isdigit() else (1, 0, agent_id)
