"""The pure callback model: web requests (numbers in several regions, windows, business hours
across a daylight-saving change, the rate limit), Dial() outcomes, and what follows an attempt."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import pytest
from pydantic import ValidationError

from callcenter.acd.shell import dial_outcome
from callcenter.callback.model import (
    AttemptDecision,
    Callback,
    CallbackPolicy,
    CallbackRateLimited,
    CallbackRequestError,
    ValidatedRequest,
    after_attempt,
    callable_number,
    due,
    eligible_at,
    is_expired,
    iso_utc,
    next_opening,
    receipt,
    request_number,
    validate_web_request,
)
from callcenter.ivr.schedules import Schedule

QUEUES = {"sales", "support"}
# Wednesday 2026-03-04 10:00 UTC
NOW = datetime.fromisoformat("2026-03-04T10:00:00+00:00").timestamp()
HOUR = 3600.0
DAY = 86400.0
PARIS_HOURS = {"timezone": "Europe/Paris", "hours": {"mon-fri": "09:00-17:00", "sat": "10:00-12:00"}}


def at(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def validate(body: dict, *, policy: CallbackPolicy | None = None, now: float = NOW, recent: int = 0
             ) -> ValidatedRequest:
    return validate_web_request(body, policy=policy or CallbackPolicy(), known_queues=QUEUES, now=now,
                                recent_requests_for_number=recent)


def refused(body: dict, **kwargs) -> CallbackRequestError:
    with pytest.raises(CallbackRequestError) as caught:
        validate(body, **kwargs)
    return caught.value


def callback(**changes) -> Callback:
    base = Callback(id=1, call_id="1700000000.1", source="hold", queue="sales", number="+12025550143",
                    priority=0, enqueued_at=NOW - 120, not_before=None, not_after=None, status="dialing",
                    attempts=1, next_attempt_at=None, last_outcome=None, agent_id="1001", created_at=NOW - 60)
    return dataclasses.replace(base, **changes)


# ------------------------------------------------------------------------------ policy
def test_policy_defaults_and_bounds() -> None:
    policy = CallbackPolicy()
    assert (policy.max_attempts, policy.retry_after_seconds, policy.ring_seconds, policy.priority,
            policy.rate_limit_count, policy.rate_limit_seconds, policy.max_window_days,
            policy.business_hours, policy.default_region) == (3, 300, 30, 0, 3, 3600, 14, None, "US")
    for bad in ({"max_attempts": 0}, {"max_attempts": 11}, {"retry_after_seconds": 29}, {"ring_seconds": 121},
                {"priority": 101}, {"default_region": "XX"}, {"surprise": 1}, {"allowed_regions": ["ZZ"]}):
        with pytest.raises(ValidationError):
            CallbackPolicy(**bad)


def test_policy_business_hours_are_checked_at_load_time() -> None:
    with pytest.raises(ValidationError, match="ends before it starts"):
        CallbackPolicy(business_hours={"timezone": "Europe/Paris", "hours": {"mon": "17:00-09:00"}})
    with pytest.raises(ValidationError, match="IANA"):
        CallbackPolicy(business_hours={"timezone": "Mars/Olympus", "hours": "24x7"})
    assert isinstance(CallbackPolicy(business_hours=PARIS_HOURS).business_hours, Schedule)


def test_policy_is_frozen() -> None:
    with pytest.raises(ValidationError):
        CallbackPolicy().max_attempts = 5  # type: ignore[misc]


# ------------------------------------------------------------------------------ numbers
@pytest.mark.parametrize(("region", "raw", "e164"), [
    ("US", "(202) 555-0143", "+12025550143"),
    ("US", "+1 202-555-0143", "+12025550143"),
    ("GB", "020 7946 0018", "+442079460018"),
    ("FR", "06 12 34 56 78", "+33612345678"),
    ("CN", "138 1234 5678", "+8613812345678"),
    ("DE", "+49 30 901820", "+4930901820"),
    ("US", "+33 6 12 34 56 78", "+33612345678"),   # a country code wins over the default region
])
def test_numbers_become_e164_in_the_policy_region(region: str, raw: str, e164: str) -> None:
    policy = CallbackPolicy(default_region=region)
    request = validate({"number": raw, "queue": "sales"}, policy=policy)
    assert request.number == e164


@pytest.mark.parametrize(("raw", "why"), [
    ("", "required"),
    (None, "required"),
    (12025550143, "must be a string"),
    ("12", "not a"),
    ("555-0143x12", "unexpected character"),
    ("+1 202 555 01", "not a"),
    ("<script>", "unexpected character"),
    ("+1 900 555 0123", "premium-rate"),         # toll fraud: never call back a premium number
    ("+33 8 99 12 34 56", "premium-rate"),
])
def test_bad_numbers_are_refused_on_the_number_field(raw, why: str) -> None:
    error = refused({"number": raw, "queue": "sales"})
    assert error.field == "number"
    assert why in error.message


def test_allowed_regions_limit_where_callbacks_go() -> None:
    policy = CallbackPolicy(allowed_regions=("US", "CA"))
    assert validate({"number": "+1 416 555 0199", "queue": "sales"}, policy=policy).number == "+14165550199"
    error = refused({"number": "+44 20 7946 0018", "queue": "sales"}, policy=policy)
    assert (error.field, "region" in error.message) == ("number", True)


def test_request_number_normalises_for_the_rate_limit_count() -> None:
    # Every way of writing a number must share one limit: the API counts recent requests for this.
    assert request_number({"number": "202.555.0143"}, CallbackPolicy()) == "+12025550143"
    with pytest.raises(CallbackRequestError):
        request_number({}, CallbackPolicy())


def test_callable_number_for_virtual_hold() -> None:
    policy = CallbackPolicy(default_region="GB")
    assert callable_number("02079460018", policy) == "+442079460018"
    assert callable_number("anonymous", policy) is None
    assert callable_number("", policy) is None
    assert callable_number(None, policy) is None
    assert callable_number("+19005550123", policy) is None


# ------------------------------------------------------------------------------ other fields
def test_queue_must_be_known() -> None:
    assert refused({"number": "2025550143"}).field == "queue"
    error = refused({"number": "2025550143", "queue": "billing"})
    assert (error.field, "billing" in error.message) == ("queue", True)


def test_unknown_fields_and_non_objects_are_refused() -> None:
    assert refused({"number": "2025550143", "queue": "sales", "priority": 100}).field == "priority"
    assert refused(["number"]).field is None  # type: ignore[arg-type]


def test_name_and_note_are_plain_text_within_limits() -> None:
    ok = validate({"number": "2025550143", "queue": "sales", "name": "  Zoë <O'Brien> ",
                   "note": "about my order\r\nplease after 5pm"})
    assert (ok.name, ok.note) == ("Zoë <O'Brien>", "about my order\nplease after 5pm")
    assert validate({"number": "2025550143", "queue": "sales", "name": "   "}).name is None
    assert validate({"number": "2025550143", "queue": "sales", "name": "x" * 80}).name == "x" * 80
    for body, field in (({"name": "x" * 81}, "name"), ({"note": "x" * 501}, "note"),
                        ({"name": "a\nb"}, "name"), ({"note": "bell\x07"}, "note"), ({"name": 5}, "name")):
        assert refused({"number": "2025550143", "queue": "sales", **body}).field == field


# ------------------------------------------------------------------------------ windows
def test_now_means_no_window() -> None:
    request = validate({"number": "2025550143", "queue": "sales"})
    assert (request.not_before, request.not_after, request.deferred_to_opening) == (None, None, False)


def test_window_times_are_iso_with_an_offset() -> None:
    request = validate({"number": "2025550143", "queue": "sales",
                        "not_before": "2026-03-05T09:00:00+01:00", "not_after": "2026-03-05T10:00:00Z"})
    assert (request.not_before, request.not_after) == (at("2026-03-05T08:00:00+00:00"), at("2026-03-05T10:00:00+00:00"))
    for value, why in (("2026-03-05T09:00:00", "no UTC offset"), ("2026-03-05", "no UTC offset"),
                       ("tomorrow", "not an ISO-8601"), (NOW + HOUR, "ISO-8601"), ("9" * 41, "ISO-8601")):
        error = refused({"number": "2025550143", "queue": "sales", "not_before": value})
        assert (error.field, why in error.message) == ("not_before", True), value


def test_window_must_end_after_it_starts() -> None:
    body = {"number": "2025550143", "queue": "sales", "not_before": iso_utc(NOW + 2 * HOUR)}
    error = refused({**body, "not_after": iso_utc(NOW + 2 * HOUR)})
    assert (error.field, "later than its start" in error.message) == ("not_after", True)
    assert refused({**body, "not_after": iso_utc(NOW + HOUR)}).field == "not_after"
    assert validate({**body, "not_after": iso_utc(NOW + 2 * HOUR + 1)}).not_after == NOW + 2 * HOUR + 1


def test_window_end_in_the_past_is_refused_and_a_past_start_means_now() -> None:
    error = refused({"number": "2025550143", "queue": "sales", "not_after": iso_utc(NOW)})
    assert (error.field, "past" in error.message) == ("not_after", True)
    request = validate({"number": "2025550143", "queue": "sales", "not_before": iso_utc(NOW - 30),
                        "not_after": iso_utc(NOW + HOUR)})
    assert (request.not_before, request.not_after) == (None, NOW + HOUR)


def test_window_may_not_reach_further_than_max_window_days() -> None:
    policy = CallbackPolicy(max_window_days=14)
    body = {"number": "2025550143", "queue": "sales"}
    assert validate({**body, "not_after": iso_utc(NOW + 14 * DAY)}, policy=policy).not_after == NOW + 14 * DAY
    error = refused({**body, "not_after": iso_utc(NOW + 14 * DAY + 1)}, policy=policy)
    assert (error.field, "14 days" in error.message) == ("not_after", True)
    assert refused({**body, "not_before": iso_utc(NOW + 15 * DAY)}, policy=policy).field == "not_before"


# ------------------------------------------------------------------------------ business hours
def test_a_window_inside_business_hours_is_kept() -> None:
    policy = CallbackPolicy(business_hours=PARIS_HOURS)
    # 2026-03-04 is a Wednesday; 11:00 UTC is 12:00 in Paris (UTC+1 in winter)
    request = validate({"number": "2025550143", "queue": "sales", "not_before": "2026-03-04T11:00:00Z",
                        "not_after": "2026-03-04T12:00:00Z"}, policy=policy)
    assert (request.not_before, request.deferred_to_opening) == (at("2026-03-04T11:00:00+00:00"), False)
    assert validate({"number": "2025550143", "queue": "sales"}, policy=policy).not_before is None


def test_now_outside_business_hours_moves_to_the_next_opening_across_the_dst_change() -> None:
    # Saturday 2026-03-28 20:00 in Paris (UTC+1); clocks go to UTC+2 at 02:00 on Sunday 29th, so
    # Monday's 09:00 opening is 07:00 UTC, not 08:00.
    policy = CallbackPolicy(business_hours=PARIS_HOURS)
    request = validate({"number": "2025550143", "queue": "sales"}, policy=policy,
                       now=at("2026-03-28T20:00:00+01:00"))
    assert request.not_before == at("2026-03-30T07:00:00+00:00")
    assert request.deferred_to_opening is True
    assert policy.business_hours.state_at(datetime.fromtimestamp(request.not_before).astimezone()) == "open"
    assert policy.business_hours.state_at(datetime.fromtimestamp(request.not_before - 60).astimezone()) == "closed"


def test_an_opening_on_the_day_of_the_dst_change_is_by_that_day_s_clocks() -> None:
    # Sunday 2026-03-29 starts in UTC+1 and opens at 09:00 UTC+2: 07:00 UTC (counting nine hours
    # from midnight would say 08:00)
    policy = CallbackPolicy(business_hours={"timezone": "Europe/Paris", "hours": {"sun": "09:00-12:00"}})
    request = validate({"number": "2025550143", "queue": "sales"}, policy=policy,
                       now=at("2026-03-28T20:00:00+01:00"))
    assert request.not_before == at("2026-03-29T07:00:00+00:00")


def test_a_window_starting_while_closed_starts_at_the_opening_in_it() -> None:
    policy = CallbackPolicy(business_hours=PARIS_HOURS)
    # from Saturday 13:00 Paris (closed since 12:00) until Monday 10:00 Paris (CEST): Monday 09:00
    request = validate({"number": "2025550143", "queue": "sales", "not_before": "2026-03-28T13:00:00+01:00",
                        "not_after": "2026-03-30T10:00:00+02:00"}, policy=policy,
                       now=at("2026-03-27T12:00:00+01:00"))
    assert request.not_before == at("2026-03-30T09:00:00+02:00")


def test_a_window_with_no_open_minute_is_refused() -> None:
    policy = CallbackPolicy(business_hours=PARIS_HOURS)
    # Saturday 12:00 .. Monday 09:00 Paris: closed throughout (Monday opens exactly at its end)
    error = refused({"number": "2025550143", "queue": "sales", "not_before": "2026-03-28T12:00:00+01:00",
                     "not_after": "2026-03-30T09:00:00+02:00"}, policy=policy, now=at("2026-03-27T12:00:00+01:00"))
    assert error.field == "not_before"
    assert "not open" in error.message and "Europe/Paris" in error.message


def test_holidays_and_the_horizon_can_leave_no_opening() -> None:
    holidays = [f"2026-03-{d:02d}" for d in range(4, 32)]
    policy = CallbackPolicy(max_window_days=7, business_hours={**PARIS_HOURS, "holidays": holidays})
    error = refused({"number": "2025550143", "queue": "sales"}, policy=policy)
    assert error.field is None and "not open" in error.message


def test_next_opening_autumn_dst_and_24x7() -> None:
    paris = Schedule(timezone="Europe/Paris", hours={"sun": "01:00-05:00"})
    # 2026-10-25: clocks go back at 03:00 CEST to 02:00 CET, so 01:00 is still CEST (UTC+2)
    assert next_opening(paris, at("2026-10-24T12:00:00+00:00"), at("2026-11-01T00:00:00+00:00")) == \
        at("2026-10-24T23:00:00+00:00")
    always = Schedule(timezone="UTC", hours="24x7", holidays=["2026-03-04"])
    assert next_opening(always, NOW, NOW + 3 * DAY) == at("2026-03-05T00:00:00+00:00")
    assert next_opening(always, NOW + DAY, NOW + 3 * DAY) == NOW + DAY


# ------------------------------------------------------------------------------ rate limit
def test_rate_limit_refuses_at_exactly_the_limit() -> None:
    policy = CallbackPolicy(rate_limit_count=3, rate_limit_seconds=3600)
    body = {"number": "2025550143", "queue": "sales"}
    assert validate(body, policy=policy, recent=2).number == "+12025550143"
    with pytest.raises(CallbackRateLimited) as caught:
        validate(body, policy=policy, recent=3)
    assert caught.value.field == "number"
    assert "at most 3 in 1 hour" in caught.value.message
    assert policy.rate_limit_since(NOW) == NOW - 3600


# ------------------------------------------------------------------------------ attempts
@pytest.mark.parametrize(("status", "outcome"), [
    ("ANSWER", "answered"), ("BUSY", "busy"), ("NOANSWER", "no_answer"), ("CANCEL", "no_answer"),
    ("CONGESTION", "failed"), ("CHANUNAVAIL", "failed"), ("", "failed"), ("DONTCALL", "failed"),
    ("answer", "answered"), (" answer ", "answered"),
])
def test_dial_outcome(status: str, outcome: str) -> None:
    assert dial_outcome(status) == outcome


def test_answered_completes() -> None:
    decision = after_attempt(CallbackPolicy(), callback(attempts=3), "answered", NOW)
    assert decision == AttemptDecision("completed", None, True)


def test_a_failed_attempt_is_retried_until_the_last_one() -> None:
    policy = CallbackPolicy(max_attempts=3, retry_after_seconds=300)
    assert after_attempt(policy, callback(attempts=2), "busy", NOW) == AttemptDecision("waiting", NOW + 300, False)
    assert after_attempt(policy, callback(attempts=3), "no_answer", NOW) == AttemptDecision("failed", None, True)
    with pytest.raises(ValueError):
        after_attempt(policy, callback(), "BUSY", NOW)


def test_not_after_stops_retries_as_expired() -> None:
    policy = CallbackPolicy(max_attempts=3, retry_after_seconds=300)
    assert after_attempt(policy, callback(not_after=NOW + 300), "busy", NOW) == \
        AttemptDecision("waiting", NOW + 300, False)
    assert after_attempt(policy, callback(not_after=NOW + 299), "busy", NOW) == AttemptDecision("expired", None, True)
    # attempts used up: failed, whatever the window
    assert after_attempt(policy, callback(attempts=3, not_after=NOW + 299), "failed", NOW).status == "failed"


def test_eligible_at_and_due() -> None:
    waiting = callback(status="waiting", attempts=0, agent_id=None)
    assert eligible_at(waiting) == NOW - 120 and due(waiting, NOW)
    later = dataclasses.replace(waiting, not_before=NOW + 60)
    assert eligible_at(later) == NOW + 60
    assert not due(later, NOW + 59) and due(later, NOW + 60)
    retry = dataclasses.replace(waiting, not_before=NOW + 60, next_attempt_at=NOW + 600)
    assert eligible_at(retry) == NOW + 600
    assert not due(dataclasses.replace(waiting, status="dialing"), NOW)
    closing = dataclasses.replace(waiting, not_after=NOW + 10)
    assert due(closing, NOW + 10) and not is_expired(closing, NOW + 10)
    assert not due(closing, NOW + 11) and is_expired(closing, NOW + 11)
    assert not is_expired(dataclasses.replace(closing, status="dialing"), NOW + 11)


def test_receipt_is_json_ready() -> None:
    web = callback(call_id="cb-7", id=7, source="web", status="waiting", not_before=at("2026-03-30T07:00:00Z"))
    assert receipt(web, deferred_to_opening=True) == {
        "id": 7, "status": "waiting", "queue": "sales", "number": "+12025550143",
        "not_before": "2026-03-30T07:00:00+00:00", "not_after": None, "deferred_to_opening": True}
