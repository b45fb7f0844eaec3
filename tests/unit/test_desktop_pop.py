"""The screen pop's document, the agent desk's reactions to the ACD (with a real CRM store in a SQLite
file, and one that takes 10 s to answer), the outcome of a call in the interaction log, and the
outbound webhook against a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from callcenter.acd.model import Event, Offer
from callcenter.acd.router import Router
from callcenter.crm.lookup import CustomerDirectory
from callcenter.crm.schema import migrate
from callcenter.crm.store import CrmStore, CustomerCard
from callcenter.desktop.pop import CrmFacts, RingingCall, ivr_steps, matched_by_ivr, screen_pop
from callcenter.desktop.service import DesktopService, NotYourCall
from callcenter.desktop.webhook import PopWebhook, signature
from callcenter.events.log import EventLog
from callcenter.storage import make_engine

CALL = RingingCall(call_id="c1", offer_id="c1/1", agent_id="1001", queue="support", enqueued_at=100.0,
                   caller_number="13800138000", caller_name="<b>Li</b>", ivr_flow="service",
                   ivr_variables={"account": "12345678", "customer_id": "7", "customer_tier": "vip"},
                   ivr_trail=({"kind": "ivr_menu_choice", "data": {"node": "lang", "key": "2", "target": "zh"}},
                              {"kind": "ivr_language", "data": {"language": "zh"}},
                              {"kind": "ivr_lookup", "data": {"node": "find", "by": "account", "status": "found"}}))
CARD = CustomerCard(id=7, name="Li Wei", tier="vip", language="zh", notes="prefers mornings",
                    phones=("+8613800138000",), accounts=("12345678",), matched_by="account")


def test_a_pop_says_who_matched_and_how_never_verified():
    pop = screen_pop(CALL, CrmFacts("found", CARD), now=112.34)
    assert pop["waited"] == 12.3 and pop["queue"] == "support" and pop["offer_id"] == "c1/1"
    assert pop["match"] == {"by": "account", "verified": False}
    assert pop["customer"]["name"] == "Li Wei" and pop["customer"]["accounts"] == ["12345678"]
    assert pop["caller"] == {"number": "13800138000", "name": "<b>Li</b>"}, "kept as text; the page escapes it"
    assert pop["ivr"]["inputs"] == {"account": "12345678"}, "the engine's own lookup variables are not inputs"
    assert [s["kind"] for s in pop["ivr"]["steps"]] == ["menu_choice", "lookup"], "language events are not steps"
    json.dumps(pop)  # plain JSON all through


def test_an_unknown_or_unanswered_caller_has_no_customer():
    for status in ("pending", "not_found", "unavailable"):
        pop = screen_pop(CALL, CrmFacts(status), now=100.0)
        assert (pop["crm"], pop["customer"], pop["match"], pop["history"]) == (status, None, None, [])


def test_the_ivr_lookup_tells_how_the_customer_was_matched():
    assert matched_by_ivr(CALL.ivr_trail) == "account"
    by_caller = [{"kind": "ivr_lookup", "data": {"by": "caller", "status": "found"}}]
    assert matched_by_ivr(by_caller) == "phone"
    assert matched_by_ivr([{"kind": "ivr_lookup", "data": {"by": "account", "status": "not_found"}}]) is None
    assert ivr_steps([{"kind": "ivr_input_ok", "data": {"node": "acct", "digits": 8, "odd": {"x": 1}}}]) == [
        {"kind": "input_ok", "node": "acct", "digits": 8}]


# ---- the desk, on a real router, event log and CRM store -----------------------------------------
class SlowStore:
    """A CRM that takes 10 s to find a customer."""

    def __init__(self, store):
        self.store = store

    def lookup_by_number(self, raw):
        time.sleep(10)
        return self.store.lookup_by_number(raw)

    def __getattr__(self, name):
        return getattr(self.store, name)


@pytest.fixture
def db(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'cc.db'}")
    migrate(engine)
    return engine


def make_desk(db, store, timeout=0.5):
    router = Router(["support"], ring_timeout=10, wrapup_seconds=5)
    events = EventLog(db)
    desk = DesktopService(router, events, db, dispositions=["resolved", "follow_up"], pause_reasons=["break"])
    desk.crm = CustomerDirectory(store, timeout)
    pushed: list[tuple[str, dict]] = []
    desk.publish = lambda agent_id, event, data: pushed.append((agent_id, json.loads(json.dumps(data))))
    return router, desk, events, pushed


def ring(router, desk, caller_number="13800138000"):
    router.login("1001", ["support"], 0.0)
    effects = router.enqueue("c1", "support", 1.0, attrs={"caller_number": caller_number, "caller_name": "Li"})
    offer = next(e for e in effects if isinstance(e, Offer))
    for effect in effects:
        desk.on_effect(effect)
    return offer, effects


async def settle(desk, seconds=0.0):
    await asyncio.sleep(seconds)
    await desk._tasks.close()


def test_a_10_second_crm_never_holds_up_the_offer_and_the_pop_says_unknown(db):
    store = CrmStore(db)
    store.add_customer("Li Wei", phones=["13800138000"], tier="vip")

    async def scenario():
        router, desk, _, pushed = make_desk(db, SlowStore(store), timeout=0.5)
        started = time.monotonic()
        ring(router, desk)
        handed_over = time.monotonic() - started
        first = pushed[-1][1]
        await asyncio.sleep(1.0)  # past the CRM timeout, long before the CRM answers
        return handed_over, first, pushed[-1][1]

    handed_over, first, later = asyncio.run(scenario())
    assert handed_over < 0.05, f"the offer's effects were held up {handed_over:.3f}s"
    assert first["call"]["stage"] == "ringing" and first["call"]["pop"]["crm"] == "pending"
    assert later["call"]["pop"]["crm"] == "unavailable" and later["call"]["pop"]["customer"] is None


def test_the_desk_follows_the_call_and_the_outcome_lands_in_one_interaction(db):
    store = CrmStore(db)
    customer = store.add_customer("Li Wei", phones=["13800138000"], tier="vip")
    store.record_interaction(customer_id=customer, call_id="old", agent_id="1002", resolved=False, notes="no dial tone")

    async def scenario():
        router, desk, events, pushed = make_desk(db, store)
        offer, _ = ring(router, desk)
        await asyncio.sleep(0.3)
        pop = pushed[-1][1]["call"]["pop"]
        for effect in router.offer_answered(offer.offer_id, 5.0) + router.call_ended("c1", 65.0):
            desk.on_effect(effect)
        await asyncio.sleep(0.3)
        # the form and the call's end race to create the row: one row either way
        saved = await desk.save_outcome("1001", "c1", disposition="resolved", resolved=True, notes="fixed")
        with pytest.raises(NotYourCall):
            await desk.save_outcome("1002", "c1", disposition="resolved", resolved=True, notes=None)
        await settle(desk)
        await events.close()
        return pop, [p[1]["call"]["stage"] for p in pushed], saved, desk.pop_for("c1", "1001")

    pop, stages, saved, later_pop = asyncio.run(scenario())
    assert pop["crm"] == "found" and pop["customer"]["name"] == "Li Wei" and pop["match"]["by"] == "phone"
    assert [i["notes"] for i in pop["open_issues"]] == ["no dial tone"]
    assert stages[0] == "ringing" and "connected" in stages and stages[-1] == "wrap_up"
    assert saved == {"call_id": "c1", "disposition": "resolved", "resolved": True, "notes": "fixed"}
    (row,) = [i for i in store.recent_interactions(customer) if i.call_id == "c1"]
    assert (row.agent_id, row.queue, row.disposition, row.resolved, row.notes) == (
        "1001", "support", "resolved", True, "fixed")
    assert later_pop["call_id"] == "c1"


def test_bad_outcomes_are_refused_with_the_reason(db):
    async def scenario():
        router, desk, _, _ = make_desk(db, CrmStore(db))
        ring(router, desk)
        problems = []
        for kwargs in ({"disposition": "nonsense", "resolved": None, "notes": None},
                       {"disposition": None, "resolved": "yes", "notes": None},
                       {"disposition": None, "resolved": None, "notes": "x" * 4001}):
            with pytest.raises(Exception) as refused:
                await desk.save_outcome("1001", "c1", **kwargs)
            problems.append(str(refused.value))
        await settle(desk)
        return problems

    problems = asyncio.run(scenario())
    assert "unknown disposition 'nonsense'" in problems[0]
    assert "resolved must be" in problems[1] and "at most 4000" in problems[2]


# ---- the webhook -------------------------------------------------------------------------------
class Receiver(BaseHTTPRequestHandler):
    received: list = []
    status = 204

    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        Receiver.received.append((dict(self.headers), body))
        self.send_response(Receiver.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    Receiver.received, Receiver.status = [], 204
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/pop"
    server.shutdown()


def test_the_webhook_posts_the_pop_signed(receiver):
    pop = screen_pop(CALL, CrmFacts("found", CARD), now=110.0)
    assert asyncio.run(PopWebhook(receiver, "a-secret-of-16-chars", 2.0).send(pop)) is None
    ((headers, body),) = Receiver.received
    assert json.loads(body) == json.loads(json.dumps(pop))
    assert headers["X-Callcenter-Event"] == "screen_pop"
    expected = "sha256=" + hmac.new(b"a-secret-of-16-chars", body, hashlib.sha256).hexdigest()
    assert headers["X-Callcenter-Signature"] == expected == signature("a-secret-of-16-chars", body)


def test_a_failing_webhook_is_reported_not_raised(receiver):
    Receiver.status = 500
    assert asyncio.run(PopWebhook(receiver, None, 2.0).send({"x": 1})) == "HTTP 500"
    assert "X-Callcenter-Signature" not in Receiver.received[0][0], "no secret, no signature"
    failure = asyncio.run(PopWebhook("http://127.0.0.1:9/nothing", None, 1.0).send({"x": 1}))
    assert failure is not None and "refused" in failure.lower()


def test_an_event_without_an_agent_changes_no_desk():
    router = Router(["support"], ring_timeout=10, wrapup_seconds=5)
    desk = DesktopService(router, None, None, dispositions=["resolved"], pause_reasons=["break"])
    pushed = []
    desk.publish = lambda *a: pushed.append(a)
    desk.on_effect(Event("queued", "c1", "support", None, {}))
    assert pushed == [] and desk.desks == {}
