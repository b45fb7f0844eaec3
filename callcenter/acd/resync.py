"""Resync: what Asterisk holds right now (one CoreShowChannels) against what the router believes,
and the plan that makes the two agree. Pure: no I/O; the engine reads the channels and carries
the plan out.

Why it exists: while the engine is away (restarted, killed, or its AMI link down) Asterisk keeps
the calls. Callers go on waiting in the hold loop, agents go on talking, and some calls end. The
events of that gap are lost, so after every login the engine reads the live channels and
reconciles: callers in the hold loop it does not know are adopted with their own enqueue time,
calls bridged to an agent are followed to their end, offers whose agent leg is gone are given
up, and calls it believed live that Asterisk no longer has are closed, marked as resynced. Nothing
is invented: what happened in the gap and cannot be read back is reported as unknown.

Which channel is what, from the engine's own channel variables (manager.conf ``channelvars``):
- a caller: its uniqueid is its call id (``CC_CALLID`` is set from ``UNIQUEID`` in cc-ivr), and
  ``CC_QUEUE`` names its queue; it waits while it is in one of the hold loop's contexts and in no
  bridge;
- an agent leg: its uniqueid is the one the shell gave the Originate (``<call id>-o<n>`` for offer
  ``<call id>/<n>``), with ``CC_CALLID`` and ``CC_AGENT`` set; it is connected once it is Up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from callcenter.acd.model import Call, CallState

# The hold loop and the subroutines it calls while the caller still waits.
HOLD_CONTEXTS = frozenset({"cc-hold", "cc-announce", "cc-callback-offer"})
CHANNEL_STATE_UP = 6
# An agent leg's uniqueid (acd.shell.leg_id): "<call id>-o<n>", then ".<engine>" when engines share queues.
LEG_ID = re.compile(r"^(?P<call>.+)-o(?P<n>\d+)(?:\.(?P<engine>[A-Za-z][A-Za-z0-9_-]*))?$")


@dataclass(frozen=True)
class LiveChannel:
    """One channel of a CoreShowChannels answer, as much of it as the resync uses."""
    uniqueid: str
    channel: str
    context: str
    state: int
    bridge_id: str
    variables: Mapping[str, str]
    caller_number: str = ""
    caller_name: str = ""

    @classmethod
    def from_event(cls, event: Mapping[str, str], variables: Mapping[str, str]) -> LiveChannel:
        state = str(event.get("ChannelState", "") or "")
        return cls(uniqueid=event.get("Uniqueid", ""), channel=event.get("Channel", ""),
                   context=event.get("Context", ""), state=int(state) if state.isdigit() else -1,
                   bridge_id=event.get("BridgeId", "") or "", variables=dict(variables),
                   caller_number=_known(event.get("CallerIDNum", "")), caller_name=_known(event.get("CallerIDName", "")))

    def var(self, name: str) -> str:
        return (self.variables.get(name) or "").strip()


def _known(value: str) -> str:
    return "" if value in ("", "<unknown>") else value


@dataclass(frozen=True)
class WaitingCaller:
    call_id: str
    queue: str
    priority: int
    enqueued_at: float | None
    channel: str
    caller_number: str
    caller_name: str


@dataclass(frozen=True)
class AgentLegSeen:
    uniqueid: str
    offer_id: str
    call_id: str
    agent_id: str
    connected: bool
    queue: str  # the caller's CC_QUEUE, when the caller's channel is there too


@dataclass
class ResyncPlan:
    adopt_waiting: list[WaitingCaller] = field(default_factory=list)   # unknown callers in the hold loop
    adopt_connected: list[AgentLegSeen] = field(default_factory=list)  # bridged calls the router does not have
    answered_in_gap: list[AgentLegSeen] = field(default_factory=list)  # our ringing offer was answered meanwhile
    still_ringing: list[AgentLegSeen] = field(default_factory=list)    # our offer still rings: keep watching
    lost_offers: list[str] = field(default_factory=list)               # our offer's leg is gone: give it up
    stray_legs: list[str] = field(default_factory=list)                # ringing legs nobody offers: hang up
    gone_calls: list[str] = field(default_factory=list)                # calls Asterisk no longer has
    kept: int = 0                                                       # calls that agree already

    def summary(self) -> dict[str, int]:
        return {"adopted_waiting": len(self.adopt_waiting), "adopted_connected": len(self.adopt_connected),
                "answered_in_gap": len(self.answered_in_gap), "still_ringing": len(self.still_ringing),
                "lost_offers": len(self.lost_offers), "stray_legs": len(self.stray_legs),
                "gone_calls": len(self.gone_calls), "kept": self.kept}


def parse_variables(event: Mapping[str, object]) -> dict[str, str]:
    """ChanVariable headers (``NAME=value``; several when the header repeats) as a dict."""
    raw = event.get("ChanVariable")
    values = raw if isinstance(raw, list) else [raw] if raw else []
    found: dict[str, str] = {}
    for item in values:
        name, sep, value = str(item).partition("=")
        if sep:
            found[name.strip()] = value
    return found


def waiting_caller(channel: LiveChannel) -> WaitingCaller | None:
    call_id, queue = channel.var("CC_CALLID"), channel.var("CC_QUEUE")
    if not call_id or call_id != channel.uniqueid or not queue:
        return None
    if channel.context not in HOLD_CONTEXTS or channel.bridge_id:
        return None
    priority = channel.var("CC_PRIORITY")
    enqueued = channel.var("CC_ENQUEUED_AT")
    try:
        enqueued_at = float(enqueued) if enqueued else None
    except ValueError:
        enqueued_at = None
    return WaitingCaller(call_id, queue, int(priority) if priority.lstrip("-").isdigit() else 0, enqueued_at,
                         channel.channel, channel.caller_number, channel.caller_name)


def parse_leg_id(uniqueid: str) -> tuple[str, str, str] | None:
    """(call id, offer id, engine name or "") of an agent leg's uniqueid; None for any other channel."""
    match = LEG_ID.match(uniqueid)
    if match is None:
        return None
    return match["call"], f"{match['call']}/{match['n']}", match["engine"] or ""


def agent_leg(channel: LiveChannel, queues_by_call: Mapping[str, str], engine: str = "") -> AgentLegSeen | None:
    """The agent leg ``channel`` is, if it is one of this engine's (``engine``: its name when
    engines share queues). Another engine's legs are that engine's business."""
    match = LEG_ID.match(channel.uniqueid)
    call_id, agent_id = channel.var("CC_CALLID"), channel.var("CC_AGENT")
    if match is None or not agent_id or call_id != match["call"] or (match["engine"] or "") != engine:
        return None
    return AgentLegSeen(channel.uniqueid, f"{match['call']}/{match['n']}", call_id, agent_id,
                        connected=channel.state == CHANNEL_STATE_UP, queue=queues_by_call.get(call_id, ""))


def plan_resync(channels: Iterable[LiveChannel], calls: Iterable[Call], watched_legs: Iterable[str],
                *, gone_since_read: Iterable[str] = (), engine: str = "") -> ResyncPlan:
    """Compare the live channels with the router's calls (and the agent legs the shell watches).
    ``gone_since_read`` are uniqueids hung up after the channels were read: they are not adopted."""
    gone = set(gone_since_read)
    live = [c for c in channels if c.uniqueid not in gone]
    callers = {c.uniqueid: c for c in live if c.var("CC_CALLID") == c.uniqueid}
    queues_by_call = {uid: c.var("CC_QUEUE") for uid, c in callers.items()}
    legs = {leg.uniqueid: leg for c in live if (leg := agent_leg(c, queues_by_call, engine)) is not None}
    legs_by_offer = {leg.offer_id: leg for leg in legs.values()}
    watched = set(watched_legs)
    plan = ResyncPlan()
    known: dict[str, Call] = {}
    for call in calls:
        known[call.call_id] = call
        inbound = not call.attrs.get("dial_out")
        if call.state is CallState.RINGING:
            leg = legs_by_offer.get(call.offer_id or "")
            if inbound and call.call_id not in callers:
                plan.gone_calls.append(call.call_id)  # the caller left: withdraw, do not offer again
            elif leg is None:
                plan.lost_offers.append(call.offer_id or "")
            elif leg.connected:
                plan.answered_in_gap.append(leg)
            else:
                plan.still_ringing.append(leg)
            continue
        if call.state is CallState.CONNECTED:
            if any(leg.call_id == call.call_id and leg.connected for leg in legs.values()):
                plan.kept += 1
            else:
                plan.gone_calls.append(call.call_id)
            continue
        # waiting: an inbound caller must still be in Asterisk; a dial-out has no channel until it rings
        if not inbound or call.call_id in callers:
            plan.kept += 1
        else:
            plan.gone_calls.append(call.call_id)
    for caller in callers.values():
        if caller.uniqueid not in known and (waiting := waiting_caller(caller)) is not None:
            plan.adopt_waiting.append(waiting)
    for leg in legs.values():
        call = known.get(leg.call_id)
        ours = call is not None and (call.offer_id == leg.offer_id or call.state is CallState.CONNECTED)
        if ours or (leg.uniqueid in watched and call is not None):
            continue
        if leg.connected:
            plan.adopt_connected.append(leg)
        else:
            plan.stray_legs.append(leg.uniqueid)
    return plan
