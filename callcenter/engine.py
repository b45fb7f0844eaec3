"""The engine's composition root: builds the adapters (AMI, FastAGI, event log, web API) around
the pure cores (ACD router, IVR interpreter) on one asyncio loop, and maps Asterisk's events to
the ACD. No routing or IVR logic lives here."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from callcenter.acd.announcements import AnnouncementPlan
from callcenter.acd.call_control import CallControl
from callcenter.acd.config import RoutingConfigError, RoutingPlan, load_routing
from callcenter.acd.model import AgentState, CallState, Event, MaxWait
from callcenter.acd.router import Router, RoutingError
from callcenter.acd.phones import device_agent, reachable
from callcenter.acd.resync import parse_variables
from callcenter.acd.resyncer import Resyncer
from callcenter.acd.shell import AcdShell
from callcenter.acd.steps import Steps
from callcenter.acd.transfer import with_identity
from callcenter.asterisk.ami import AmiClient
from callcenter.asterisk.fastagi import AgiChannel, FastAgiServer
from callcenter.asterisk.process import AsteriskInstance
from callcenter.callback.service import CallbackService
from callcenter.callback.store import CallbackStore
from callcenter.callback.store import create_tables as create_callback_tables
from callcenter.callback.web import CallbackApi
from callcenter.campaign.dialer import CampaignDialer
from callcenter.campaign.store import CampaignStore
from callcenter.campaign.store import create_tables as create_campaign_tables
from callcenter.campaign.web import CampaignApi
from callcenter.config import Settings
from callcenter.events.log import EventLog, read_events
from callcenter.ivr.agi_runner import run_flow
from callcenter.crm.lookup import CustomerDirectory
from callcenter.crm.schema import migrate as migrate_crm
from callcenter.crm.store import CrmStore
from callcenter.desktop.service import DesktopService
from callcenter.desktop.web import DesktopApi
from callcenter.desktop.webhook import PopWebhook
from callcenter.ivr.flow import Flow, QueueCallbackOffer
from callcenter.ivr.interpreter import Lookup, LookupStatus
from callcenter.ivr.library import FlowLibrary
from callcenter.kpi.web import KpiApi
from callcenter.runtime import BackgroundTasks
from callcenter.shared.link import SharedLink
from callcenter.storage import make_engine
from callcenter.web.api import ApiError, ApiRoot, JsonApi, TextReply
from callcenter import __version__
from callcenter.audit import AuditLog
from callcenter.ops.health import HealthCheck
from callcenter.ops.metrics import MetricsSource
from callcenter.ops.metrics import render as render_metrics
from callcenter.ops.openapi import build_openapi
from callcenter.qa.forms import load_forms
from callcenter.qa.store import QaStore
from callcenter.qa.store import create_tables as create_qa_tables
from callcenter.qa.web import QaApi
from callcenter.recording.follow import RecordingFollower
from callcenter.recording.service import RecordingService
from callcenter.recording.store import RecordingStore
from callcenter.recording.store import create_tables as create_recording_tables
from callcenter.recording.web import RecordingApi
from callcenter.supervisor.service import SupervisorService
from callcenter.supervisor.wallboard import build_board
from callcenter.supervisor.web import SupervisorApi
from callcenter.web.auth import FLOOR, Credentials, Role, Sessions, StaffUsers, api_token
from callcenter.web.staff import StaffApi, WebIdentities

log = logging.getLogger(__name__)

AGENT_VERBS = ("login", "logout", "pause", "unpause")
# How often due announcements are looked for; the hold loop then says them at its next slice.
ANNOUNCE_TICK_SECONDS = 1.0
# Who handled recently ended calls, for the post-call survey that may follow (bounded).
HANDLED_KEPT = 10_000
# event kinds counted since the engine started, for /metrics (Prometheus counters)
COUNTED_KINDS = {"offered": "offers", "ring_no_answer": "rona", "answered": "answered", "abandoned": "abandoned"}
# Router events that put a caller in a queue (or another queue), and those that take it out, for
# the shared registry of waiting calls.
WAITING_KINDS = frozenset({"queued", "moved", "overflowed", "priority_changed"})
OTHER_ENGINE = "engine:"  # ``by`` of a call change another engine's supervisor made
LEFT_QUEUE_KINDS = frozenset({"answered", "abandoned", "exited", "served_elsewhere", "ended", "dial_out_failed",
                              "resync_adopted"})


class UnknownAgent(LookupError):
    """The agent id is not one of settings.agents."""


@dataclass(frozen=True)
class QueueTerms:
    """How a caller is to be queued when it reaches the hold loop: the IVR queue node's own rules,
    or a transfer's; and the IVR's flow and inputs, for the screen pop."""

    steps: Steps | None = None
    max_wait: MaxWait | None = None
    announce: AnnouncementPlan | None = None
    context: dict = field(default_factory=dict)
    callback: QueueCallbackOffer | None = None


def local_day(now: float) -> int:
    """Today's figures (calls, talk time) restart at local midnight."""
    return datetime.fromtimestamp(now).toordinal()


class Engine:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.started_at = time.time()
        # Waiting callers compare this with what they saw when they entered the hold loop and
        # announce themselves again when it changes (see dialplan cc-hold).
        self.engine_id = f"{os.getpid()}-{int(self.started_at * 1000)}"
        self.loop_ticks = 0
        self.db = make_engine(settings.db_url)
        self.events = EventLog(self.db)
        self.routing: RoutingPlan = load_routing(settings.routing_file)
        self.flows = FlowLibrary(settings.flows_dir, known_queues=lambda: set(self.routing.queue_names))
        self.router = Router(self.routing.queues, ring_timeout=settings.ring_timeout,
                             wrapup_seconds=settings.wrapup_seconds,
                             max_no_answers=self.routing.max_no_answers,
                             priority_aging_seconds=self.routing.priority_aging_seconds,
                             day_of=local_day)
        self.ami = AmiClient(settings.ami_host, settings.ami_port, settings.ami_user, settings.ami_secret,
                             action_timeout=settings.ami_action_timeout, on_event=self._on_ami_event,
                             on_login=self._on_ami_login, ping_interval=settings.ami_ping_interval,
                             reconnect_max=settings.ami_reconnect_max)
        self.acd = AcdShell(self.router, self.ami, self.events)
        # after every AMI login: what Asterisk holds now, reconciled with what the router believes
        self.resyncer = Resyncer(self.ami, self.acd, self.events, self.db, caller_waiting=self._caller_waiting,
                                 boot_timeout=settings.resync_boot_timeout, phone_state=self._phone_state)
        # agent id -> whether Asterisk last said the agent's phone answers (absent: it has not said)
        self._phones_reachable: dict[str, bool] = {}
        self.agi = FastAgiServer(header_timeout=settings.agi_header_timeout,
                                 max_header_bytes=settings.agi_header_max_bytes)
        self.agi.route("ivr", self._ivr)
        self.agi.route("survey", self._survey)
        self.recordings_dir = AsteriskInstance(settings).recordings_dir
        self._tasks = BackgroundTasks()
        self._heartbeat_task: asyncio.Task | None = None
        self._flows_task: asyncio.Task | None = None
        # How an IVR queue node (or a transfer) queued a caller, until the caller reaches the hold
        # loop. Not kept across an engine restart: a re-adopted caller gets its queue's own rules,
        # no announcements and no IVR context in its screen pop.
        self._queue_terms: dict[str, QueueTerms] = {}
        self.calls = CallControl(self.router, self.acd, self.ami, keep_terms=self._keep_transfer_terms)
        self.api_token = api_token(settings.data_dir)
        self.credentials = Credentials(self.db)
        self.sessions = Sessions(settings.session_idle_minutes * 60)
        webhook = (PopWebhook(settings.pop_webhook_url, settings.pop_webhook_secret, settings.pop_webhook_timeout)
                   if settings.pop_webhook_url else None)
        self.desktop = DesktopService(self.router, self.events, self.db, dispositions=settings.dispositions,
                                      pause_reasons=settings.pause_reasons, webhook=webhook,
                                      held=lambda call_id: call_id in self.calls.held,
                                      recording_paused=lambda call_id: call_id in self.calls.recording_paused)
        self.acd.observers.append(self.desktop.on_effect)
        self.calls.on_change = self.desktop.refresh
        self._desk_api = DesktopApi(known_agents=lambda: set(self.settings.agents), credentials=self.credentials,
                                    sessions=self.sessions, api_token=self.api_token, desktop=self.desktop,
                                    calls=self.calls, control_agent=self.control_agent)
        self.kpis = KpiApi(self.db, settings, queue_sl_seconds=self._queue_sl_seconds)
        # supervisors, QA and admins; the audit log of what they do
        self.identities = WebIdentities(self.api_token, self.sessions)
        self.staff_users = StaffUsers(self.db)
        self.audit = AuditLog(self.db)
        self.supervision = SupervisorService(
            router=self.router, acd=self.acd, ami=self.ami, events=self.events, audit=self.audit,
            control_agent=self.control_agent, phones=lambda: self.settings.supervisor_phones,
            known_skills=lambda: self.routing.known_skills, pause_reasons=settings.pause_reasons)
        self._supervisor_api = SupervisorApi(self.supervision, board=self.board, staff=self.identities.staff,
                                             settings=settings.wallboard, audit=self.audit)
        self.acd.observers.append(self._supervisor_api.floor_changed)
        create_recording_tables(self.db)
        self.recordings = RecordingService(RecordingStore(self.db), self.recordings_dir, settings.recordings,
                                           self.audit)
        self._recording_follower = RecordingFollower(self.recordings, self.router)
        self.acd.observers.append(self._recording_follower.on_effect)
        self.events.listeners.append(self._recording_follower.on_event)
        create_qa_tables(self.db)
        qa_forms = load_forms(settings.qa_forms_dir)  # a bad form stops the start, with file:line
        self._qa_api = QaApi(QaStore(self.db), lambda: qa_forms, self._recorded_call, self._teams, self.audit)
        self.counters = dict.fromkeys(COUNTED_KINDS.values(), 0)
        self.events.listeners.append(self._count)
        create_callback_tables(self.db)
        create_campaign_tables(self.db)
        self.callbacks = CallbackService(self.router, self.acd, self.ami, self.events, CallbackStore(self.db),
                                         settings.callbacks, caller_id=settings.outbound_caller_id)
        self.campaigns = CampaignStore(self.db)
        self.dialer = CampaignDialer(self.campaigns, self.router, self.acd, self.ami, self.events,
                                     expect_caller=self._expect_campaign_caller,
                                     tick_seconds=settings.campaign_tick_seconds)
        self.acd.observers += [self.callbacks.on_effect, self.dialer.on_effect, self._note_handled]
        self.events.listeners.append(self.dialer.disposition_saved)
        self._callback_api = CallbackApi(self.callbacks, self.callbacks.store, settings.callbacks,
                                         lambda: self.routing.queue_names)
        self._handled: OrderedDict[str, tuple[str | None, str | None]] = OrderedDict()
        self._dialer_task: asyncio.Task | None = None
        self._announce_task: asyncio.Task | None = None
        self._wallboard_task: asyncio.Task | None = None
        self.crm: CustomerDirectory | None = None  # once the CRM tables are migrated (start)
        # Engines with the same Redis serve the same queues: offers are claimed there first.
        self.shared: SharedLink | None = None
        if settings.redis_url:
            self.shared = SharedLink(url=settings.redis_url, prefix=settings.redis_prefix,
                                     engine_name=settings.engine_name, ring_timeout=settings.ring_timeout,
                                     db=self.db, events=self.events, control_agent=self.control_agent,
                                     change_call=self._change_call_from_elsewhere)
            self.acd.share(self.shared.offers)
            self.acd.observers.append(self._share_state)
        self._stopping = False
        self._web_port = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        # today so far first, then every new event as it is recorded
        seeded = await asyncio.to_thread(self.kpis.seed)
        self.events.listeners.append(self.kpis.realtime.apply)
        log.info("live figures seeded from %d events", seeded)
        self.events.start()
        await asyncio.to_thread(migrate_crm, self.db)  # before any call can look a customer up
        self.crm = CustomerDirectory(CrmStore(self.db, region=self.settings.crm_region),
                                     self.settings.crm_lookup_timeout)
        self.desktop.crm = self.crm
        await self.agi.start(self.settings.agi_host, self.settings.agi_port)
        self._start_web()
        loop = asyncio.get_running_loop()
        if self.shared is not None:
            await self.shared.start()
        await self.ami.connect()
        self._heartbeat_task = loop.create_task(self._heartbeat(), name="heartbeat")
        self._flows_task = loop.create_task(self._watch_flows(), name="watch flows")
        self._announce_task = loop.create_task(self._announce_positions(), name="announcements")
        loop.add_signal_handler(signal.SIGHUP, self._reload_on_signal)  # the usual "re-read your config"
        self.events.record("engine_started", data={"queues": self.routing.queue_names})
        restored = await self.callbacks.restore()
        if restored:
            log.info("%d callback(s) back in line", restored)
        self._dialer_task = loop.create_task(self.dialer.run(), name="campaign dialer")
        self._wallboard_task = loop.create_task(self._supervisor_api.run(), name="wallboard")
        log.info("engine up: AGI %s:%d, web http://%s:%d/api", self.settings.agi_host, self.settings.agi_port,
                 self.settings.web_host, self.settings.web_port)

    async def stop(self) -> None:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        # From here on Asterisk's events change nothing: no offer is made while stopping.
        self._stopping = True
        for task in (self._heartbeat_task, self._flows_task, self._announce_task, self._dialer_task,
                     self._wallboard_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        withdrawn = await self.acd.withdraw_ringing()
        if withdrawn:
            log.info("stopped ringing %d agent phone(s); their callers wait for the next engine", withdrawn)
        if self._web_port is not None:
            stopped = self._web_port.stopListening()
            self._web_port = None
            if stopped is not None:  # a Twisted Deferred: bridge it into asyncio
                await stopped.asFuture(asyncio.get_running_loop())
        self._desk_api.close()
        self._supervisor_api.close()
        await self.supervision.close()
        await self._recording_follower.close()
        await self.agi.close()
        await self.calls.close()
        await self.dialer.close()
        await self.callbacks.close()
        await self.desktop.close()
        await self.acd.close()
        await self._tasks.close()
        if self.shared is not None:
            await self.shared.stop()
        self.ami.close()
        self.events.record("engine_stopped")
        await self.events.close()
        self.db.dispose()

    def _on_ami_login(self) -> None:
        if self._stopping:
            return
        # first beat and our id at once, on every (re)login: callers waiting in the hold loop
        # re-announce themselves to an engine they have not seen. The resync does not wait for
        # them: it reads every channel, callers and agents alike, and reconciles at once.
        self._tasks.spawn(self._announce(), "announce engine")
        self._tasks.spawn(self.resyncer.run(), "resync")

    async def _announce(self) -> None:
        await self._beat()
        await self.ami.set_global("CC_ENGINE_ID", self.engine_id)

    async def _beat(self) -> None:
        await self.ami.set_global("CC_HEARTBEAT", str(int(time.time())))

    async def _heartbeat(self) -> None:
        """Tell the dialplan the engine is alive, and count loop ticks (a frozen loop stops both)."""
        while True:
            self.loop_ticks += 1
            if self.ami.connected:
                try:
                    await self._beat()
                except Exception as exc:  # a missed beat is logged, the next one retries
                    log.warning("heartbeat not delivered: %s", exc)
            await asyncio.sleep(self.settings.heartbeat_interval)

    # ------------------------------------------------------------------ Asterisk -> ACD
    def _on_ami_event(self, event) -> None:
        """Runs synchronously, in the order Asterisk sent the events (the shell relies on it).
        Who a call is comes from the event's own channel headers (Uniqueid, Channel,
        CallerIDNum), never from a UserEvent body, which a caller ID could forge."""
        if self._stopping:
            return
        name = event.get("Event", "")
        uniqueid = event.get("Uniqueid", "")
        if name == "Hangup":
            self.resyncer.channel_gone(uniqueid)
            self._queue_terms.pop(uniqueid, None)
            self.calls.channel_gone(uniqueid)
            self.acd.channel_hung_up(uniqueid)
            self.dialer.channel_gone(uniqueid, event.get("Cause", ""))
            self.supervision.channel_gone(uniqueid)
        elif name == "HangupRequest":
            self.acd.hangup_requested(uniqueid)
        elif name == "BridgeEnter":
            self.acd.leg_bridged(uniqueid, parse_variables(event).get("CC_OFFER", "").strip())
        elif name == "DeviceStateChange":
            self._phone_state(event.get("Device", ""), event.get("State", ""))
        elif name == "ChanSpyStart":
            self.supervision.spy_started(event.get("SpyerUniqueid", ""), event.get("SpyeeChannel", ""))
        elif name == "UserEvent":
            self._on_user_event(event.get("UserEvent", ""), uniqueid, event)

    def _on_user_event(self, kind: str, uniqueid: str, event) -> None:
        if kind == "CCHoldEnter":
            self._caller_waiting(uniqueid, event)
        elif kind == "CCAgentAnswered":
            self.acd.agent_answered(uniqueid)
            leg = self.acd.legs.get(uniqueid)
            call = self.router.call(leg.call_id) if leg is not None else None
            if call is not None and call.attrs.get("dial_out"):  # agent first: the customer is dialled now
                self.callbacks.dial_started(call.call_id, leg.agent_id)
        elif kind == "CCDialOutEnd":
            self.acd.dial_out_ended(uniqueid, event.get("DialStatus", ""))
        elif kind == "CCCallbackAccepted":  # digits only (FILTER in the dialplan), from the caller's channel
            self._tasks.spawn(self._accept_callback(uniqueid, event.get("Number", "")), f"callback {uniqueid}")
        elif kind == "CCCallbackDeclined":
            self.callbacks.declined(uniqueid)
        elif kind == "CCAnnounced":  # the hold loop has said what announce_due asked for
            self.acd.record("announce_played", call_id=uniqueid, seen_by_all=True,
                            data={"position": event.get("Position", ""), "minutes": event.get("Minutes", "")})
        elif kind == "CCTransferFailed":
            self.acd.record("transfer_failed", call_id=uniqueid, data={"dial_status": event.get("DialStatus", "")},
                            seen_by_all=True)
        elif kind == "CCStaleAnswer":
            self.acd.record("stale_answer", call_id=event.get("CallID"), agent_id=event.get("Agent"), seen_by_all=True)
        elif kind == "CCFallback":
            reason = event.get("Reason", "")
            self.acd.record("fallback", call_id=uniqueid, data={"reason": reason}, seen_by_all=True)
            self.acd.caller_left(uniqueid, f"fallback:{reason}")

    async def _accept_callback(self, call_id: str, number: str) -> None:
        if self.shared is not None and not await self.shared.offers.once(f"callback:{call_id}", ttl=3600):
            return  # another engine sharing the queue took the request
        await self.callbacks.accept_from_hold(call_id, number)

    def _phone_state(self, device: str, state: str) -> None:
        """An agent's phone stopped (or started again) answering Asterisk's checks."""
        agent_id, now_reachable = device_agent(device), reachable(state)
        if agent_id is None or now_reachable is None:
            return
        if self._phones_reachable.get(agent_id) != now_reachable:
            log.info("agent %s's phone is %s (%s)", agent_id, "reachable" if now_reachable else "not reachable", state)
        self._phones_reachable[agent_id] = now_reachable
        self.acd.apply(self.router.phone_reachability(agent_id, now_reachable, time.time()))

    def _caller_waiting(self, call_id: str, event) -> None:
        channel = event.get("Channel", "")
        terms = self._queue_terms.pop(call_id, None) or QueueTerms()
        try:
            priority = int(event.get("CCPriority") or 0)
            enqueued_at = float(event.get("EnqueuedAt") or 0) or None
            self.acd.caller_waiting(call_id, event.get("Queue", ""), priority, channel,
                                    event.get("CallerIDNum", ""), enqueued_at,
                                    steps=terms.steps, max_wait=terms.max_wait, announce=terms.announce,
                                    caller_name=event.get("CallerIDName", ""), context=terms.context)
            if terms.callback is not None and self.router.call(call_id) is not None:
                self.callbacks.watch(call_id, terms.callback, time.time())
            self.dialer.caller_queued(call_id)
        except (RoutingError, ValueError) as exc:
            # never leave a caller in a queue nobody serves: send them to the fallback route
            log.error("call %s could not be queued (%s); sending it to the fallback route", call_id, exc)
            self.events.record("queue_refused", call_id=call_id, data={"error": str(exc)[:200]})
            self._tasks.spawn(self.ami.redirect(channel, "cc-fallback", "s"), f"redirect {call_id}")

    # ------------------------------------------------------------------ IVR flows, hot reload
    async def _watch_flows(self) -> None:
        while True:
            await asyncio.sleep(self.settings.flows_poll_seconds)
            try:
                await self.reload_flows()
            except OSError as exc:  # e.g. the directory is being replaced; the next scan retries
                log.warning("flows directory not scanned: %s", exc)

    async def reload_flows(self) -> list[dict]:
        """Apply what changed in the flows directory now (the watcher does this every
        flows_poll_seconds); every change is an event: flow_loaded / flow_rejected / flow_removed."""
        changes = await asyncio.to_thread(self.flows.refresh)
        for change in changes:
            self.events.record(f"flow_{change.kind}", data=change.as_dict())
        return [change.as_dict() for change in changes]

    # ------------------------------------------------------------------ FastAGI -> IVR
    def _flow_of(self, channel: AgiChannel, default: str = "") -> tuple[str, Flow | None]:
        """The flow an AGI request names (``agi://host/<route>/<flow>``); a missing one is logged."""
        flow_name = channel.headers["agi_network_script"].strip("/").partition("/")[2] or default
        flow = self.flows.get(flow_name)
        if flow is None:
            log.error("no IVR flow %r (call %s)", flow_name, channel.uniqueid)
            self.events.record("ivr_missing_flow", call_id=channel.uniqueid, data={"flow": flow_name})
        return flow_name, flow

    async def _ivr(self, channel: AgiChannel) -> None:
        flow_name, flow = self._flow_of(channel, "main")
        if flow is None:
            return  # the dialplan sends a call without CC_ACTION to the fallback route
        trail: list[dict] = []
        finish = await run_flow(channel, flow, flow_name, self.events, flows=self.flows.get, lookup=self._crm_lookup,
                                trail=trail)
        if finish.action == "queue":
            # the queue node's own rules, used when the caller announces itself from the hold loop
            inputs = {name.removeprefix("CC_VAR_"): value for name, value in finish.variables.items()
                      if name.startswith("CC_VAR_")}
            self._queue_terms[channel.uniqueid] = QueueTerms(
                finish.steps, finish.max_wait,
                AnnouncementPlan(**finish.announce.model_dump()) if finish.announce else None,
                {"ivr_flow": flow_name, "ivr_variables": inputs, "ivr_trail": tuple(trail)},
                callback=finish.callback)

    async def _survey(self, channel: AgiChannel) -> None:
        """A caller whose agent hung up first, in the survey flow their queue node named. Each
        answer is logged as ``survey_answered`` against the call, its agent and its queue."""
        flow_name, flow = self._flow_of(channel)
        if flow is None:
            return  # the dialplan hangs up
        # The survey can start before the engine has seen the agent's leg hang up: the call is then
        # still connected in the router.
        call = self.router.call(channel.uniqueid)
        queue, agent_id = ((call.queue, call.agent_id) if call is not None
                           else self._handled.get(channel.uniqueid, (None, None)))
        trail: list[dict] = []
        try:
            await run_flow(channel, flow, flow_name, self.events, flows=self.flows.get, trail=trail, arrival=False)
        finally:
            for entry in trail:  # written even when the caller hangs up after the first answer
                if entry["kind"] == "ivr_survey":
                    self.events.record("survey_answered", call_id=channel.uniqueid, queue=queue, agent_id=agent_id,
                                       data={"question": entry["data"]["question"], "score": entry["data"]["score"],
                                             "flow": flow_name})

    def board(self) -> dict:
        """The wallboard as it is now."""
        now = time.time()
        return {**build_board(self.router.queues_snapshot(now), self.router.agents_snapshot(now),
                              self.kpis.realtime.snapshot(now), self.settings.wallboard, now=now, teams=self._teams()),
                "pause_reasons": list(self.settings.pause_reasons)}

    def _teams(self) -> dict[str, str]:
        return {agent_id: profile.team for agent_id, profile in self.routing.agents.items() if profile.team}

    def _recorded_call(self, call_id: str) -> dict | None:
        """Who took a recorded call, for a QA evaluation of it (blocking: called in a thread)."""
        rows, _ = self.recordings.store.search(call_id=call_id, limit=1)
        return {"agent_id": rows[0].agent_id, "queue": rows[0].queue} if rows else None

    def _queue_sl_seconds(self, queue: str) -> float | None:
        return self.router.queue_config(queue).service_level_seconds if queue in self.routing.queue_names else None

    def _count(self, row: dict) -> None:
        name = COUNTED_KINDS.get(row["kind"])
        if name is not None:
            self.counters[name] += 1

    def _share_state(self, effect) -> None:
        """Own agents' states and the waiting calls go to the shared registry (other engines
        refuse a login of an agent logged in here; every engine's API lists them all)."""
        if not isinstance(effect, Event) or self.shared is None:
            return
        if effect.kind == "agent_state" and effect.agent_id:
            agent = self.router.agent(effect.agent_id)
            self.shared.offers.agent_state(effect.agent_id, effect.data["state"], agent.queues if agent else ())
        elif effect.kind in WAITING_KINDS and effect.call_id and (call := self.router.call(effect.call_id)):
            self.shared.offers.call_waiting(call.call_id, call.queue, call.priority, call.enqueued_at)
            by = str(effect.data.get("by") or "")
            if effect.kind in ("moved", "priority_changed") and not by.startswith(OTHER_ENGINE):
                self.shared.call_changed(call.call_id, call.queue, call.priority)
        elif effect.kind in LEFT_QUEUE_KINDS and effect.call_id:
            self.shared.offers.call_left(effect.call_id)

    def _change_call_from_elsewhere(self, call_id: str, queue: str, priority: int, engine: str) -> None:
        """A supervisor on ``engine`` moved a waiting call or changed its priority: the same here
        (``by`` names that engine, so the change is not sent back)."""
        call = self.router.call(call_id)
        if call is None or call.state is not CallState.WAITING:
            return  # ringing or connected here, or not here at all: the change is that engine's business
        by, now = f"{OTHER_ENGINE}{engine}", time.time()
        if queue != call.queue:
            self.acd.apply(self.router.move_call(call_id, queue, now, by=by))
        if (call := self.router.call(call_id)) is not None and call.state is CallState.WAITING \
                and priority != call.priority:
            self.acd.apply(self.router.set_priority(call_id, priority, now, by=by))

    def _note_handled(self, effect) -> None:
        if isinstance(effect, Event) and effect.kind == "ended" and effect.call_id:
            self._handled[effect.call_id] = (effect.queue, effect.agent_id)
            while len(self._handled) > HANDLED_KEPT:
                self._handled.popitem(last=False)

    def _expect_campaign_caller(self, call_id: str, context: dict) -> None:
        """A progressive campaign's customer is being dialled: once they answer and reach the
        hold loop, they are queued with the campaign's context (screen pop, events)."""
        self._queue_terms[call_id] = QueueTerms(context=context)

    def _keep_transfer_terms(self, call_id: str, steps: Steps | None) -> None:
        """A transferred caller keeps its IVR context (and goes to one agent first, if asked)."""
        call = self.router.call(call_id)
        attrs = call.attrs if call is not None else {}
        self._queue_terms[call_id] = QueueTerms(steps=steps, context={
            key: attrs[key] for key in ("ivr_flow", "ivr_variables", "ivr_trail") if key in attrs})

    async def _crm_lookup(self, lookup: Lookup) -> tuple[LookupStatus, dict | None]:
        """A lookup node's answer; the directory never raises and gives up after its timeout."""
        if self.crm is None:
            return "unavailable", None
        outcome = await self.crm.lookup(lookup.by, lookup.value)
        return outcome.status, outcome.card.ivr_facts() if outcome.card is not None else None

    async def _announce_positions(self) -> None:
        while True:
            await asyncio.sleep(ANNOUNCE_TICK_SECONDS)
            self.acd.announce_due()
            self.callbacks.offer_due()

    async def _events_endpoint(self, query: dict, **_) -> list[dict]:
        try:
            since = int(query.get("since") or 0)
        except ValueError:
            raise ApiError(400, "since must be an event id (integer)") from None
        return await asyncio.to_thread(read_events, self.db, call_id=query.get("call_id"), since_id=since)

    # ------------------------------------------------------------------ agent control
    def control_agent(self, verb: str, agent_id: str, *, queues=None, reason=None) -> str | None:
        """login / logout / pause / unpause one agent; RoutingError if the router refuses.
        A login takes the agent's queues and skills from the routing file; ``queues`` narrows
        or replaces the queues for this session. An agent logged in on another engine sharing
        the queues is acted on there (the name of that engine is returned)."""
        if agent_id not in self.settings.agents:
            raise UnknownAgent(f"no agent {agent_id} in settings.agents")
        if self.shared is not None and verb != "login":
            here = self.router.agent(agent_id)
            if (here is None or here.state is AgentState.LOGGED_OUT) and (
                    forwarded_to := self.shared.forward(verb, agent_id, reason)) is not None:
                return forwarded_to
        now = time.time()
        if verb == "login":
            elsewhere = self.shared.offers.logged_in_elsewhere(agent_id) if self.shared is not None else None
            if elsewhere is not None:
                raise RoutingError(f"agent {agent_id} is logged in on engine {elsewhere}; log out there first")
            profile = self.routing.agents.get(agent_id)
            if queues is None and profile is None:
                raise RoutingError(f"agent {agent_id} has no entry in {self.routing.source}; give the queues to serve")
            chosen = [queues] if isinstance(queues, str) else (queues if queues is not None else profile.queues)
            effects = self.router.login(
                agent_id, chosen, now, skills=with_identity(agent_id, profile.skills if profile else None),
                wrapup_seconds=profile.wrapup_seconds if profile else None,
                weight=profile.weight if profile else 1.0)
            if self._phones_reachable.get(agent_id) is False:  # logged in on a phone Asterisk cannot reach
                effects += self.router.phone_reachability(agent_id, False, now)
        elif verb == "pause":
            effects = self.router.pause(agent_id, str(reason or "paused")[:64], now)
        elif verb in ("logout", "unpause"):
            effects = getattr(self.router, verb)(agent_id, now)
        else:
            raise ValueError(f"unknown agent verb {verb!r}")
        self.acd.apply(effects)
        return None

    def reload_routing(self) -> dict:
        """Re-read the routing file and apply it without dropping a call. A file with errors,
        or one that removes a queue still holding calls, changes nothing (RoutingConfigError /
        RoutingError). Logged-in agents get their new queues and skills at once."""
        plan = load_routing(self.settings.routing_file)
        missing = sorted(set(self.routing.queue_names) - set(plan.queue_names))
        if set(missing) & self._flow_queues():
            raise RoutingError(f"IVR flows still send callers to queue(s) {missing}; change the flows first")
        now = time.time()
        effects = self.router.reconfigure(plan.queues, now, priority_aging_seconds=plan.priority_aging_seconds,
                                          max_no_answers=plan.max_no_answers)
        self.routing = plan
        for agent in list(self.router.agents()):
            profile = plan.agents.get(agent.agent_id)
            if profile is not None and agent.state is not AgentState.LOGGED_OUT:
                effects += self.router.set_profile(agent.agent_id, now, queues=profile.queues,
                                                   skills=with_identity(agent.agent_id, profile.skills),
                                                   wrapup_seconds=profile.wrapup_seconds, weight=profile.weight)
        self.acd.apply(effects)
        log.info("routing reloaded from %s: %d queue(s), %d agent profile(s)", plan.source, len(plan.queues),
                 len(plan.agents))
        return {"queues": plan.queue_names, "agents": len(plan.agents)}

    def _reload_on_signal(self) -> None:
        try:
            self.reload_routing()
        except (RoutingConfigError, RoutingError) as exc:
            log.error("routing file not reloaded, the running rules stay: %s", exc)

    def _flow_queues(self) -> set[str]:
        return {node.queue for flow in self.flows.values() for node in flow.nodes.values()
                if getattr(node, "queue", None)}

    async def _explain_endpoint(self, call_id: str, **_) -> dict:
        """Why a call is where it is: its live standing, and the reasons recorded with each offer."""
        offers = await asyncio.to_thread(read_events, self.db, call_id=call_id)
        decisions = [{"at": e["ts"], "agent_id": e["agent_id"], "offer_id": e["data"].get("offer_id"),
                      **e["data"].get("why", {})} for e in offers if e["kind"] == "offered"]
        live = self.router.explain(call_id, time.time())
        if live is None and not offers:
            raise ApiError(404, f"no call {call_id}")
        return {"call_id": call_id, "live": live, "offers": decisions}

    # ------------------------------------------------------------------ web API
    def _start_web(self) -> None:
        from twisted.internet import reactor
        from twisted.web import server

        api = self.build_api()
        pages = {**self._desk_api.pages(), **self._callback_api.pages(), **self._supervisor_api.pages(),
                 **self._qa_api.pages()}
        for name, channel in self._supervisor_api.live_channels().items():
            pages[b"live"].putChild(name, channel)
        self._web_port = reactor.listenTCP(self.settings.web_port, server.Site(ApiRoot(api, pages)),
                                           interface=self.settings.web_host)

    def build_api(self) -> JsonApi:
        port = self.settings.web_port
        api = JsonApi(allowed_hosts={f"{h}:{port}" for h in (self.settings.web_host, "127.0.0.1", "localhost")},
                      identify=self.identities.identify,
                      on_action=lambda who, method, path: self.audit.record(who.actor, "api_post", path))
        self._desk_api.register(api)
        StaffApi(self.staff_users, self.sessions).register(api)
        self._supervisor_api.register(api)
        self._qa_api.register(api)
        RecordingApi(self.recordings, self.settings.recordings.permissions,
                     time_zone=self.settings.time_zone).register(api)
        self.kpis.register(api)
        self._callback_api.register(api)
        CampaignApi(self.campaigns).register(api)
        now = time.time
        health = HealthCheck(database=self.db, ami_connected=lambda: self.ami.connected,
                             agi_listening=lambda: self.agi.listening, redis_url=self.settings.redis_url)

        async def health_report(**_) -> dict:
            """AMI, FastAGI, database and Redis status; ok is false when a part in use is down."""
            return await health.report(ami_connected=self.ami.connected, loop_ticks=self.loop_ticks,
                                       uptime=round(now() - self.started_at, 1),
                                       agi_rejected_connections=self.agi.rejected_connections)

        api.add("GET", "/api/health", health_report, role=Role.PUBLIC)
        metrics = MetricsSource(
            queues=lambda: self.router.queues_snapshot(now()), agents=lambda: self.router.agents_snapshot(now()),
            counters=lambda: self.counters, ami_connected=lambda: self.ami.connected,
            agi=lambda: {"listening": self.agi.listening, "connections": self.agi.accepted_connections,
                         "rejected": self.agi.rejected_connections},
            event_lag_seconds=self.events.lag_seconds, db_ok=lambda: self.events.last_write_ok)
        for path in ("/metrics", "/api/metrics"):  # /metrics is where Prometheus looks by default
            api.add("GET", path, lambda **_: TextReply(*render_metrics(metrics)), role=FLOOR)
        api.add("GET", "/api/openapi.json", role=Role.PUBLIC, handler=lambda **_: build_openapi(
            api.routes, title="callcenter engine API", version=__version__))
        api.add("GET", "/api/queues", lambda **_: self.router.queues_snapshot(now()), role=FLOOR)
        api.add("GET", "/api/agents", lambda **_: self.router.agents_snapshot(now()), role=FLOOR)
        api.add("GET", "/api/events", self._events_endpoint, role=FLOOR)
        api.add("GET", "/api/shared", lambda **_: self.shared.offers.view() if self.shared is not None else
                {"engine": self.settings.engine_name, "store_reachable": None, "agents": []}, role=FLOOR)
        api.add("GET", "/api/calls/{call_id}/explain", self._explain_endpoint, role=FLOOR)
        api.add("GET", "/api/flows", lambda **_: self.flows.status())

        async def flows_reload(**_):
            return await self.reload_flows()

        api.add("POST", "/api/flows/reload", flows_reload)

        def reload_handler(**_):
            try:
                return self.reload_routing()
            except (RoutingConfigError, RoutingError) as exc:
                raise ApiError(409, str(exc)) from None

        api.add("POST", "/api/routing/reload", reload_handler)

        def agent_action(verb):
            def handler(agent_id, body, **_):
                try:
                    forwarded_to = self.control_agent(verb, agent_id, queues=body.get("queues"),
                                                      reason=body.get("reason"))
                except UnknownAgent as exc:
                    raise ApiError(404, str(exc)) from None
                except RoutingError as exc:
                    raise ApiError(409, str(exc)) from None
                return {"agent": agent_id, "done": verb, **({"engine": forwarded_to} if forwarded_to else {})}
            return handler

        for verb in AGENT_VERBS:
            api.add("POST", "/api/agents/{agent_id}/" + verb, agent_action(verb))
        return api

