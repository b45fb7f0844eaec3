"""SupervisorService (callcenter.supervisor.service) against a real ACD router, a real audit log on
SQLite, a fake AMI and a fake ACD shell: listen / whisper / barge ring the supervisor's own phone
into cc-spy for an agent on a call, ChanSpy start/end become events, skills change live, waiting
calls move or change priority, agents are paused; each action audited, each refusal with its
HTTP status and the field it is about."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from callcenter.acd.model import Event, Offer, QueueConfig, RoutingError
from callcenter.acd.router import Router
from callcenter.acd.steps import validate_steps
from callcenter.acd.transfer import with_identity
from callcenter.asterisk.ami import AmiError, OriginateResult
from callcenter.audit import AuditLog
from callcenter.storage import make_engine
from callcenter.supervisor.service import SPY_RING_SECONDS, SupervisorError, SupervisorService
from callcenter.web.auth import Identity, Role

T0 = 1_709_283_600.0  # 2024-03-01T09:00:00Z
SAM = Identity(Role.SUPERVISOR, username="sam")
ADA = Identity(Role.ADMIN, username="ada")
TOKEN = Identity(Role.ADMIN)  # the API token: no user name, no phone
KNOWN_AGENTS = {"100", "1001", "1002", "1003"}


class FakeAmi:
    def __init__(self) -> None:
        self.originated: list[dict[str, Any]] = []
        self.vars: list[tuple[str, str, str]] = []
        self.answer = True
        self.fail: Exception | None = None

    async def originate_to_context(self, **kwargs) -> OriginateResult:
        self.originated.append(kwargs)
        if self.fail is not None:
            raise self.fail
        return OriginateResult(answered=self.answer, reason=4 if self.answer else 3, channel="PJSIP/supervisor-x")

    async def set_channel_var(self, channel: str, name: str, value: str) -> None:
        self.vars.append((channel, name, value))


class FakeAcd:
    def __init__(self) -> None:
        self.applied: list[list] = []

    def apply(self, effects) -> None:
        self.applied.append(list(effects))

    def events(self, kind: str) -> list[Event]:
        return [e for batch in self.applied for e in batch if isinstance(e, Event) and e.kind == kind]


class Recorder:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def record(self, kind: str, *, call_id=None, queue=None, agent_id=None, data=None, **_) -> None:
        self.rows.append({"kind": kind, "call_id": call_id, "agent_id": agent_id, "data": data or {}})


class Floor:
    def __init__(self, tmp_path, known_skills: set[str] | None = None) -> None:
        self.now = [T0]
        self.router = Router([QueueConfig("support"), QueueConfig("sales"),
                              QueueConfig("billing", steps=validate_steps([{"after": 0, "require": "billing >= 5"}]))],
                             ring_timeout=15, wrapup_seconds=30)
        self.ami = FakeAmi()
        self.acd = FakeAcd()
        self.events = Recorder()
        self.audit = AuditLog(make_engine(f"sqlite:///{tmp_path / 'cc.db'}"), clock=lambda: self.now[0])
        self.known_skills = known_skills
        self.service = SupervisorService(
            router=self.router, acd=self.acd, ami=self.ami, events=self.events, audit=self.audit,
            control_agent=self.control_agent, phones=lambda: {"sam": "secret", "ada": "secret"},
            known_skills=lambda: self.known_skills, pause_reasons=("lunch", "training"),
            clock=lambda: self.now[0])

    def control_agent(self, verb: str, agent_id: str, *, queues=None, reason=None) -> None:
        if agent_id not in KNOWN_AGENTS:
            raise LookupError(f"no agent {agent_id} in settings.agents")
        now = self.now[0]
        if verb == "login":
            effects = self.router.login(agent_id, queues or ["support"], now,
                                        skills=with_identity(agent_id, {"lang.zh": 5}))
        elif verb == "pause":
            effects = self.router.pause(agent_id, reason, now)
        elif verb in ("logout", "unpause"):
            effects = getattr(self.router, verb)(agent_id, now)
        else:
            raise ValueError(verb)
        self.acd.apply(effects)

    def on_call(self, agent_id: str = "1001", call_id: str = "c1", queue: str = "support") -> None:
        self.control_agent("login", agent_id, queues=[queue])
        self.router.enqueue(call_id, queue, self.now[0])
        self.router.offer_answered(f"{call_id}/1", self.now[0])

    def audited(self, action: str | None = None) -> list[tuple[str, str, str, dict]]:
        return [(e.actor, e.action, e.target, e.details) for e in reversed(self.audit.entries(action=action))]


@pytest.fixture
def floor(tmp_path) -> Floor:
    return Floor(tmp_path)


def run(coro_fn):
    """Run an async scenario on a fresh loop."""
    return asyncio.run(coro_fn())


async def settle(service: SupervisorService) -> None:
    for _ in range(5):  # let the spawned background tasks run
        await asyncio.sleep(0)


def refused(coro_fn) -> SupervisorError:
    async def scenario():
        with pytest.raises(SupervisorError) as caught:
            await coro_fn()
        return caught.value
    return asyncio.run(scenario())


# ---------------------------------------------------------------------------- listen, whisper, barge
def test_spy_refuses_an_unknown_mode(floor):
    floor.on_call()
    error = refused(lambda: floor.service.spy(SAM, "1001", "shout"))
    assert (error.status, error.details) == (400, {"field": "mode"})
    assert floor.ami.originated == [] and floor.audited() == []


@pytest.mark.parametrize("who", [Identity(Role.SUPERVISOR, username="bob"), TOKEN])
def test_spy_refuses_a_user_without_a_phone(floor, who):
    floor.on_call()
    error = refused(lambda: floor.service.spy(who, "1001", "listen"))
    assert (error.status, error.details) == (409, {"field": "phone"})
    assert "supervisor_phones" in str(error)
    assert floor.ami.originated == [] and floor.audited() == []


def test_spy_refuses_an_agent_not_on_a_call(floor):
    floor.control_agent("login", "1001")  # available
    floor.control_agent("login", "1002")
    floor.router.enqueue("c1", "support", floor.now[0])  # rings 1001: reserved, not on a call yet
    for agent_id in ("1001", "1002", "1003"):  # reserved, available, never logged in
        error = refused(lambda: floor.service.spy(SAM, agent_id, "listen"))
        assert error.status == 409 and f"agent {agent_id} is not on a call" in str(error)
    assert floor.ami.originated == [] and floor.audited() == []


@pytest.mark.parametrize("mode", ["listen", "whisper", "barge"])
def test_spy_audits_and_rings_the_supervisors_phone_into_cc_spy(floor, mode):
    floor.on_call("1001", "c1")

    async def scenario():
        answer = await floor.service.spy(SAM, "1001", mode)
        await settle(floor.service)
        await floor.service.close()
        return answer

    answer = run(scenario)
    assert answer == {"agent_id": "1001", "call_id": "c1", "mode": mode, "phone": "supervisor-sam", "ringing": True}
    assert floor.audited() == [("supervisor:sam", f"spy_{mode}", "agent:1001", {"call_id": "c1"})]
    (rung,) = floor.ami.originated
    assert (rung["channel"], rung["context"], rung["exten"]) == ("PJSIP/supervisor-sam", "cc-spy", "s")
    assert rung["ring_timeout"] == SPY_RING_SECONDS
    assert rung["channel_id"].startswith("spy-")
    assert rung["variables"] == {"CC_SPY_AGENT": "1001", "CC_SPY_MODE": mode, "CC_SPY_SUPERVISOR": "sam",
                                 "CC_CALLID": "c1"}


def test_an_action_whose_audit_row_cannot_be_written_is_not_done(floor):
    floor.on_call()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    floor.audit.record = broken

    async def scenario():
        with pytest.raises(OSError):
            await floor.service.spy(SAM, "1001", "listen")
        await settle(floor.service)
        await floor.service.close()

    run(scenario)
    assert floor.ami.originated == []


def spied(floor: Floor, agent_id: str = "1001") -> str:
    """Spy on ``agent_id`` and return the supervisor leg's uniqueid the service rang."""
    async def scenario():
        await floor.service.spy(SAM, agent_id, "whisper")
        await settle(floor.service)
        await floor.service.close()

    run(scenario)
    return floor.ami.originated[-1]["channel_id"]


def test_chanspy_start_and_hangup_of_our_leg_become_events(floor):
    floor.on_call("1001", "c1")
    leg = spied(floor)
    floor.now[0] += 2
    floor.service.spy_started(leg, "PJSIP/agent1001-0000002a")
    assert floor.events.rows == [{"kind": "spy_started", "call_id": "c1", "agent_id": "1001",
                                  "data": {"mode": "whisper", "supervisor": "sam"}}]
    floor.now[0] += 42.5
    floor.service.channel_gone(leg)
    assert floor.events.rows[1] == {"kind": "spy_ended", "call_id": "c1", "agent_id": "1001",
                                    "data": {"mode": "whisper", "supervisor": "sam", "seconds": 42.5}}
    floor.service.channel_gone(leg)  # already gone: nothing more
    floor.service.spy_started(leg, "PJSIP/agent1001-0000002a")
    assert len(floor.events.rows) == 2


def test_chanspy_start_of_a_leg_we_did_not_ring_is_ignored(floor):
    floor.on_call("1001", "c1")
    leg = spied(floor)
    floor.service.spy_started("1700000000.42", "PJSIP/agent1001-0000002a")  # someone else's ChanSpy
    floor.service.channel_gone("1700000000.42")
    assert floor.events.rows == []
    assert leg != "1700000000.42"


def test_chanspy_start_on_another_agents_channel_is_ignored(floor):
    floor.on_call("100", "c1")
    leg = spied(floor, "100")
    for channel in ("PJSIP/agent1002-00000001", "PJSIP/agent1001-00000001", "PJSIP/agent100",
                    "Local/agent100-00000001;1"):
        floor.service.spy_started(leg, channel)
    assert floor.events.rows == []
    floor.service.channel_gone(leg)  # never started: no spy_ended either
    assert floor.events.rows == []


def test_a_leg_that_never_connects_is_forgotten(floor):
    floor.on_call("1001", "c1")
    floor.ami.answer = False
    leg = spied(floor)
    floor.ami.answer, floor.ami.fail = True, AmiError("AMI Originate: Extension does not exist")
    other = spied(floor)
    for uniqueid in (leg, other):
        floor.service.spy_started(uniqueid, "PJSIP/agent1001-00000001")
    assert floor.events.rows == []


# ---------------------------------------------------------------------------- agents' states
def test_pause_needs_a_known_reason(floor):
    floor.control_agent("login", "1001")
    for reason in ("smoke", None, ""):
        error = refused(lambda: floor.service.agent_state(SAM, "1001", "pause", reason))
        assert (error.status, error.details) == (400, {"field": "reason"})
    assert floor.router.agent("1001").state.value == "available"
    assert floor.audited() == []


def test_pause_and_unpause_an_agent(floor):
    floor.control_agent("login", "1001")
    paused = run(lambda: floor.service.agent_state(SAM, "1001", "pause", "lunch"))
    assert (paused["state"], paused["reason"]) == ("paused", "lunch (by sam)")
    back = run(lambda: floor.service.agent_state(TOKEN, "1001", "unpause", None))
    assert back["state"] == "available"
    again = run(lambda: floor.service.agent_state(TOKEN, "1001", "pause", "training"))
    assert again["reason"] == "training (by admin)"
    assert floor.audited() == [("supervisor:sam", "agent_pause", "agent:1001", {"reason": "lunch"}),
                               ("admin:api-token", "agent_unpause", "agent:1001", {"reason": None}),
                               ("admin:api-token", "agent_pause", "agent:1001", {"reason": "training"})]


def test_logging_an_agent_out(floor):
    floor.control_agent("login", "1001")
    answer = run(lambda: floor.service.agent_state(ADA, "1001", "logout", None))
    assert answer["state"] == "logged_out"
    assert floor.audited() == [("admin:ada", "agent_logout", "agent:1001", {"reason": None})]


def test_agent_state_refusals_map_to_404_and_409(floor):
    floor.on_call("1001", "c1")
    unknown = refused(lambda: floor.service.agent_state(SAM, "9999", "pause", "lunch"))
    assert unknown.status == 404
    busy = refused(lambda: floor.service.agent_state(SAM, "1001", "logout", None))
    assert busy.status == 409 and "on_call" in str(busy)
    never = refused(lambda: floor.service.agent_state(SAM, "1002", "unpause", None))
    assert never.status == 409
    assert floor.audited() == []


# ---------------------------------------------------------------------------- skills
@pytest.mark.parametrize("skills, message", [
    (["billing"], "must be an object"),
    ({"billing": 11}, "level must be an integer"),
    ({"billing": True}, "level must be an integer"),
    ({"Bad Name": 5}, "invalid skill name"),
])
def test_set_skills_validation_names_the_skills_field(floor, skills, message):
    floor.control_agent("login", "1001")
    error = refused(lambda: floor.service.set_skills(SAM, "1001", skills))
    assert (error.status, error.details) == (400, {"field": "skills"})
    assert message in str(error)
    assert floor.audited() == []


def test_set_skills_names_an_unknown_skill(tmp_path):
    floor = Floor(tmp_path, known_skills={"billing", "lang.zh"})
    floor.control_agent("login", "1001")
    error = refused(lambda: floor.service.set_skills(SAM, "1001", {"lang.zh": 3, "billin": 5}))
    assert (error.status, error.details) == (400, {"field": "skills.billin"})
    assert "did you mean 'billing'" in str(error)
    assert dict(floor.router.agent("1001").skills) == with_identity("1001", {"lang.zh": 5})  # unchanged
    assert floor.audited() == []


def test_set_skills_needs_a_logged_in_agent(floor):
    floor.control_agent("login", "1002")
    floor.control_agent("logout", "1002")
    for agent_id in ("1001", "1002"):  # never logged in, logged out
        error = refused(lambda: floor.service.set_skills(SAM, agent_id, {"billing": 5}))
        assert error.status == 409 and "not logged in" in str(error)


@pytest.mark.parametrize("known", [None, {"billing", "lang.zh"}])
def test_set_skills_changes_the_routers_agent_and_audits_before_and_after(tmp_path, known):
    floor = Floor(tmp_path, known_skills=known)
    floor.control_agent("login", "1001", queues=["support", "billing"])
    floor.router.enqueue("b1", "billing", floor.now[0])  # needs billing >= 5: 1001 cannot take it yet
    assert floor.router.call("b1").state.value == "waiting"
    answer = run(lambda: floor.service.set_skills(SAM, "1001", {"billing": 7}))
    assert dict(floor.router.agent("1001").skills) == {"billing": 7, "agent.1001": 10}  # identity kept
    assert answer["skills"] == {"billing": 7}
    assert floor.audited() == [("supervisor:sam", "agent_skills_changed", "agent:1001",
                                {"before": {"lang.zh": 5}, "after": {"billing": 7}})]
    (effects,) = floor.acd.applied[1:]  # the router's answer went to the ACD shell
    assert [e.kind for e in effects if isinstance(e, Event)][:2] == ["agent_profile", "offered"]
    assert any(isinstance(e, Offer) and e.call_id == "b1" and e.agent_id == "1001" for e in effects)


# ---------------------------------------------------------------------------- waiting calls
def test_move_call_moves_a_waiting_call_and_audits_it(floor):
    floor.router.enqueue("c1", "support", floor.now[0], attrs={"caller_channel": "PJSIP/trunk-00000007"})

    async def scenario():
        answer = await floor.service.move_call(SAM, "c1", "sales")
        await settle(floor.service)
        await floor.service.close()
        return answer

    assert run(scenario) == {"call_id": "c1", "queue": "sales"}
    assert floor.router.call("c1").queue == "sales"
    (moved,) = floor.acd.events("moved")
    assert (moved.data["from"], moved.data["to"], moved.data["by"]) == ("support", "sales", "supervisor:sam")
    assert floor.audited() == [("supervisor:sam", "call_moved", "call:c1", {"source": "support", "to": "sales"})]
    assert floor.ami.vars == [("PJSIP/trunk-00000007", "CC_QUEUE", "sales")]


def test_move_call_without_a_caller_channel_sets_no_channel_variable(floor):
    floor.router.enqueue("c1", "support", floor.now[0])

    async def scenario():
        await floor.service.move_call(ADA, "c1", "sales")
        await settle(floor.service)
        await floor.service.close()

    run(scenario)
    assert floor.router.call("c1").queue == "sales"
    assert floor.ami.vars == []
    assert floor.audited()[0][:3] == ("admin:ada", "call_moved", "call:c1")


def test_move_call_refusals(floor):
    floor.router.enqueue("w1", "support", floor.now[0])
    floor.control_agent("login", "1001")  # takes w1: ringing
    floor.router.enqueue("w2", "support", floor.now[0])  # waiting
    cases = [("w2", None, 400), ("w2", "", 400), ("w2", 7, 400),
             ("nope", "sales", 404),  # no such call
             ("w1", "sales", 409),  # ringing an agent: only waiting calls move
             ("w2", "support", 409),  # already there
             ("w2", "nowhere", 409)]  # unknown queue for a known call: the code answers 409
    for call_id, queue, status in cases:
        error = refused(lambda: floor.service.move_call(SAM, call_id, queue))
        assert error.status == status, (call_id, queue, error)
        if status == 400:
            assert error.details == {"field": "queue"}
    assert (floor.router.call("w1").queue, floor.router.call("w2").queue) == ("support", "support")
    assert floor.audited() == [] and floor.ami.vars == []


def test_set_priority_changes_a_waiting_calls_place_and_audits_it(floor):
    floor.router.enqueue("c1", "support", floor.now[0])
    floor.router.enqueue("c2", "support", floor.now[0] + 1)
    assert run(lambda: floor.service.set_priority(SAM, "c2", 5)) == {"call_id": "c2", "priority": 5}
    assert floor.router.call("c2").priority == 5
    (changed,) = floor.acd.events("priority_changed")
    assert changed.data == {"from": 0, "to": 5, "by": "supervisor:sam"}
    assert floor.audited() == [("supervisor:sam", "call_priority_changed", "call:c2", {"before": 0, "to": 5})]
    floor.control_agent("login", "1001")
    assert floor.router.call("c2").state.value == "ringing"  # now ahead of c1
    assert floor.router.call("c1").state.value == "waiting"


def test_set_priority_refusals(floor):
    floor.router.enqueue("w1", "support", floor.now[0])
    floor.control_agent("login", "1001")  # w1 ringing
    floor.router.enqueue("w2", "support", floor.now[0])
    cases = [("nope", 5, 404, {}), ("w1", 5, 409, {}),
             ("w2", 1001, 400, {"field": "priority"}), ("w2", "high", 400, {"field": "priority"}),
             ("w2", True, 400, {"field": "priority"}), ("w2", 1.5, 400, {"field": "priority"})]
    for call_id, priority, status, details in cases:
        error = refused(lambda: floor.service.set_priority(SAM, call_id, priority))
        assert (error.status, error.details) == (status, details), (call_id, priority, error)
    assert floor.router.call("w2").priority == 0
    assert floor.audited() == []


def test_a_bad_priority_that_spells_waiting_is_still_a_400(floor):
    floor.router.enqueue("w2", "support", floor.now[0])
    with pytest.raises(RoutingError, match="waiting"):  # the router's message quotes the value
        floor.router.set_priority("w2", "waiting", floor.now[0])
    error = refused(lambda: floor.service.set_priority(SAM, "w2", "waiting"))
    assert (error.status, error.details) == (400, {"field": "priority"})
