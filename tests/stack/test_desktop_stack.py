"""The agent desktop's API and live channel on the real stack: the screen pop reaches the agent while
the phone is still ringing, the wrap-up form fills the CRM's interaction log, hold / resume /
transfer move the real channels, and an agent can reach nothing but their own calls."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from callcenter.crm.schema import interactions_table
from callcenter.crm.store import CrmStore
from callcenter.web.auth import Credentials
from tests.stack.conftest import new_caller
from tests.stack.desktop_client import AgentDesktop, HttpError, stage_of

LI_WEI = "13800138000"  # a VIP of the demo CRM (callcenter/demo/customers.csv)


@pytest.fixture
def desk_engine(engine_with_routing):
    """The engine with a ring long enough to see the pop before the answer, the demo CRM loaded
    and desktop passwords for agents 1001..1003."""
    from callcenter.demo import seed_demo_customers

    engine = engine_with_routing(None, ring_timeout=10)
    store = CrmStore(engine.db)
    seed_demo_customers(store)
    credentials = Credentials(engine.db)
    for agent_id in ("1001", "1002", "1003"):
        credentials.set_password(agent_id, f"pw-{agent_id}-secret")
    return engine


def desktop_for(engine, agent_id: str) -> AgentDesktop:
    desk = AgentDesktop(f"http://127.0.0.1:{engine.settings.web_port}")
    desk.login(agent_id, f"pw-{agent_id}-secret")
    return desk


def interaction_rows(engine, call_id: str) -> list[dict]:
    with engine.db.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(interactions_table).where(interactions_table.c.call_id == call_id))]


def test_pop_arrives_while_ringing_and_the_wrapup_form_fills_the_interaction_log(desk_engine, phones):
    engine = desk_engine
    phone = phones("1001", mode="answer", ring_delay_ms=2500)
    desk = desktop_for(engine, "1001")
    desk.listen()
    desk.wait_for(lambda d: d["agent"]["id"] == "1001", what="the first desk")
    assert desk.call("POST", "/api/desktop/ready")["agent"]["state"] == "available"
    answered_before = desk.call("GET", "/api/desktop/figures")["answered"]  # today's, in a shared database

    with ThreadPoolExecutor(1) as pool:
        caller = pool.submit(new_caller("2", LI_WEI, hold_ms=9000).run_sync, 60)
        ringing = desk.wait_for(lambda d: stage_of(d) == "ringing" and d["call"]["pop"]["crm"] == "found",
                                what="a completed pop while ringing")
        result = caller.result()
    assert result.ok, result.describe()
    assert phone.answered_calls() == 1

    pop = ringing.data["call"]["pop"]
    call_id = pop["call_id"]
    answered = engine.wait_for_event("answered", call_id=call_id)
    assert ringing.at < answered["ts"], "the pop was on the screen before the agent answered"
    assert pop["customer"]["name"] == "Li Wei" and pop["customer"]["tier"] == "vip"
    assert pop["match"] == {"by": "phone", "verified": False}, "caller ID is a match, never verified"
    assert pop["caller"]["number"] == LI_WEI and pop["queue"] == "support"
    assert [s["kind"] for s in pop["ivr"]["steps"]][:1] == ["menu_choice"]
    assert pop["ivr"]["steps"][0]["key"] == "2" and pop["ivr"]["flow"] == "main"

    desk.wait_for(lambda d: stage_of(d) in ("wrap_up", "done"), what="wrap-up after the caller hung up")
    saved = desk.call("POST", f"/api/desktop/calls/{call_id}/outcome",
                      {"disposition": "follow_up", "resolved": False, "notes": "router <b>replaced</b>"})
    assert saved["disposition"] == "follow_up"
    (row,) = interaction_rows(engine, call_id)
    assert (row["agent_id"], row["queue"], row["disposition"], row["resolved"]) == ("1001", "support", "follow_up", False)
    assert row["notes"] == "router <b>replaced</b>" and row["customer_id"] == pop["customer"]["id"]
    # the open issue shows on the customer's next pop (read through the API as the same agent)
    assert engine.wait_for_event("disposition", call_id=call_id)["data"] == {"disposition": "follow_up", "resolved": False}
    card = CrmStore(engine.db).open_issues(pop["customer"]["id"])
    assert [i.call_id for i in card] == [call_id]

    figures = desk.call("GET", "/api/desktop/figures")
    assert figures["answered"] == answered_before + 1 and figures["avg_talk"] > 2
    with pytest.raises(HttpError) as refused:
        desk.call("POST", f"/api/desktop/calls/{call_id}/outcome", {"disposition": "no_such_code"})
    assert refused.value.status == 400 and "unknown disposition" in refused.value.body["error"]
    desk.close()


def test_an_agent_reaches_only_their_own_calls(desk_engine, phones):
    engine = desk_engine
    phones("1001", mode="answer", ring_delay_ms=300)
    owner, other = desktop_for(engine, "1001"), desktop_for(engine, "1002")
    owner.call("POST", "/api/desktop/ready")
    new_caller("2", "13900000051", hold_ms=3000).run_sync(40)
    call_id = engine.call_id_for("13900000051")
    engine.wait_for_event("ended", call_id=call_id)

    assert owner.call("GET", f"/api/calls/{call_id}/pop")["call_id"] == call_id
    assert engine.api("GET", f"/api/calls/{call_id}/pop")["call_id"] == call_id  # ops token
    refusals = [
        (other, "GET", f"/api/calls/{call_id}/pop", None, 404),  # as if there were no such call
        (other, "POST", f"/api/desktop/calls/{call_id}/outcome", {"disposition": "resolved"}, 403),
        (other, "GET", "/api/agents", None, 403),             # ops endpoints are not for agents
        (other, "POST", "/api/agents/1001/pause", {"reason": "x"}, 403),
        (AgentDesktop(owner.base_url), "GET", "/api/desktop", None, 401),  # no session
        (AgentDesktop(owner.base_url), "GET", "/api/queues", None, 401),
    ]
    for client, method, path, body, status in refusals:
        with pytest.raises(HttpError) as refused:
            client.call(method, path, body)
        assert refused.value.status == status, (method, path, refused.value)
    assert interaction_rows(engine, call_id)[0]["disposition"] is None, "the refused outcome changed nothing"
    with pytest.raises(HttpError) as wrong:
        AgentDesktop(owner.base_url).login("1002", "not-the-password")
    assert wrong.value.status == 401


def test_hold_resume_and_blind_transfer_to_another_agent(desk_engine, phones, asterisk):
    engine = desk_engine
    first = phones("1001", mode="answer", ring_delay_ms=300)
    second = phones("1002", mode="answer", ring_delay_ms=300)
    desk1, desk2 = desktop_for(engine, "1001"), desktop_for(engine, "1002")
    desk1.listen()
    desk1.call("POST", "/api/desktop/ready")
    desk2.call("POST", "/api/desktop/pause", {"reason": "break"})  # so the first call goes to 1001

    with ThreadPoolExecutor(1) as pool:
        caller = pool.submit(new_caller("2", "13900000052", hold_ms=22000).run_sync, 60)
        desk1.wait_for(lambda d: stage_of(d) == "connected", what="1001 on the call")
        call_id = engine.call_id_for("13900000052")
        time.sleep(1)

        desk1.call("POST", "/api/desktop/hold")
        desk1.wait_for(lambda d: d["call"] and d["call"]["held"], what="the call shown on hold")
        time.sleep(1.5)
        assert "cc-held" in asterisk.cli("core show channels concise"), "the caller hears hold music"
        with pytest.raises(HttpError) as twice:
            desk1.call("POST", "/api/desktop/hold")
        assert twice.value.status == 409
        desk1.call("POST", "/api/desktop/resume")
        time.sleep(1.5)
        channels = asterisk.cli("core show channels concise")
        # the agent's leg bridges the caller again (the caller, pulled out of its music, shows no app)
        assert "cc-bridge-caller!s!2!Up!Bridge" in channels and "MusicOnHold" not in channels, channels

        desk2.call("POST", "/api/desktop/ready")
        moved = desk1.call("POST", "/api/desktop/transfer", {"agent": "1002"})
        assert moved == {"call_id": call_id, "queue": "support", "agent": "1002"}
        engine.wait_for_event("answered", call_id=call_id, agent_id="1002")
        result = caller.result()
    assert result.ok, result.describe()
    assert first.answered_calls() == 1 and second.answered_calls() == 1

    events = engine.events(call_id)
    kinds = [e["kind"] for e in events]
    assert kinds.count("answered") == 2 and "transferred" in kinds
    hold_ended = next(e for e in events if e["kind"] == "hold_ended")
    assert hold_ended["data"]["how"] == "resumed" and 1.0 < hold_ended["data"]["seconds"] < 10
    transferred = next(e for e in events if e["kind"] == "transferred")
    assert transferred["agent_id"] == "1001" and transferred["data"] == {"to_queue": "support", "to_agent": "1002"}
    engine.wait_for_event("ended", call_id=call_id, agent_id="1002")
    # both agents' parts of the call are in the interaction log
    assert sorted(r["agent_id"] for r in interaction_rows(engine, call_id)) == ["1001", "1002"]
    desk1.close()
