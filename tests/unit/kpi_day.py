"""A seeded stretch of call-center traffic as the engine logs it, and a second, deliberately naive
implementation of the KPI definitions of docs/kpi.md to check `kpi_report` against.

`generate(seed)` simulates a few sparse days, one busy day (``MAIN_DAY``, 300-600 calls) and
eight sparse days after it (so that the busy day's contacts get old enough for FCR), in
Asia/Shanghai, with 3 queues and 8 agents. It is a small discrete-event simulation: a heap of
timed actions, integer clock ticks of 0.1 s, agents in an explicit state machine. Every row is
written the moment the engine would write it, so the rows come out in log order.

`oracle(rows, interval=..., now=...)` recomputes the report from the documented definitions
with plain loops. It was written from the documentation only (not from
`callcenter/kpi/definitions.py`) and returns plain dicts keyed by scope.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

TZ = "Asia/Shanghai"
ZONE = ZoneInfo(TZ)
MAIN_DAY = datetime(2024, 3, 5, tzinfo=ZONE)  # the busy day, local midnight
HISTORY_DAYS = 3  # sparse days before the busy day
AFTER_DAYS = 8  # sparse days after it
DAY = 86400
BASE = int(MAIN_DAY.timestamp()) - HISTORY_DAYS * DAY  # first local midnight (Shanghai has no DST)
TICKS = 10  # simulation ticks per second

SL_SECONDS = 20.0
SHORT_ABANDON = 5.0
FCR_DAYS = 7

WITHHELD = ["anonymous", "", "Restricted", "unknown", "+", "private", "unavailable"]


def tick(day: int, hh: int, mm: int = 0, ss: int = 0) -> int:
    """Ticks since BASE of a local wall-clock time; `day` counts from the busy day (0)."""
    return ((day + HISTORY_DAYS) * DAY + hh * 3600 + mm * 60 + ss) * TICKS


def ts_of(t: int) -> float:
    return BASE + t / TICKS


STOP = tick(AFTER_DAYS, 17, 20)  # the end of the data, and the report's `now`
NOW = ts_of(STOP)

# queue -> (max hold in s before the fallback route, wrap-up range in ticks; (0, 0) = no wrap-up)
QUEUES = {"sales": (240, (50, 200)), "support": (300, (100, 450)), "billing": (180, (0, 0))}

SKILLS = {
    "1001": ("sales", "support", "billing"),
    "1002": ("sales",),
    "1003": ("support", "billing"),
    "1004": ("support",),
    "1005": ("billing", "support"),
    "1006": ("sales", "billing"),
    "1007": ("sales", "support", "billing"),
    "1008": ("sales", "support"),
}


# ============================================================================ the generator
@dataclass
class Agent:
    id: str
    queues: tuple[str, ...]
    state: str = "logged_out"
    token: int = 0  # bumped on every state change: a timer holding an old token is stale
    idle_since: int = 0
    pending: tuple | None = None  # ("pause", reason, until) or ("logout",) once the call is done


@dataclass
class Customer:
    number: str  # canonical "+86138........"
    crm_id: str | None


@dataclass
class Call:
    id: str
    customer: Customer | None  # None: withheld number
    caller: str | None  # as the IVR saw it; None: no call_arrived at all
    queue: str
    patience: int  # ticks the caller waits in the first leg before hanging up
    force_sl_edge: bool = False  # answer at exactly 20.0 s if the first offer allows it
    crm_known: str | None = None  # CRM id found by the IVR lookup or a screen pop
    state: str = "ivr"  # ivr, waiting, ringing, talking, transferring, done
    leg_no: int = -1
    leg_queue: str = ""
    queued_at: int = 0
    answered_at: int = 0
    attempts: int = 0
    offer: str | None = None
    ringing_agent: Agent | None = None
    excluded: set = field(default_factory=set)  # agents who answered an earlier leg
    arrived_ts: float | None = None


class DaySim:
    def __init__(self, seed: int, plus_less_numbers: bool) -> None:
        self.rng = random.Random(seed)
        self.plus_less_numbers = plus_less_numbers
        self.heap: list = []
        self.seq = 0
        self.now = 0
        self.rows: list[dict] = []
        self.agents = {a: Agent(a, q) for a, q in SKILLS.items()}
        self.calls: dict[str, Call] = {}
        self.waiting: list[Call] = []
        self.customers: list[tuple[Customer, int]] = []  # (customer, tick of one of their calls)
        self.n_calls = 0
        self.contacts: list[Call] = []  # calls answered in their first leg, so far

    # ------------------------------------------------------------------ plumbing
    def at(self, t: int, fn, *args, **kw) -> None:
        heapq.heappush(self.heap, (t, self.seq, fn, args, kw))
        self.seq += 1

    def emit(self, kind: str, call: str | None = None, queue: str | None = None, agent: str | None = None,
             **data) -> None:
        self.rows.append({"id": len(self.rows) + 1, "ts": ts_of(self.now), "kind": kind, "call_id": call,
                          "queue": queue, "agent_id": agent, "data": data})

    def run(self) -> list[dict]:
        while self.heap and self.heap[0][0] < STOP:
            t, _, fn, args, kw = heapq.heappop(self.heap)
            assert t >= self.now
            self.now = t
            fn(*args, **kw)
        return self.rows

    # ------------------------------------------------------------------ agents
    def set_state(self, agent: Agent, state: str, reason: str | None = None) -> None:
        agent.state = state
        agent.token += 1
        if state == "available":
            agent.idle_since = self.now
        self.emit("agent_state", agent=agent.id, state=state, reason=reason)

    def login(self, agent: Agent) -> None:
        if agent.state == "logged_out":
            agent.pending = None
            self.set_state(agent, "available")
            self.dispatch()

    def due_logout(self, agent: Agent) -> None:
        if agent.state in ("available", "paused", "wrap_up"):  # a wrap-up is cut short
            self.set_state(agent, "logged_out")
        elif agent.state in ("reserved", "on_call"):
            agent.pending = ("logout",)

    def due_pause(self, agent: Agent, reason: str, until: int) -> None:
        if agent.state in ("available", "paused", "wrap_up"):
            self.start_pause(agent, reason, until)
        elif agent.state in ("reserved", "on_call"):
            agent.pending = ("pause", reason, until)

    def start_pause(self, agent: Agent, reason: str, until: int) -> None:
        self.set_state(agent, "paused", reason)
        self.at(max(until, self.now + 10), self.unpause, agent, agent.token)

    def unpause(self, agent: Agent, token: int) -> None:
        if agent.token == token and agent.state == "paused":
            self.set_state(agent, "available")
            self.dispatch()

    def run_pending(self, agent: Agent, token: int | None = None) -> None:
        if token is not None and agent.token != token:
            return
        pending, agent.pending = agent.pending, None
        if pending[0] == "logout":
            self.set_state(agent, "logged_out")
        else:
            self.start_pause(agent, pending[1], pending[2])

    def auto_pause(self, agent: Agent, reason: str) -> None:
        """After a failed offer: paused for a while (or straight into what was pending)."""
        self.set_state(agent, "paused", reason)
        if agent.pending:
            self.run_pending(agent)
        else:
            self.at(self.now + self.rng.randint(150, 900), self.unpause, agent, agent.token)

    def free(self, agent: Agent) -> None:
        """The ringing stopped without an answer that kept the agent."""
        if agent.pending:
            self.run_pending(agent)
        else:
            self.set_state(agent, "available")
        self.dispatch()

    def wrapup_done(self, agent: Agent, token: int, call: Call) -> None:
        if agent.token == token and agent.state == "wrap_up":
            self.emit("wrapup_done", call=call.id, agent=agent.id)
            self.set_state(agent, "available")
            self.dispatch()

    # ------------------------------------------------------------------ routing
    def dispatch(self) -> None:
        for call in sorted(self.waiting, key=lambda c: (c.queued_at, c.id)):
            free = [a for a in self.agents.values()
                    if a.state == "available" and a.pending is None and call.leg_queue in a.queues
                    and a.id not in call.excluded]
            if free:
                self.offer(call, min(free, key=lambda a: (a.idle_since, a.id)))

    def offer(self, call: Call, agent: Agent) -> None:
        self.waiting.remove(call)
        call.attempts += 1
        call.state, call.offer, call.ringing_agent = "ringing", f"{call.id}/{call.attempts}", agent
        wait = self.now - call.queued_at
        self.emit("offered", call.id, call.leg_queue, agent.id, offer_id=call.offer, attempt=call.attempts,
                  wait=wait / TICKS)
        self.set_state(agent, "reserved")
        if call.customer and call.customer.crm_id and not call.crm_known and self.rng.random() < 0.5:
            self.at(self.now + 10, self.screen_pop, call, call.offer)
        r = self.rng.random()
        if call.force_sl_edge and call.leg_no == 0 and wait <= 140:
            outcome, delay = "answered", 200 - wait  # answered after exactly 20.0 s in the queue
        elif r < 0.07:
            outcome, delay = "ring_no_answer", 220
        elif r < 0.085:
            outcome, delay = "busy", 10
        elif r < 0.095:
            outcome, delay = "unreachable", 5
        else:
            outcome, delay = "answered", self.rng.randint(60, 180)  # never before 6 s
        self.at(self.now + delay, self.ring_result, call, call.offer, outcome)

    def screen_pop(self, call: Call, offer: str) -> None:
        if call.offer == offer and call.state == "ringing":
            call.crm_known = call.customer.crm_id
            self.emit("screen_pop", call.id, agent=call.ringing_agent.id, crm="found", customer_id=call.crm_known)

    def ring_result(self, call: Call, offer: str, outcome: str) -> None:
        if call.offer != offer or call.state != "ringing":
            return  # the caller left while it rang
        agent = call.ringing_agent
        call.offer = call.ringing_agent = None
        if outcome != "answered":
            self.emit(outcome, call.id, call.leg_queue, agent.id, offer_id=offer)
            call.state = "waiting"
            self.waiting.append(call)
            self.auto_pause(agent, {"ring_no_answer": "ring-no-answer"}.get(outcome, outcome))
            self.dispatch()
            return
        call.state, call.answered_at = "talking", self.now
        self.emit("answered", call.id, call.leg_queue, agent.id, offer_id=offer,
                  wait=(self.now - call.queued_at) / TICKS)
        self.set_state(agent, "on_call")
        if call.leg_no == 0 and call.caller is not None:
            self.contacts.append(call)
        self.plan_talk(call, agent)

    def plan_talk(self, call: Call, agent: Agent) -> None:
        rng, t0, q, a = self.rng, self.now, call.leg_queue, agent.id
        talk = rng.randint(300, 4200)  # ticks of conversation, hold not included
        transfer = call.leg_no == 0 and rng.random() < 0.12
        by = "transfer" if transfer else ("caller" if rng.random() < 0.65 else "agent")
        end = t0 + talk
        if rng.random() < 0.3:
            start, length = t0 + rng.randint(50, talk * 6 // 10), rng.randint(100, 1500)
            how = rng.choice(["resumed", "resumed", "resumed", "transferred" if transfer else "hangup"])
            self.at(start, self.emit, "hold_started", call.id, q, a)
            if how == "resumed":
                end += length
                self.at(start + length, self.hold_ended, call.id, q, a, length, "resumed")
                if rng.random() < 0.3:  # a second hold later in the call
                    second = rng.randint(start + length + 10, end - 5)
                    more = rng.randint(30, 600)
                    end += more
                    self.at(second, self.emit, "hold_started", call.id, q, a)
                    self.at(second + more, self.hold_ended, call.id, q, a, more, "resumed")
            elif how == "transferred":
                end = start + length
                self.at(end, self.hold_ended, call.id, q, a, length, "transferred")
            else:  # the caller hangs up on hold: hold_ended is written after `ended`
                end, by = start + length, "caller"
                self.at(end + 2, self.hold_ended, call.id, None, a, length, "hangup")
        self.at(end, self.end_call, call, agent, by)

    def hold_ended(self, call: str, queue: str | None, agent: str, length: int, how: str) -> None:
        self.emit("hold_ended", call, queue, agent, seconds=length / TICKS, how=how)

    def end_call(self, call: Call, agent: Agent, by: str) -> None:
        rng, q = self.rng, call.leg_queue
        if by == "transfer":
            target = rng.choice([other for other in QUEUES if other != q])
            self.emit("transferred", call.id, q, agent.id, to_queue=target, to_agent=None)
        self.emit("ended", call.id, q, agent.id, talk=(self.now - call.answered_at) / TICKS, by=by)
        low, high = QUEUES[q][1]
        wrap = rng.randint(low, high)
        if wrap == 0:  # no wrap-up configured: straight back to available
            self.set_state(agent, "available")
            if agent.pending:
                self.run_pending(agent)
            self.dispatch()
        else:
            self.set_state(agent, "wrap_up")
            if agent.pending:  # ends the wrap-up early to pause or log out
                self.at(self.now + rng.randint(5, wrap - 1), self.run_pending, agent, agent.token)
            else:
                self.at(self.now + wrap, self.wrapup_done, agent, agent.token, call)
        if rng.random() < 0.75:
            resolved = (rng.random() < 0.3) if by == "transfer" else (rng.random() < 0.7)
            name = "transferred" if by == "transfer" else ("solved" if resolved else "follow-up")
            saved = self.now + rng.randint(5, max(6, wrap - 1))
            self.at(saved, self.emit, "disposition", call.id, None, agent.id, disposition=name, resolved=resolved)
            if rng.random() < 0.12:  # saved again, changing its mind: the last one counts
                self.at(saved + 20, self.emit, "disposition", call.id, None, agent.id, disposition="edited",
                        resolved=not resolved)
        if by == "transfer":
            call.excluded.add(agent.id)
            call.state = "transferring"
            self.at(self.now + 10, self.enqueue, call, target)
            return
        call.state = "done"
        if rng.random() < 0.35:
            self.at(self.now + rng.randint(200, 900), self.survey, call, q, agent.id)

    def survey(self, call: Call, queue: str, agent: str) -> None:
        rng = self.rng
        if rng.random() < 0.15:  # another question first: not CSAT
            self.emit("survey_answered", call.id, queue, agent, question="resolved", score=rng.choice([1, 2]))
        if rng.random() < 0.08:  # off the 1..5 scale, and nothing else: no response
            self.emit("survey_answered", call.id, queue, agent, question="csat", score=rng.choice([0, 6, 9]))
            return
        self.emit("survey_answered", call.id, queue, agent, question="csat",
                  score=rng.choices([1, 2, 3, 4, 5], weights=[1, 1, 2, 4, 4])[0])
        if rng.random() < 0.15:  # answered twice: only the first counts
            self.emit("survey_answered", call.id, queue, agent, question="csat", score=rng.choice([1, 5, 7]))

    # ------------------------------------------------------------------ callers
    def arrive(self, call: Call, ivr_only: bool) -> None:
        if call.caller is None:  # no IVR session: straight into the queue (no call_arrived)
            self.enqueue(call, call.queue)
            return
        self.emit("call_arrived", call.id, caller=call.caller, channel=f"PJSIP/trunk-{call.id}", flow="main",
                  dnid="4008200000")
        call.arrived_ts = self.rows[-1]["ts"]
        if call.customer is None and self.rng.random() < 0.4:
            # withheld number, but the caller typed an account number the CRM knows
            call.crm_known = str(self.rng.randint(900000, 999999))
            self.emit("ivr_lookup", call.id, by="account", status="found", tier="silver",
                      customer_id=call.crm_known, target="menu")
        elif call.customer and call.customer.crm_id and self.rng.random() < 0.6:
            call.crm_known = call.customer.crm_id
            self.emit("ivr_lookup", call.id, by="caller", status="found", tier="gold",
                      customer_id=call.crm_known, target="menu")
        elif self.rng.random() < 0.3:
            self.emit("ivr_lookup", call.id, by="caller", status=self.rng.choice(["not_found", "unavailable"]),
                      target="menu")
        ivr = self.rng.randint(40, 250)
        if ivr_only:
            self.at(self.now + ivr, self.emit, "ivr_hangup", call.id, None, None, reason="caller")
        else:
            self.at(self.now + ivr // 2, self.emit, "ivr_menu_choice", call.id, None, None, node="menu", key="1",
                    target=call.queue)
            self.at(self.now + ivr, self.enqueue, call, call.queue)

    def enqueue(self, call: Call, queue: str) -> None:
        call.leg_no += 1
        call.leg_queue, call.queued_at, call.state = queue, self.now, "waiting"
        self.emit("queued", call.id, queue, priority=0)
        self.waiting.append(call)
        patience = call.patience if call.leg_no == 0 else self.patience()
        self.at(self.now + patience, self.give_up, call, call.leg_no, "abandoned")
        self.at(self.now + QUEUES[queue][0] * TICKS, self.give_up, call, call.leg_no, "exited")
        self.dispatch()

    def give_up(self, call: Call, leg_no: int, kind: str) -> None:
        if call.leg_no != leg_no or call.state not in ("waiting", "ringing"):
            return
        stage = call.state
        wait = (self.now - call.queued_at) / TICKS
        if kind == "abandoned":
            self.emit("abandoned", call.id, call.leg_queue, wait=wait, stage=stage)
        else:
            self.emit("exited", call.id, call.leg_queue, reason="fallback:max_hold", wait=wait, stage=stage)
            self.emit("fallback", call.id, call.leg_queue, reason="fallback:max_hold")
        agent = call.ringing_agent
        call.state, call.offer, call.ringing_agent = "done", None, None
        if stage == "ringing":
            self.free(agent)
        else:
            self.waiting.remove(call)

    def patience(self) -> int:
        r = self.rng.random()
        if r < 0.06:
            return self.rng.randint(10, 48)  # a short abandon, before anyone could answer
        return 60 + int(self.rng.expovariate(1 / 1200))

    def new_call(self, t: int, queue: str | None = None, caller_of: Customer | None = None,
                 ivr_only: bool = False, returning: float = 0.2) -> Call:
        rng = self.rng
        self.n_calls += 1
        cid = f"{ts_of(t):.0f}.{self.n_calls}"
        queue = queue or rng.choices(list(QUEUES), weights=[40, 45, 15])[0]
        customer = caller_of
        if customer is None and rng.random() >= 0.04:
            recent = [c for c, last in self.customers if t - last <= 9 * DAY * TICKS]
            if recent and rng.random() < returning:
                customer = rng.choice(recent)
            else:
                customer = Customer(f"+86138{rng.randint(0, 99999999):08d}",
                                    str(rng.randint(1000, 99999)) if rng.random() < 0.6 else None)
        if customer is not None:
            self.customers.append((customer, t))
            number = customer.number
            written = [number, f"{number[:3]} {number[3:6]}-{number[6:10]}-{number[10:]}",
                       number[1:] if self.plus_less_numbers else number]
            caller = rng.choices(written, weights=[8, 1, 1])[0]  # one number, written in several ways
        else:
            caller = rng.choice(WITHHELD)
        if caller_of is None and not ivr_only and rng.random() < 0.03:
            caller = None  # entered the queue without an IVR session: no call_arrived
        call = Call(cid, customer, caller, queue, self.patience())
        self.calls[cid] = call
        self.at(t, self.arrive, call, ivr_only)
        return call

    def plan_exact_repeats(self) -> None:
        """After the busy day: two answered contacts, known by their number only, get an IVR-only
        call from the same number exactly 7 days later (inside the window: its last second counts)
        and 7 days + 0.1 s later (outside)."""
        calls_per_number = defaultdict(int)
        for customer, _ in self.customers:
            calls_per_number[customer.number] += 1
        lonely = [call for call in self.contacts
                  if call.arrived_ts >= MAIN_DAY.timestamp() and call.customer and call.customer.crm_id is None
                  and calls_per_number[call.customer.number] == 1]
        for call, extra in zip(self.rng.sample(lonely, 2), (0, 1)):
            arrived = round((call.arrived_ts - BASE) * TICKS)
            self.new_call(arrived + FCR_DAYS * DAY * TICKS + extra, caller_of=call.customer, ivr_only=True)


def _shifts(rng: random.Random) -> list[tuple[int, str, str, tuple]]:
    """(tick, action, agent, args): logins, logouts and pauses of every day."""
    def j() -> int:
        return rng.randint(0, 7)

    plan: list[tuple[int, str, str, tuple]] = []

    def shift(day, agent, login, logout, pauses=()):
        plan.append((tick(day, *login), "login", agent, ()))  # (hh, mm[, ss]) local
        if logout:
            plan.append((tick(day, *logout), "logout", agent, ()))
        for reason, start, end in pauses:
            plan.append((tick(day, *start), "pause", agent, (reason, tick(day, *end))))

    for day in [*range(-HISTORY_DAYS, 0), *range(1, AFTER_DAYS + 1)]:
        last = day == AFTER_DAYS
        shift(day, "1001", (10, 0), None if last else (16, 0), [("break", (13, j()), (13, 15 + j()))])
        shift(day, "1003", (10, j()), (17, 0) if last else (16, 0))
        if not last:
            shift(day, "1007", (11, 0), (15, 0))
    # the busy day; lunches end at fixed times, so a whole half hour is paused (no occupancy)
    shift(0, "1001", (8, 0), (17, 0), [("break", (10, j()), (10, 20)), ("lunch", (12, 15), (13, 0))])
    shift(0, "1002", (8, j()), (17, 0), [("break", (10, 40), (10, 50 + j())), ("lunch", (12, 15), (13, 0))])
    shift(0, "1003", (8, 0), (11, 13), [("meeting", (9, 31), (9, 44))])
    shift(0, "1003", (11, 41), (17, 0), [("break", (15, 22), (15, 37))])
    shift(0, "1004", (8, 30), (17, 30), [("lunch", (12, 45), (13, 30))])
    shift(0, "1005", (12, 0), (21, 0), [("break", (16, 10 + j()), (16, 25 + j())), ("meeting", (18, 0), (18, 20))])
    shift(0, "1006", (12, j()), (21, 0), [("break", (17, 5), (17, 20))])
    shift(0, "1007", (9, 0), (18, 0), [("break", (14, 14), (14, 29))])
    shift(0, "1008", (16, 0), (24, 30),  # works past midnight
          [("break", (22, 10), (22, 25)), ("break", (23, 50), (23, 59, 30))])
    return plan


# busy-day arrival rates: (from hour, to hour, calls per hour)
MAIN_RATES = [(7.5, 8, 8), (8, 9, 25), (9, 10, 45), (10, 11, 70), (11, 12, 50), (12, 13, 40), (13, 17, 32),
              (17, 20, 22), (20, 22, 10), (22, 24.33, 6)]


def _arrival_ticks(rng: random.Random, day: int, rates) -> list[int]:
    out = []
    for start, end, per_hour in rates:
        s = start * 3600
        while True:
            s += max(1, round(rng.expovariate(per_hour / 3600)))
            if s >= end * 3600:
                break
            out.append(tick(day, 0) + int(s) * TICKS)  # arrivals on whole seconds
    return out


def generate(seed: int, *, plus_less_numbers: bool = False) -> list[dict]:
    """The rows of the whole stretch. `plus_less_numbers`: some callers' numbers come without
    their leading "+" ("8613800000001"), the same customer per docs/kpi.md."""
    sim = DaySim(seed, plus_less_numbers)
    rng = sim.rng
    for t, action, agent_id, args in _shifts(rng):
        agent = sim.agents[agent_id]
        fn = {"login": sim.login, "logout": sim.due_logout, "pause": sim.due_pause}[action]
        sim.at(t, fn, agent, *args)
    arrivals = []
    for day in range(-HISTORY_DAYS, AFTER_DAYS + 1):
        if day == 0:
            arrivals += [(t, 0.2) for t in _arrival_ticks(rng, 0, MAIN_RATES)]
        else:
            # the last day ends in a rush: callers still waiting when the data ends
            rates = [(9.5, 16.5, 3)] + ([(17.08, 17.25, 40), (17.25, 17.333, 90)] if day == AFTER_DAYS else [])
            arrivals += [(t, 0.55) for t in _arrival_ticks(rng, day, rates)]
    main_queued = []
    for t, returning in sorted(arrivals):
        ivr_only = rng.random() < 0.05
        call = sim.new_call(t, ivr_only=ivr_only, returning=returning)
        if tick(0, 8) <= t < tick(0, 20) and call.caller is not None and not ivr_only:
            main_queued.append(call)
    # exact edges on the busy day: abandons at 4.9 s and 5.0 s, answers at exactly 20.0 s
    picks = rng.sample(main_queued, 14)
    for call in picks[:2]:
        call.patience = 49
    for call in picks[2:4]:
        call.patience = 50
    for call in picks[4:]:
        call.force_sl_edge, call.patience = True, max(call.patience, 600)
    # queued 5 s before midnight, with the night agent just back from a break: answered the next day
    late = sim.new_call(tick(0, 23, 59, 55), queue="sales", ivr_only=False)
    late.caller, late.patience = None, 900  # straight into the queue, no IVR
    last = sim.new_call(STOP - 3 * TICKS, queue="support")  # no outcome before the data ends
    last.caller, last.patience = None, 900
    sim.at(tick(1, 1), sim.plan_exact_repeats)
    return sim.run()


# ============================================================================ the oracle
# Written from docs/kpi.md only. Plain loops, plain dicts; `math.fsum` for every float sum.
def bucket_bounds(ts: float, interval: str) -> tuple[float, float]:
    """The local wall-clock interval [start, end) holding `ts`."""
    local = datetime.fromtimestamp(ts, ZONE)
    if interval == "30m":
        start = local.replace(minute=local.minute // 30 * 30, second=0, microsecond=0)
        end = start + timedelta(minutes=30)
    else:
        assert interval == "day"
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + timedelta(days=1)
    return start.timestamp(), end.timestamp()


def bucket_label(start: float) -> str:
    return datetime.fromtimestamp(start, ZONE).isoformat()


@dataclass
class Leg:
    call_id: str
    queue: str
    queued_at: float
    transferred_in: bool
    outcome: str | None = None  # answered / abandoned / exited
    wait: float | None = None
    agent: str | None = None
    ended_talk: float | None = None  # ended.talk: answer to end, hold included
    ended_index: int | None = None  # position of the `ended` row in the log
    transferred_out: bool = False
    hold: float = 0.0
    held: bool = False
    acw: float | None = None


def read_legs(rows: list[dict]) -> list[Leg]:
    legs: list[Leg] = []
    current: dict[str, Leg] = {}  # call -> its latest leg
    transferred: set[str] = set()  # calls whose next `queued` starts a new leg
    for index, row in enumerate(rows):
        kind, call, data = row["kind"], row["call_id"], row["data"]
        if kind == "queued":
            if call not in current or call in transferred:
                leg = Leg(call, row["queue"], row["ts"], transferred_in=call in transferred)
                legs.append(leg)
                current[call] = leg
                transferred.discard(call)
        elif kind in ("answered", "abandoned", "exited"):
            leg = current.get(call)
            if leg is not None and leg.outcome is None:
                leg.outcome, leg.wait = kind, data["wait"]
                if kind == "answered":
                    leg.agent = row["agent_id"]
        elif kind == "transferred":
            current[call].transferred_out = True
            transferred.add(call)
        elif kind == "ended":
            leg = current[call]
            assert leg.agent == row["agent_id"] and leg.ended_talk is None
            leg.ended_talk, leg.ended_index = data["talk"], index

    # hold: the hold_ended seconds of the leg's call and agent
    holds = defaultdict(list)
    for row in rows:
        if row["kind"] == "hold_ended":
            holds[row["call_id"], row["agent_id"]].append(row["data"]["seconds"])
    for leg in legs:
        if leg.outcome == "answered" and holds[leg.call_id, leg.agent]:
            leg.hold = math.fsum(holds[leg.call_id, leg.agent])
            leg.held = True

    # ACW: from the agent's wrap_up after the leg's `ended` to the agent's next state
    states_of = defaultdict(list)  # agent -> [(position in the log, row)]
    for index, row in enumerate(rows):
        if row["kind"] == "agent_state":
            states_of[row["agent_id"]].append((index, row))
    for leg in legs:
        if leg.ended_index is None:
            continue
        later_states = [(i, row) for i, row in states_of[leg.agent] if i > leg.ended_index]
        if not later_states:
            continue  # nothing known yet
        first = later_states[0][1]
        if first["data"]["state"] == "available":
            leg.acw = 0.0  # no wrap-up configured
        elif first["data"]["state"] == "wrap_up" and len(later_states) > 1:
            leg.acw = later_states[1][1]["ts"] - first["ts"]
        else:
            assert first["data"]["state"] == "wrap_up", first  # the generator never does anything else
    return legs


def digits_of(caller: str | None) -> str:
    return "".join(ch for ch in caller or "" if ch in "0123456789")


@dataclass
class Contact:
    call_id: str
    queue: str  # of the first leg
    queued_at: float  # of the first leg: its interval
    agent: str  # of the last answered leg
    arrived: float
    customer: str | None
    repeated: bool = False
    last_disposition: dict | None = None
    csat: int | None = None


def read_contacts(rows: list[dict], legs: list[Leg]) -> list[Contact]:
    arrived: dict[str, float] = {}  # every call: its call_arrived, else its first queued
    caller: dict[str, str] = {}
    crm: dict[str, str] = {}
    for row in rows:
        call, data = row["call_id"], row["data"]
        if row["kind"] == "call_arrived":
            arrived[call] = row["ts"]
            caller[call] = data.get("caller")
    for row in rows:
        call, data = row["call_id"], row["data"]
        if row["kind"] == "queued" and call not in arrived:
            arrived[call] = row["ts"]
        if row["kind"] == "ivr_lookup" and data.get("status") == "found" and data.get("customer_id"):
            crm.setdefault(call, data["customer_id"])
        if row["kind"] == "screen_pop" and data.get("crm") == "found" and data.get("customer_id"):
            crm.setdefault(call, data["customer_id"])

    def identify(call: str) -> str | None:
        if call in crm:
            return "crm:" + crm[call]
        digits = digits_of(caller.get(call))
        plus = "+" if (caller.get(call) or "").strip().startswith("+") else ""
        return "tel:" + plus + digits if digits else None

    customer = {call: identify(call) for call in arrived}
    legs_of = defaultdict(list)
    for leg in legs:
        legs_of[leg.call_id].append(leg)

    contacts = []
    for call, arrival in arrived.items():
        call_legs = legs_of[call]
        answered = [leg for leg in call_legs if leg.outcome == "answered"]
        if not answered:
            continue
        contacts.append(Contact(call, call_legs[0].queue, call_legs[0].queued_at, answered[-1].agent,
                                arrival, customer[call]))
    window = FCR_DAYS * DAY
    for contact in contacts:
        if contact.customer is None:
            continue
        for other, arrival in arrived.items():
            if (other != contact.call_id and customer[other] == contact.customer
                    and contact.arrived < arrival <= contact.arrived + window):
                contact.repeated = True
    by_call = {contact.call_id: contact for contact in contacts}
    csat_answers = defaultdict(list)
    for row in rows:
        contact = by_call.get(row["call_id"])
        if contact is None:
            continue
        if row["kind"] == "disposition":
            contact.last_disposition = row["data"]  # the last one saved counts
        if row["kind"] == "survey_answered" and row["data"].get("question") == "csat":
            csat_answers[contact.call_id].append(row["data"].get("score"))
    for contact in contacts:
        answers = csat_answers[contact.call_id]
        # the first answer counts; one off the 1..5 scale is ignored (the generator never puts a
        # valid answer after an off-scale one, where "first" and "ignored" could be read two ways)
        if answers and answers[0] in (1, 2, 3, 4, 5):
            contact.csat = answers[0]
    return contacts


def ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else numerator / denominator


def mean(values: list[float]) -> float | None:
    return None if not values else math.fsum(values) / len(values)


def fcr_figures(contacts: list[Contact], now: float) -> dict:
    anonymous = [c for c in contacts if c.customer is None]
    known = [c for c in contacts if c.customer is not None]
    scored = [c for c in known if now - c.arrived >= FCR_DAYS * DAY]
    too_recent = [c for c in known if now - c.arrived < FCR_DAYS * DAY]
    resolved = [c for c in scored if not c.repeated]
    reported = [c for c in contacts if c.last_disposition is not None]
    reported_resolved = [c for c in reported if c.last_disposition.get("resolved") is True]
    return {"window_days": float(FCR_DAYS), "scored": len(scored), "resolved": len(resolved),
            "rate": ratio(len(resolved), len(scored)), "anonymous": len(anonymous), "too_recent": len(too_recent),
            "reported": len(reported), "reported_resolved": len(reported_resolved),
            "reported_rate": ratio(len(reported_resolved), len(reported))}


def csat_figures(contacts: list[Contact]) -> dict:
    scores = [c.csat for c in contacts if c.csat is not None]
    satisfied = [s for s in scores if s >= 4]
    return {"responses": len(scores), "satisfied": len(satisfied), "top2_box": ratio(len(satisfied), len(scores)),
            "mean_score": mean([float(s) for s in scores])}


def handling_figures(answered: list[Leg]) -> dict:
    ended = [leg for leg in answered if leg.ended_talk is not None]
    wrapped = [leg for leg in ended if leg.acw is not None]
    return {
        "avg_talk": mean([leg.ended_talk - leg.hold for leg in ended]),
        "avg_hold": mean([leg.hold for leg in ended]),
        "avg_acw": mean([leg.acw for leg in wrapped]),
        "aht": mean([(leg.ended_talk - leg.hold) + leg.hold + leg.acw for leg in wrapped]),
        "handled": len(wrapped),
        "transferred_out": len([leg for leg in answered if leg.transferred_out]),
    }


def queue_figures(name: str, legs: list[Leg], contacts: list[Contact], now: float) -> dict:
    def short(leg: Leg) -> bool:
        return leg.outcome == "abandoned" and leg.wait < SHORT_ABANDON

    answered = [leg for leg in legs if leg.outcome == "answered"]
    abandoned = [leg for leg in legs if leg.outcome == "abandoned" and not short(leg)]
    short_abandoned = [leg for leg in legs if short(leg)]
    exited = [leg for leg in legs if leg.outcome == "exited"]
    offered = len(answered) + len(abandoned) + len(exited)
    answered_within = len([leg for leg in answered if leg.wait <= SL_SECONDS])
    abandoned_within = len([leg for leg in abandoned if leg.wait <= SL_SECONDS])
    waits = [leg.wait for leg in answered + abandoned]
    out = {
        "queue": name,
        "queued": len(legs),
        "unresolved": len([leg for leg in legs if leg.outcome is None]),
        "offered": offered,
        "offered_raw": offered + len(short_abandoned),
        "answered": len(answered),
        "abandoned": len(abandoned),
        "abandoned_raw": len(abandoned) + len(short_abandoned),
        "short_abandoned": len(short_abandoned),
        "exited": len(exited),
        "transferred_in": len([leg for leg in legs if leg.transferred_in]),
        "service_level": {
            "threshold": SL_SECONDS, "answered_within": answered_within, "abandoned_within": abandoned_within,
            "of_offered": ratio(answered_within, offered), "of_answered": ratio(answered_within, len(answered)),
            "abandons_met": ratio(answered_within + abandoned_within, offered)},
        "answer_rate": ratio(len(answered), offered),
        "abandon_rate": ratio(len(abandoned), offered),
        "asa": mean([leg.wait for leg in answered]),
        "longest_wait": max(waits) if waits else None,
        "held": len([leg for leg in answered if leg.ended_talk is not None and leg.held]),
        "fcr": fcr_figures(contacts, now),
        "csat": csat_figures(contacts),
    }
    out.update(handling_figures(answered))
    return out


@dataclass
class Span:
    agent: str
    state: str
    start: float
    end: float


def agent_spans(rows: list[dict], now: float) -> list[Span]:
    spans = []
    open_span: dict[str, Span] = {}
    for row in rows:
        if row["kind"] != "agent_state":
            continue
        agent = row["agent_id"]
        if agent in open_span:
            open_span[agent].end = row["ts"]
        open_span[agent] = Span(agent, row["data"]["state"], row["ts"], now)
        spans.append(open_span[agent])
    return spans


def seconds_in(spans: list[Span], states: set[str], start: float, end: float) -> float:
    return math.fsum(max(0.0, min(span.end, end) - max(span.start, start)) for span in spans if span.state in states)


def agent_figures(agent: str, legs: list[Leg], contacts: list[Contact], spans: list[Span],
                  not_taken: int, start: float, end: float, now: float) -> dict:
    answered = [leg for leg in legs if leg.outcome == "answered" and leg.agent == agent]
    mine = spans  # this agent's
    logged_in = seconds_in(mine, {"available", "reserved", "on_call", "wrap_up", "paused"}, start, end)
    paused = seconds_in(mine, {"paused"}, start, end)
    handling = seconds_in(mine, {"on_call", "wrap_up"}, start, end)
    out = {"agent_id": agent, "answered": len(answered), "offers_not_taken": not_taken,
           "logged_in_time": logged_in, "paused_time": paused, "handling_time": handling,
           "occupancy": ratio(handling, logged_in - paused),
           "fcr": fcr_figures([c for c in contacts if c.agent == agent], now),
           "csat": csat_figures([c for c in contacts if c.agent == agent])}
    out.update(handling_figures(answered))
    return out


def oracle(rows: list[dict], *, interval: str | None, now: float, queue: str | None = None,
           agent: str | None = None) -> list[dict]:
    """The report as a list of intervals: {"label", "start", "end", "queues": {name: figures},
    "agents": {id: figures}}; "*" in queues is the total."""
    rows = sorted(rows, key=lambda r: r["id"])
    legs = read_legs(rows)
    contacts = read_contacts(rows, legs)
    spans = agent_spans(rows, now)
    if queue is not None:
        legs = [leg for leg in legs if leg.queue == queue]
        contacts = [c for c in contacts if c.queue == queue]
    agents = sorted({span.agent for span in spans} | {leg.agent for leg in legs if leg.agent})
    spans_of = {a: [span for span in spans if span.agent == a] for a in agents}
    not_taken_rows = [row for row in rows if row["kind"] in ("ring_no_answer", "busy", "unreachable")]
    if agent is not None:
        agents = [agent]
    queues = sorted({leg.queue for leg in legs})

    first = rows[0]["ts"]
    if interval is None:
        buckets = [("all", first, now)]
    else:
        buckets = []
        start, end = bucket_bounds(first, interval)
        while start <= now:
            buckets.append((bucket_label(start), start, end))
            start, end = bucket_bounds(end, interval)

    report = []
    for label, start, end in buckets:
        def inside(ts: float, start: float = start, end: float = end) -> bool:
            return interval is None or start <= ts < end

        bucket_legs = [leg for leg in legs if inside(leg.queued_at)]
        bucket_contacts = [c for c in contacts if inside(c.queued_at)]
        figures = {"label": label, "start": start, "end": end, "queues": {}, "agents": {}}
        figures["queues"]["*"] = queue_figures("*", bucket_legs, bucket_contacts, now)
        for name in queues:
            figures["queues"][name] = queue_figures(
                name, [leg for leg in bucket_legs if leg.queue == name],
                [c for c in bucket_contacts if c.queue == name], now)
        for agent_id in agents:
            not_taken = len([row for row in not_taken_rows if row["agent_id"] == agent_id and inside(row["ts"])])
            figures["agents"][agent_id] = agent_figures(agent_id, bucket_legs, bucket_contacts, spans_of[agent_id],
                                                        not_taken, start, end, now)
        report.append(figures)
    return report
