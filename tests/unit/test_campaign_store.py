"""The campaign store on real SQLite files (and the core of it on PostgreSQL): campaigns and their
states, contacts due, claims (a contact dialled once per claim), outcomes recorded once, the
do-not-call list checked at dial time, progress."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import inspect, make_url, text

from callcenter.campaign.model import CampaignSpec, Decision, after_outcome
from callcenter.campaign.store import (
    CampaignStore,
    CampaignStoreError,
    NewContact,
    UnknownCampaignError,
    create_tables,
)
from callcenter.storage import make_engine

NOW = 1_700_000_000.0
SPEC = CampaignSpec(name="renewals", queue="sales", caller_id="+14155550100")


@pytest.fixture
def store(tmp_path: Path) -> CampaignStore:
    engine = make_engine(f"sqlite:///{tmp_path / 'callcenter.db'}")
    create_tables(engine)
    yield CampaignStore(engine)
    engine.dispose()


def numbers(n: int) -> list[str]:
    return [f"+1415555{i:04d}" for i in range(101, 101 + n)]


def with_contacts(store: CampaignStore, count: int, spec: CampaignSpec = SPEC) -> int:
    campaign_id = store.create(spec, now=NOW)
    store.add_contacts(campaign_id, [NewContact(n, row=i + 2) for i, n in enumerate(numbers(count))], now=NOW)
    return campaign_id


# ------------------------------------------------------------------------------ campaigns
def test_tables_are_created_once_and_a_campaign_round_trips(tmp_path: Path, store: CampaignStore) -> None:
    create_tables(store.engine)  # again: a no-op
    assert {"campaigns", "campaign_contacts", "dnc_numbers"} <= set(inspect(store.engine).get_table_names())
    spec = SPEC.model_copy(update={"time_zone": "Europe/Paris"})
    campaign_id = store.create(spec, now=NOW)
    row = store.get("renewals")
    assert (row.id, row.name, row.spec, row.state, row.created_at) == (campaign_id, "renewals", spec, "draft", NOW)
    assert store.get_by_id(campaign_id) == row
    store.create(SPEC.model_copy(update={"name": "alpha"}))
    assert [c.name for c in store.list()] == ["alpha", "renewals"]


def test_a_name_is_used_once_and_unknown_campaigns_are_named(store: CampaignStore) -> None:
    store.create(SPEC)
    with pytest.raises(CampaignStoreError, match="a campaign named 'renewals' already exists"):
        store.create(SPEC)
    with pytest.raises(UnknownCampaignError, match="no campaign 'nope'"):
        store.get("nope")
    with pytest.raises(UnknownCampaignError, match="no campaign with id 99"):
        store.get_by_id(99)


def test_state_changes_follow_the_allowed_transitions(store: CampaignStore) -> None:
    store.create(SPEC)
    path = ["running", "paused", "running", "completed"]
    assert [store.set_state("renewals", s, now=NOW).state for s in path] == path
    assert store.get("renewals").updated_at == NOW
    with pytest.raises(CampaignStoreError, match="campaign 'renewals': a completed campaign cannot become running "
                                                 r"\(allowed: none: it is final\)"):
        store.set_state("renewals", "running")
    store.create(SPEC.model_copy(update={"name": "other"}))
    with pytest.raises(CampaignStoreError, match=r"a draft campaign cannot become paused \(allowed: running, stopped\)"):
        store.set_state("other", "paused")
    assert store.set_state("other", "stopped").state == "stopped"
    assert store.get("other").state == "stopped"


def test_the_spec_changes_only_while_not_running(store: CampaignStore) -> None:
    store.create(SPEC)
    store.set_state("renewals", "running")
    wider = SPEC.model_copy(update={"ring_seconds": 40})
    with pytest.raises(CampaignStoreError, match="campaign 'renewals' is running: pause it"):
        store.replace_spec("renewals", wider)
    assert store.get("renewals").spec.ring_seconds == 25
    store.set_state("renewals", "paused")
    assert store.replace_spec("renewals", wider).spec.ring_seconds == 40
    with pytest.raises(CampaignStoreError, match="cannot be renamed"):
        store.replace_spec("renewals", SPEC.model_copy(update={"name": "other"}))


# ------------------------------------------------------------------------------ contacts
def test_contacts_are_stored_all_or_none(store: CampaignStore) -> None:
    campaign_id = with_contacts(store, 2)
    [first, second] = store.contacts(campaign_id)
    assert (first.number, first.status, first.attempts, first.outcomes, first.row) == ("+14155550101", "pending", 0, {}, 2)
    store.add_contacts(campaign_id, [NewContact("+14155550300", "Ann", "C-7", {"plan": "gold"}, row=9)])
    added = store.contacts(campaign_id)[-1]
    assert (added.name, added.customer_id, added.data, added.row) == ("Ann", "C-7", {"plan": "gold"}, 9)
    # one number already there: nothing of the batch is stored
    with pytest.raises(CampaignStoreError, match=r"number \+14155550102 is already in campaign 'renewals'"):
        store.add_contacts(campaign_id, [NewContact("+14155550400"), NewContact("+14155550102")])
    with pytest.raises(CampaignStoreError, match=r"number \+14155550500 is given twice"):
        store.add_contacts(campaign_id, [NewContact("+14155550500"), NewContact("+14155550500")])
    with pytest.raises(CampaignStoreError, match="not a number in E.164 form"):
        store.add_contacts(campaign_id, [NewContact("4155550600")])
    assert len(store.contacts(campaign_id)) == 3
    assert store.existing_numbers(campaign_id, ["+14155550102", "+14155559999"]) == {"+14155550102": 3}


def test_a_stopped_campaign_takes_no_contacts(store: CampaignStore) -> None:
    campaign_id = store.create(SPEC)
    store.set_state("renewals", "stopped")
    with pytest.raises(CampaignStoreError, match="campaign 'renewals' is stopped: it takes no more contacts"):
        store.add_contacts(campaign_id, [NewContact("+14155550101")])


def test_due_contacts_come_never_tried_first_then_by_due_time(store: CampaignStore) -> None:
    campaign_id = with_contacts(store, 5)
    ids = [c.id for c in store.contacts(campaign_id)]
    # contacts 0 and 1 tried: retries due at NOW+100 and NOW+50; contact 2 done; 3 and 4 never tried
    for contact_id, due in ((ids[0], NOW + 100), (ids[1], NOW + 50)):
        assert store.claim_for_dialing(contact_id, f"call-{contact_id}", NOW)
        store.record_outcome(contact_id, "busy", Decision("pending", due), NOW)
    store.claim_for_dialing(ids[2], "call-done", NOW)
    store.record_outcome(ids[2], "connected", Decision("done"), NOW)
    assert [c.id for c in store.due_contacts(campaign_id, NOW, 10)] == [ids[3], ids[4]]
    assert [c.id for c in store.due_contacts(campaign_id, NOW + 100, 10)] == [ids[3], ids[4], ids[1], ids[0]]
    assert [c.id for c in store.due_contacts(campaign_id, NOW + 100, 3)] == [ids[3], ids[4], ids[1]]
    assert store.due_contacts(campaign_id, NOW + 100, 0) == []
    other = with_contacts(store, 1, SPEC.model_copy(update={"name": "other"}))
    assert [c.campaign_id for c in store.due_contacts(other, NOW, 10)] == [other]


def test_a_claim_is_won_once(store: CampaignStore, tmp_path: Path) -> None:
    campaign_id = with_contacts(store, 1)
    [contact] = store.contacts(campaign_id)
    # a second store on the same file: another worker, or the engine after a restart
    rival_engine = make_engine(f"sqlite:///{tmp_path / 'callcenter.db'}")
    rival = CampaignStore(rival_engine)
    assert store.claim_for_dialing(contact.id, "call-1", NOW) is True
    assert rival.claim_for_dialing(contact.id, "call-2", NOW) is False
    assert store.claim_for_dialing(contact.id, "call-1", NOW) is False
    rival_engine.dispose()
    claimed = store.contact(contact.id)
    assert (claimed.status, claimed.attempts, claimed.call_id) == ("dialing", 1, "call-1")
    assert store.due_contacts(campaign_id, NOW, 10) == []


def test_a_retry_cannot_be_claimed_before_it_is_due(store: CampaignStore) -> None:
    campaign_id = with_contacts(store, 1)
    [contact] = store.contacts(campaign_id)
    store.claim_for_dialing(contact.id, "call-1", NOW)
    store.record_outcome(contact.id, "no_answer", Decision("pending", NOW + 1800), NOW, call_id="call-1")
    assert store.claim_for_dialing(contact.id, "call-2", NOW + 1799) is False
    assert store.claim_for_dialing(contact.id, "call-2", NOW + 1800) is True
    again = store.contact(contact.id)
    assert (again.attempts, again.call_id, again.next_attempt_at) == (2, "call-2", None)


def test_an_outcome_is_recorded_once_for_its_call(store: CampaignStore) -> None:
    campaign_id = with_contacts(store, 1)
    [contact] = store.contacts(campaign_id)
    store.claim_for_dialing(contact.id, "call-1", NOW)
    assert store.record_outcome(contact.id, "busy", Decision("pending", NOW + 300), NOW, call_id="other") is False
    assert store.record_outcome(contact.id, "busy", Decision("pending", NOW + 300), NOW + 1, call_id="call-1") is True
    # the same outcome reported again (a duplicate event): not counted twice
    assert store.record_outcome(contact.id, "busy", Decision("pending", NOW + 300), NOW + 2, call_id="call-1") is False
    recorded = store.contact(contact.id)
    assert (recorded.status, recorded.outcomes, recorded.last_outcome, recorded.next_attempt_at, recorded.updated_at) \
        == ("pending", {"busy": 1}, "busy", NOW + 300, NOW + 1)
    with pytest.raises(ValueError, match="'ok' is not a contact outcome"):
        store.record_outcome(contact.id, "ok", Decision("done"), NOW)


def test_a_final_contact_is_not_changed_again(store: CampaignStore) -> None:
    campaign_id = with_contacts(store, 1)
    [contact] = store.contacts(campaign_id)
    store.claim_for_dialing(contact.id, "call-1", NOW)
    assert store.record_outcome(contact.id, "connected", Decision("done"), NOW)
    assert store.record_outcome(contact.id, "busy", Decision("pending", NOW + 300), NOW) is False
    assert store.contact(contact.id).status == "done"
    assert store.record_outcome(99, "busy", Decision("failed"), NOW) is False


def test_retries_driven_by_the_pure_decision_end_in_failed(store: CampaignStore) -> None:
    campaign_id = with_contacts(store, 1, SPEC.model_copy(update={"name": "busy"}))
    spec = store.get_by_id(campaign_id).spec
    now = NOW
    for n in range(10):
        due = store.due_contacts(campaign_id, now, 1)
        if not due:
            break
        contact = due[0]
        assert store.claim_for_dialing(contact.id, f"call-{n}", now)
        store.record_outcome(contact.id, "busy", after_outcome(spec, "busy", contact.outcomes, now), now,
                             call_id=f"call-{n}")
        now += 300
    final = store.contacts(campaign_id)[0]
    assert (final.status, final.attempts, final.outcomes, final.next_attempt_at) == ("failed", 4, {"busy": 4}, None)
    assert store.all_done(campaign_id)


def test_dispositions_are_set_by_call_id(store: CampaignStore) -> None:
    campaign_id = with_contacts(store, 2)
    first = store.contacts(campaign_id)[0]
    store.claim_for_dialing(first.id, "1700000000.42", NOW)
    assert store.set_disposition("1700000000.42", "sales_lead") is True
    assert store.set_disposition("no-such-call", "sales_lead") is False
    assert store.contact(first.id).disposition == "sales_lead"
    assert store.contact_by_call_id("1700000000.42").id == first.id
    assert store.contact_by_call_id("no-such-call") is None
    assert store.contacts(campaign_id)[1].disposition is None


def test_contacts_left_dialing_are_found_for_recovery(store: CampaignStore) -> None:
    first = with_contacts(store, 2)
    second = with_contacts(store, 1, SPEC.model_copy(update={"name": "other"}))
    a, b = store.contacts(first)
    [c] = store.contacts(second)
    for contact in (a, c):
        store.claim_for_dialing(contact.id, f"call-{contact.id}", NOW)
    assert [x.id for x in store.dialing_contacts()] == [a.id, c.id]
    assert [x.id for x in store.dialing_contacts(second)] == [c.id]
    # after a restart the dialer records them as interrupted: they become due again later
    store.record_outcome(a.id, "interrupted", Decision("pending", NOW + 60), NOW)
    assert [x.id for x in store.dialing_contacts(first)] == []
    assert not store.all_done(first)


def test_progress_counts_statuses_outcomes_and_attempts(store: CampaignStore) -> None:
    campaign_id = with_contacts(store, 4)
    a, b, c, d = store.contacts(campaign_id)
    for contact, outcome, decision in ((a, "connected", Decision("done")), (b, "busy", Decision("pending", NOW)),
                                       (c, "failed", Decision("failed"))):
        store.claim_for_dialing(contact.id, f"call-{contact.id}", NOW)
        store.record_outcome(contact.id, outcome, decision, NOW)
    store.claim_for_dialing(b.id, "call-again", NOW)
    progress = store.progress(campaign_id)
    assert progress == {
        "total": 4,
        "by_status": {"pending": 1, "dialing": 1, "done": 1, "failed": 1, "dnc": 0, "invalid": 0},
        "by_outcome": {"connected": 1, "busy": 1, "no_answer": 0, "failed": 1, "interrupted": 0, "dnc": 0},
        "attempts": 4, "connected": 1, "finished": 2}
    assert not store.all_done(campaign_id)
    store.record_outcome(b.id, "connected", Decision("done"), NOW)
    store.record_outcome(d.id, "dnc", Decision("dnc"), NOW)
    assert store.all_done(campaign_id)
    assert store.progress(store.create(SPEC.model_copy(update={"name": "empty"})))["total"] == 0


# ------------------------------------------------------------------------------ do not call
def test_the_do_not_call_list(store: CampaignStore) -> None:
    assert store.dnc_add("+14155550101", "asked", now=NOW) is True
    assert store.dnc_add("+14155550101", "again", now=NOW + 5) is False  # the first reason is kept
    assert store.dnc_add_many(["+14155550102", "+14155550101", "+14155550102"], "list") == 1
    assert store.dnc_listed("+14155550101") and not store.dnc_listed("+14155550199")
    assert store.dnc_listed_among(["+14155550102", "+14155550199"]) == {"+14155550102"}
    assert [(e.number, e.reason) for e in store.dnc_list()] == [("+14155550101", "asked"), ("+14155550102", "list")]
    assert store.dnc_list()[0].added_at == NOW
    assert store.dnc_remove("+14155550101") is True
    assert store.dnc_remove("+14155550101") is False
    assert not store.dnc_listed("+14155550101")
    with pytest.raises(CampaignStoreError, match="'0101' is not a number in E.164 form"):
        store.dnc_add("0101")


def test_a_number_listed_after_import_is_still_blocked_at_dial_time(store: CampaignStore) -> None:
    campaign_id = with_contacts(store, 2)
    store.dnc_add("+14155550101", "called to complain")
    spec = store.get_by_id(campaign_id).spec
    # what the dialer does for each due contact, right before claiming it
    for contact in store.due_contacts(campaign_id, NOW, 10):
        if store.dnc_listed(contact.number):
            store.record_outcome(contact.id, "dnc", after_outcome(spec, "dnc", contact.outcomes, NOW), NOW)
        else:
            store.claim_for_dialing(contact.id, f"call-{contact.id}", NOW)
    blocked, dialled = store.contacts(campaign_id)
    assert (blocked.status, blocked.attempts, blocked.last_outcome) == ("dnc", 0, "dnc")
    assert (dialled.status, dialled.attempts) == ("dialing", 1)
    assert store.progress(campaign_id)["by_status"]["dnc"] == 1


# ------------------------------------------------------------------------------ PostgreSQL
def test_the_core_works_the_same_on_postgresql(postgres_url: str) -> None:
    schema = f"t{uuid.uuid4().hex[:12]}"
    admin = make_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    url = make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        create_tables(engine)
        create_tables(engine)
        store = CampaignStore(engine)
        campaign_id = with_contacts(store, 3)
        a, b, c = store.contacts(campaign_id)
        store.claim_for_dialing(a.id, "call-a", NOW)
        store.record_outcome(a.id, "busy", Decision("pending", NOW + 10), NOW, call_id="call-a")
        # never-tried contacts first: PostgreSQL sorts NULLs last unless told otherwise
        assert [x.id for x in store.due_contacts(campaign_id, NOW + 10, 10)] == [b.id, c.id, a.id]
        assert store.claim_for_dialing(b.id, "call-b", NOW) and not store.claim_for_dialing(b.id, "call-x", NOW)
        assert store.contact(a.id).outcomes == {"busy": 1}
        store.dnc_add("+14155550103")
        assert store.dnc_listed("+14155550103")
        assert store.progress(campaign_id)["by_status"]["dialing"] == 1
        with pytest.raises(CampaignStoreError, match="already exists"):
            store.create(SPEC)
    finally:
        engine.dispose()
