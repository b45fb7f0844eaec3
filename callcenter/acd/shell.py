"""The ACD's thin shell: feeds the pure router what happens on Asterisk and the API, and carries
out what it decides — ring an agent (AMI Originate), stop a ringing phone, arm a wrap-up timer,
log an event. All decisions stay in the router; nothing here chooses an agent.

Each offer rings one agent *leg*, whose Asterisk uniqueid we choose (``ChannelId``) and register
before the Originate is sent. Its fate is read, in order, from Asterisk's event stream:
``CCAgentAnswered`` (the agent picked up), ``BridgeEnter`` (the leg is bridged to the caller:
the call is answered), ``Hangup`` (the leg is gone: the call ended if it had been bridged, else
the offer failed). OriginateResponse, which reaches us on another path, only reports why an
unanswered leg failed (no answer, busy, unreachable).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from callcenter.acd.announcements import AnnouncementPlan, AnnouncementSchedule, announcement
from callcenter.acd.model import (Call, CallState, CancelOffer, Divert, Effect, Event, MaxWait, Offer, RoutingError,
                                  StartTimer)
from callcenter.acd.resync import AgentLegSeen, ResyncPlan, parse_leg_id
from callcenter.acd.router import Router
from callcenter.acd.steps import Steps
from callcenter.asterisk.ami import AmiClient, AmiConnectionLost, AmiError, AmiNotConnected
from callcenter.events.log import EventLog
from callcenter.runtime import BackgroundTasks
from callcenter.shared.offers import AGENT_TAKEN, CALL_TAKEN, SharedOffers

log = logging.getLogger(__name__)

# Asterisk's OriginateResponse Reason codes (AST_CONTROL_*): what a failed ring means for the agent.
FAILURE_REASONS = {3: "ring-no-answer", 5: "busy"}
# How an agent-first dial-out's Dial() to the customer ended (DIALSTATUS), as an outcome.
DIAL_OUTCOMES = {"ANSWER": "answered", "BUSY": "busy", "NOANSWER": "no_answer", "CANCEL": "no_answer"}
CALLER_NUMBER = re.compile(r"[^0-9+*#]")
MAX_CALLER_NAME = 80  # a caller ID name is whatever the trunk sent: kept as text, cut to a sane length
CALLER_EVENT_COUNTS_KEPT = 100_000  # (call, kind) counters behind shared event keys, oldest forgotten
# How a caller left the queue: logged by every engine that followed it, the ringing one with its agent.
CALLER_EXITS = frozenset({"abandoned", "exited"})
# Another engine's agent leg for a waiting call hung up: that engine gives its claim back just
# after, so the call is offered here a moment later rather than refused and parked a ring timeout.
FOREIGN_RELEASE_DELAY = 0.3


@dataclass
class AgentLeg:
    offer_id: str
    call_id: str
    agent_id: str
    answered: bool = False
    bridged: bool = False
    # The AMI connection dropped while its Originate was out: the resync found the leg alive, and
    # from then on its own events (answer, bridge, hang-up) decide, since no OriginateResponse will.
    uncertain: bool = False
    # Found bridged by a resync, answered while no engine watched (when, if the log says).
    adopted: bool = False
    answered_at: float | None = None
    queue: str = ""  # an adopted leg's: the router has no call to tell it
    routed: bool = False  # an adopted leg the router follows (it logs the end itself)


def dial_outcome(dial_status: str) -> str:
    """DIALSTATUS as an outcome; anything else (CONGESTION, CHANUNAVAIL, ...) is "failed"."""
    return DIAL_OUTCOMES.get((dial_status or "").strip().upper(), "failed")


def leg_id(offer_id: str, engine: str = "") -> str:
    """The Asterisk uniqueid we give an offer's agent leg (offer ids are 'call/n'). Engines
    sharing queues add their name, so their legs never share an id (see acd.resync.LEG_ID)."""
    return offer_id.replace("/", "-o") + (f".{engine}" if engine else "")


class AcdShell:
    def __init__(self, router: Router, ami: AmiClient, events: EventLog, *, clock=time.time):
        self.router = router
        self.ami = ami
        self.events = events
        self.clock = clock
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks = BackgroundTasks()
        self.legs: dict[str, AgentLeg] = {}  # agent leg uniqueid -> its offer, until the leg hangs up
        # call id -> "caller"/"agent": whose channel asked to hang up first (see hangup_requested)
        self._ended_by: dict[str, str] = {}
        self.announcements = AnnouncementSchedule()
        # Told of every effect after the shell has acted on it (the agent desktop follows offers,
        # answers and ends this way); an observer must not raise and must not block.
        self.observers: list[Callable[[Effect], None]] = []
        # Several engines on shared queues (Redis): offers are claimed before they ring. None:
        # this engine serves its queues alone.
        self.shared: SharedOffers | None = None
        # offer id -> its Offer and "offered" event, held from the observers and the log until claimed
        self._held_offered: dict[str, list[Effect]] = {}
        self._caller_event_counts: dict[tuple[str, str], int] = {}

    def share(self, shared: SharedOffers) -> None:
        """Serve the queues together with other engines, through ``shared``."""
        self.shared = shared

    @property
    def engine_tag(self) -> str:
        return self.shared.engine if self.shared is not None else ""

    def _leg_id(self, offer_id: str) -> str:
        return leg_id(offer_id, self.engine_tag)

    # ------------------------------------------------------------------ inputs
    def apply(self, effects: Iterable) -> None:
        for effect in effects:
            if self.shared is not None and (isinstance(effect, Offer) or (
                    isinstance(effect, Event) and effect.kind == "offered")):
                # Shared queues: an offer is news (its event, the agent's screen) only once its
                # claim is ours; until then it may yet be another engine's call.
                offer_id = effect.offer_id if isinstance(effect, Offer) else effect.data["offer_id"]
                self._held_offered.setdefault(offer_id, []).append(effect)
                if isinstance(effect, Offer):
                    self._start_ring(effect)
                continue
            if isinstance(effect, Event):
                self._record(effect)
            elif isinstance(effect, Offer):
                self._start_ring(effect)
            elif isinstance(effect, CancelOffer):
                self._tasks.spawn(self._withdraw(effect), f"cancel {effect.offer_id}")
            elif isinstance(effect, Divert):
                self._tasks.spawn(self._divert(effect), f"divert {effect.call_id}")
            elif isinstance(effect, StartTimer):
                self._arm(effect)
            else:  # a new effect type the shell does not know yet is a programming error, loudly
                log.error("unknown ACD effect %r", effect)
            self._tell_observers(effect)

    def _tell_observers(self, effect: Effect) -> None:
        for observe in self.observers:
            try:
                observe(effect)
            except Exception:
                log.exception("ACD observer failed on %r", effect)

    def _start_ring(self, offer: Offer) -> None:
        self.legs[self._leg_id(offer.offer_id)] = AgentLeg(offer.offer_id, offer.call_id, offer.agent_id)
        self._tasks.spawn(self._ring(offer), f"offer {offer.offer_id}")

    def _record(self, event: Event) -> None:
        # What the router says of a caller alone (queued, step changes, abandoned while waiting),
        # and how the caller left, every engine sharing the queues says alike; what involves an
        # agent, only that agent's engine.
        agent_id, data = event.agent_id, event.data
        if event.kind in CALLER_EXITS and agent_id is not None and self._claim_pending(event.call_id):
            # the offer never rang (its claim had not answered): the caller left a waiting call
            agent_id, data = None, {**data, "stage": "waiting"}
        self.record(event.kind, call_id=event.call_id, queue=event.queue, agent_id=agent_id,
                    data=data, seen_by_all=agent_id is None or event.kind in CALLER_EXITS)

    def _claim_pending(self, call_id: str | None) -> bool:
        return any(isinstance(effect, Offer) and effect.call_id == call_id
                   for effects in self._held_offered.values() for effect in effects)

    def record(self, kind: str, *, call_id: str | None = None, queue: str | None = None,
               agent_id: str | None = None, data: dict | None = None, seen_by_all: bool = False) -> None:
        """Log an event. ``seen_by_all``: every engine sharing the queues logs it too (it comes
        from the caller's own channel); it then carries a key all of them give alike, so the
        database stores it once. Alone, an engine logs it as usual."""
        key = None
        if self.shared is not None and call_id and seen_by_all:
            count_key = (call_id, kind)
            count = self._caller_event_counts[count_key] = self._caller_event_counts.get(count_key, 0) + 1
            if len(self._caller_event_counts) > CALLER_EVENT_COUNTS_KEPT:
                del self._caller_event_counts[next(iter(self._caller_event_counts))]
            key = f"{call_id}:{kind}:{count}"
        self.events.record(kind, call_id=call_id, queue=queue, agent_id=agent_id, data=data, key=key)

    def drop_leg(self, uniqueid: str) -> AgentLeg | None:
        """Stop following an agent leg; its offer's claim, if shared, is given back."""
        leg = self.legs.pop(uniqueid, None)
        if leg is not None:
            self._release(leg.offer_id)
        return leg

    def _release(self, offer_id: str) -> None:
        self._held_offered.pop(offer_id, None)
        if self.shared is not None:
            self._tasks.spawn(self.shared.release(offer_id), f"release {offer_id}")

    def caller_waiting(self, call_id: str, queue: str, priority: int, caller_channel: str,
                       caller_number: str, enqueued_at: float | None = None, *, steps: Steps | None = None,
                       max_wait: MaxWait | None = None, announce: AnnouncementPlan | None = None,
                       caller_name: str = "", context: Mapping[str, Any] | None = None) -> None:
        """The dialplan says this caller is in the hold loop. Repeats for a known call are ignored
        (a caller announces itself again when the engine changes). ``context`` (the IVR's flow and
        inputs) travels with the call for the screen pop."""
        if self.router.call(call_id) is not None:
            return
        now = self.clock()
        self.apply(self.router.enqueue(
            call_id, queue, now, priority=priority,
            enqueued_at=min(enqueued_at, now) if enqueued_at else None, steps=steps, max_wait=max_wait,
            attrs={**(context or {}), "caller_channel": caller_channel,
                   "caller_number": CALLER_NUMBER.sub("", caller_number)[:32],
                   "caller_name": caller_name[:MAX_CALLER_NAME]}))
        if announce is not None and self.router.call(call_id) is not None:
            self.announcements.add(call_id, announce, now)

    def announce_due(self) -> None:
        """Tell waiting callers whose announcement is due their place and estimated wait: only
        CC_ANNOUNCE is set on the channel, and the hold loop says it at its next slice (so a
        caller being bridged to an agent is never pulled away). A caller ringing an agent is
        skipped this time round."""
        for call_id, plan in self.announcements.due(self.clock()):
            call = self.router.call(call_id)
            if call is None or call.state is CallState.CONNECTED:
                self.announcements.remove(call_id)
                continue
            if call.state is not CallState.WAITING:
                continue
            position, wait = self.router.position(call), self.router.estimated_wait(call_id)
            text = announcement(plan, position, wait)
            if text is None:
                continue
            self.events.record("announced", call_id=call_id, queue=call.queue,
                               data={"position": position, "estimated_wait": wait, "said": text})
            self._tasks.spawn(self._announce(call, text), f"announce {call_id}")

    def caller_left(self, call_id: str, reason: str) -> None:
        """The caller left the hold loop for the fallback route."""
        self.apply(self.router.exit(call_id, reason, self.clock()))

    def agent_answered(self, uniqueid: str) -> None:
        leg = self.legs.get(uniqueid)
        if leg is not None:
            leg.answered = True

    def leg_bridged(self, uniqueid: str, caller_offer: str = "") -> None:
        """A channel entered a bridge: one of our agent legs, or a caller (``caller_offer``: the
        caller's CC_OFFER, the agent leg the dialplan let through to it)."""
        leg = self.legs.get(uniqueid)
        if leg is None and self.shared is not None:
            if caller_offer not in self.legs:
                # a caller of the shared queues bridged by another engine's agent
                self.apply(self.router.served_elsewhere(uniqueid, self.clock()))
            return
        if leg is None or leg.bridged:
            return
        leg.bridged = True
        if self.shared is not None:
            self._tasks.spawn(self.shared.connected(leg.offer_id), f"connected {leg.offer_id}")
        effects = self.router.offer_answered(leg.offer_id, self.clock())
        if not effects:
            # The router had already withdrawn this offer; the dialplan's offer check should have
            # stopped the bridge, so this is the narrow race where both happened at once.
            log.warning("agent %s bridged call %s on withdrawn offer %s", leg.agent_id, leg.call_id, leg.offer_id)
            self.events.record("late_answer", call_id=leg.call_id, agent_id=leg.agent_id,
                               data={"offer_id": leg.offer_id})
        self.apply(effects)

    def dial_out_ended(self, uniqueid: str, dial_status: str) -> None:
        """An agent-first dial-out's Dial() to the customer returned (cc-dialout-agent). After a
        conversation the customer hung up first; otherwise the customer never answered and the
        agent is released at once (the call's owner decides about another attempt)."""
        leg = self.legs.get(uniqueid)
        if leg is None:
            return
        outcome = dial_outcome(dial_status)
        if outcome == "answered" or leg.bridged:
            self._ended_by.setdefault(leg.call_id, "caller")
            return
        self.drop_leg(uniqueid)
        self.apply(self.router.dial_out_failed(leg.offer_id, outcome, self.clock()))

    def hangup_requested(self, uniqueid: str) -> None:
        """A channel asked to hang up (a SIP BYE, a Hangup action): the first of a connected
        call's two channels to ask is the side that ended it. The Hangup events themselves come
        in no reliable order (the other side is torn down by the bridge in another thread)."""
        leg = self.legs.get(uniqueid)
        if leg is not None and leg.bridged:
            self._ended_by.setdefault(leg.call_id, "agent")
        elif leg is None and (call := self.router.call(uniqueid)) is not None and not call.attrs.get("dial_out"):
            self._ended_by.setdefault(uniqueid, "caller")

    def channel_hung_up(self, uniqueid: str) -> None:
        leg = self.legs.get(uniqueid)
        now = self.clock()
        if leg is None and self.shared is not None and (seen := parse_leg_id(uniqueid)) is not None:
            if seen[2] != self.engine_tag:  # another engine's offer ended: its call may come back
                # the router's own retry timer for the call, brought forward
                self._arm(StartTimer(f"elsewhere:{seen[0]}", now + FOREIGN_RELEASE_DELAY))
            return
        if leg is None:
            # the caller's own channel (its uniqueid is the call id): the end of the call, whatever
            # stage it was in; unknown channels are ignored by the router. A caller who chose to be
            # called back hangs up on purpose: the call stays, to be dialled out.
            self.announcements.remove(uniqueid)
            call = self.router.call(uniqueid)
            if call is not None and call.attrs.get("dial_out"):
                return
            self.apply(self.router.call_ended(uniqueid, now, by=self._ended_by.pop(uniqueid, "caller")))
            return
        if not leg.answered:
            if leg.uncertain:  # no OriginateResponse will come for it: why it ended is unknown
                self.drop_leg(uniqueid)
                self.apply(self.router.offer_lost(leg.offer_id, now))
            return  # otherwise never picked up: _ring removes it once OriginateResponse says why
        self.drop_leg(uniqueid)
        if leg.bridged:
            by = self._ended_by.pop(leg.call_id, "agent")
            effects = self.router.call_ended(leg.call_id, now, by=by)
            if not effects and leg.adopted and not leg.routed:
                # adopted while its agent was not free to the router: the end is still logged
                talk = {"talk": now - leg.answered_at} if leg.answered_at is not None else {}
                self.events.record("ended", call_id=leg.call_id, agent_id=leg.agent_id,
                                   data={**talk, "by": by, "resync": True})
            self.apply(effects)
        else:
            # picked up, then gone before the bridge: the agent did not take the call
            self.apply(self.router.offer_failed(leg.offer_id, "ring-no-answer", now))

    # ------------------------------------------------------------------ effects
    async def _ring(self, offer: Offer) -> None:
        call = self.router.call(offer.call_id)
        channel_id = self._leg_id(offer.offer_id)
        if call is None:
            self.drop_leg(channel_id)
            return
        if self.shared is not None and not await self._claim(offer, channel_id):
            return
        caller_channel = call.attrs.get("caller_channel", "")
        number = call.attrs.get("caller_number") or "anonymous"
        dial_out = call.attrs.get("dial_out")
        try:
            # while AMI is down the offer waits (as long as it would ring) rather than fail at once:
            # failing would offer the call straight back, again and again, until the link returns
            await self.ami.wait_connected(offer.ring_timeout)
            current = self.router.call(offer.call_id)
            if current is None or current.offer_id != offer.offer_id:
                self.drop_leg(channel_id)  # withdrawn or given up while the link was down
                return
            if dial_out:
                # agent first: once the agent answers, cc-dialout-agent dials the customer
                label = dial_out.get("label") or offer.queue
                result = await self.ami.originate_to_context(
                    channel=f"PJSIP/agent{offer.agent_id}", context="cc-dialout-agent", exten="s",
                    ring_timeout=offer.ring_timeout, channel_id=channel_id,
                    caller_id=f'"{label}" <{dial_out["number"]}>',
                    variables={"CC_CALLID": offer.call_id, "CC_AGENT": offer.agent_id,
                               "CC_DIAL_NUMBER": dial_out["number"], "CC_DIAL_RING": str(int(dial_out["ring"])),
                               "CC_DIAL_CALLERID": dial_out.get("caller_id") or dial_out["number"]},
                )
            else:
                # The caller's channel carries its current offer; the agent leg bridges only if it
                # still matches (see cc-agent-connect). Sent before the Originate on the same connection.
                await self.ami.set_channel_var(caller_channel, "CC_OFFER", channel_id)
                result = await self.ami.originate_to_context(
                    channel=f"PJSIP/agent{offer.agent_id}", context="cc-agent-connect", exten="s",
                    ring_timeout=offer.ring_timeout, channel_id=channel_id,
                    caller_id=f'"{offer.queue}" <{number}>',
                    variables={"CC_CALLID": offer.call_id, "CC_AGENT": offer.agent_id, "CC_OFFER": channel_id,
                               "CC_CALLER_CHANNEL": caller_channel},
                )
            reason = None if result.answered else FAILURE_REASONS.get(result.reason, "unreachable")
        except AmiConnectionLost as exc:
            # Sent, maybe carried out (the phone may ring): never resent, never hung up blind. The
            # resync after the next login finds the leg (still ringing, answered, or not there).
            log.warning("offer %s to agent %s: %s; the resync decides", offer.offer_id, offer.agent_id, exc)
            return
        except AmiNotConnected as exc:
            # nothing was sent: the offer never rang, which is not the agent's fault
            log.warning("offer %s to agent %s not sent: %s", offer.offer_id, offer.agent_id, exc)
            leg = self.drop_leg(channel_id)
            if leg is not None and not leg.answered:
                self.apply(self.router.offer_lost(offer.offer_id, self.clock()))
            return
        except (AmiError, TimeoutError, ConnectionError, ValueError) as exc:
            if (leg := self.legs.get(channel_id)) is not None and leg.uncertain:
                return  # a resync took this leg over: its own events decide

            log.warning("offer %s to agent %s failed: %s", offer.offer_id, offer.agent_id, exc)
            await self._hangup_leg(channel_id)
            reason = "unreachable"
        leg = self.legs.get(channel_id)
        if reason is not None and leg is not None and not leg.answered:
            self.drop_leg(channel_id)
            self.apply(self.router.offer_failed(offer.offer_id, reason, self.clock()))

    async def _claim(self, offer: Offer, channel_id: str) -> bool:
        """Claim the offer in the shared store before anything rings. False: it is not to ring
        (another engine holds the call or the agent, or the router withdrew it meanwhile)."""
        assert self.shared is not None
        outcome = await self.shared.claim(offer.offer_id, offer.call_id, offer.agent_id)
        now = self.clock()
        current = self.router.call(offer.call_id)
        if current is None or current.offer_id != offer.offer_id:
            self.drop_leg(channel_id)  # withdrawn while the claim was made (a claim won goes back)
            return False
        if outcome in (CALL_TAKEN, AGENT_TAKEN):
            self.drop_leg(channel_id)  # nothing held in Redis to give back: only the leg and held news go
            log.debug("offer %s not made: %s", offer.offer_id, outcome)
            if outcome == CALL_TAKEN:
                self.apply(self.router.offer_claimed_elsewhere(offer.offer_id, now))
            else:
                # The agent is on another engine's call (logged in on both: the registry refuses
                # that, but a partition may let it through). Paused, visibly, rather than
                # offered again and again; the call goes back to its place.
                self.apply(self.router.pause(offer.agent_id, "busy-elsewhere", now))
            return False
        for effect in self._held_offered.pop(offer.offer_id, []):
            if isinstance(effect, Event):
                self._record(effect)
            self._tell_observers(effect)
        return True

    async def _withdraw(self, cancel: CancelOffer) -> None:
        channel_id = self._leg_id(cancel.offer_id)
        call = self.router.call(cancel.call_id)
        if call is not None and not call.attrs.get("dial_out"):  # the caller is still here (pause/logout while ringing): void the offer
            try:
                await self.ami.set_channel_var(call.attrs.get("caller_channel", ""), "CC_OFFER", "")
            except (AmiError, TimeoutError, ConnectionError) as exc:
                log.info("could not void offer %s on the caller: %s", cancel.offer_id, exc)
        await self._hangup_leg(channel_id)
        self._release(cancel.offer_id)

    async def _divert(self, divert: Divert) -> None:
        """Send the caller from the hold loop to cc-divert (voicemail, fallback), telling the
        dialplan which queue it leaves (it may have overflowed since the IVR set CC_QUEUE)."""
        channel = divert.attrs.get("caller_channel", "")
        if self.shared is not None and not await self.shared.once(f"divert:{divert.call_id}"):
            return  # another engine sharing the queue sends this caller on
        try:
            await self.ami.set_channel_var(channel, "CC_QUEUE", divert.queue)
            await self.ami.redirect(channel, "cc-divert", divert.destination)
        except (AmiError, TimeoutError, ConnectionError, ValueError) as exc:
            # The caller stays in the hold loop, whose own max_hold check still moves it on.
            log.warning("could not divert call %s to %s: %s", divert.call_id, divert.destination, exc)
            self.events.record("divert_failed", call_id=divert.call_id, queue=divert.queue,
                               data={"destination": divert.destination, "error": str(exc)[:200]})

    async def _announce(self, call: Call, text: str) -> None:
        try:
            await self.ami.set_channel_var(call.attrs.get("caller_channel", ""), "CC_ANNOUNCE", text)
        except (AmiError, TimeoutError, ConnectionError) as exc:
            log.info("announcement for call %s not delivered: %s", call.call_id, exc)  # the next one may be

    async def _hangup_leg(self, channel_id: str) -> None:
        try:
            await self.ami.hangup(channel_id)  # AMI Hangup accepts a uniqueid as well as a name
        except (AmiError, TimeoutError, ConnectionError) as exc:
            # Not created yet or already gone; a late answer is then stopped by the offer check.
            log.info("agent leg %s not hung up: %s", channel_id, exc)

    def _arm(self, timer: StartTimer) -> None:
        old = self._timers.pop(timer.key, None)
        if old is not None:
            old.cancel()
        delay = max(0.0, timer.at - self.clock())
        self._timers[timer.key] = asyncio.get_running_loop().call_later(delay, self._fire, timer.key)

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.apply(self.router.timer_fired(key, self.clock()))

    def resync(self, plan: ResyncPlan, now: float, answered_at: dict[str, float]) -> None:
        """Carry out a resync plan (see acd.resync) for everything but the waiting callers, which
        the engine adopts through its usual path. ``answered_at``: call id -> when the event log
        says it was answered, for calls found bridged."""
        for seen in plan.answered_in_gap:
            leg = self._leg_for(seen)
            leg.answered = leg.bridged = True
            self.apply(self.router.offer_answered(seen.offer_id, now))
        for seen in plan.still_ringing:
            self._leg_for(seen).uncertain = True
        for offer_id in plan.lost_offers:
            self.drop_leg(self._leg_id(offer_id))
            self.apply(self.router.offer_lost(offer_id, now))
        for call_id in plan.gone_calls:
            call = self.router.call(call_id)
            if call is None:
                continue
            self.announcements.remove(call_id)
            if call.state is CallState.CONNECTED:
                for uniqueid in [u for u, leg in self.legs.items() if leg.call_id == call_id]:
                    self.drop_leg(uniqueid)
                self.apply(self.router.call_ended(call_id, now, by="unknown"))
            else:
                self.apply(self.router.exit(call_id, "resync:absent", now))
        for uniqueid in plan.stray_legs:
            self._tasks.spawn(self._hangup_leg(uniqueid), f"stray leg {uniqueid}")
        for seen in plan.adopt_connected:
            self._adopt_connected(seen, now, answered_at.get(seen.call_id))

    def _leg_for(self, seen: AgentLegSeen) -> AgentLeg:
        return self.legs.setdefault(seen.uniqueid, AgentLeg(seen.offer_id, seen.call_id, seen.agent_id))

    def _adopt_connected(self, seen: AgentLegSeen, now: float, answered_at: float | None) -> None:
        leg = AgentLeg(seen.offer_id, seen.call_id, seen.agent_id, answered=True, bridged=True, adopted=True,
                       answered_at=answered_at, queue=seen.queue)
        self.legs[seen.uniqueid] = leg
        if not self._route_adopted(leg, now):
            # the agent is not (yet) free to this router: the call is still followed to its end
            self.events.record("resync_adopted", call_id=seen.call_id, queue=seen.queue or None,
                               agent_id=seen.agent_id, data={"stage": "connected", "routed": False})

    def _route_adopted(self, leg: AgentLeg, now: float) -> bool:
        try:
            self.apply(self.router.adopt_connected(leg.call_id, leg.queue, leg.agent_id, now,
                                                   answered_at=leg.answered_at,
                                                   offers_made=int(leg.offer_id.rpartition("/")[2] or 0)))
            leg.routed = True
            return True
        except RoutingError as exc:
            log.info("call %s bridged to agent %s followed outside the router: %s", leg.call_id, leg.agent_id, exc)
            return False

    async def withdraw_ringing(self) -> int:
        """The engine is stopping: stop ringing agents' phones, so that no call is connected while
        no engine watches; the callers stay in the hold loop for the next engine to re-adopt.
        Returns how many phones were ringing."""
        ringing = [channel_id for channel_id, leg in self.legs.items() if not leg.answered]
        await asyncio.gather(*(self._hangup_leg(channel_id) for channel_id in ringing))
        return len(ringing)

    async def close(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        await self._tasks.close()

