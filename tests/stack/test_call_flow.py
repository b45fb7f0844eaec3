"""One call all the way through, on the real Asterisk with SIPp callers and agent phones."""

from __future__ import annotations

import array
import asyncio
import wave

from tests.stack.conftest import new_caller


def kinds(engine, call_id: str) -> list[str]:
    return [row["kind"] for row in engine.events(call_id)]


def assert_in_order(seen: list[str], expected: list[str]) -> None:
    position = 0
    for kind in expected:
        assert kind in seen[position:], f"{kind!r} missing after position {position} in {seen}"
        position = seen.index(kind, position) + 1


def peak_amplitude(path) -> tuple[float, int]:
    with wave.open(str(path)) as wav:
        assert wav.getsampwidth() == 2, "MixMonitor writes 16-bit WAV"
        frames = wav.readframes(wav.getnframes())
        samples = array.array("h", frames)
        return wav.getnframes() / wav.getframerate(), max((abs(s) for s in samples), default=0)


def test_caller_presses_2_and_talks_to_the_support_agent(engine, phones, asterisk):
    phone = phones("1001", mode="answer", ring_delay_ms=300)
    engine.login("1001", "support")
    result = asyncio.run(new_caller("2", "13900000001", hold_ms=5000).run(timeout=40))
    assert result.ok, result.describe()
    assert result.sent_bye and not result.received_bye_from_far_end, "the caller hangs up, not Asterisk"
    assert phone.invites_received() == 1 and phone.answered_calls() == 1, phone.log_tail()

    call_id = engine.call_id_for("13900000001")
    engine.wait_for_event("wrapup_done", call_id=call_id, agent_id="1001")
    assert_in_order(kinds(engine, call_id), [
        "call_arrived", "ivr_menu_choice", "ivr_queue", "queued", "offered", "answered", "ended", "wrapup_done"])
    choice = next(r for r in engine.events(call_id) if r["kind"] == "ivr_menu_choice")
    assert choice["data"] == {"node": "welcome", "key": "2", "target": "support"}
    answered = next(r for r in engine.events(call_id) if r["kind"] == "answered")
    assert (answered["queue"], answered["agent_id"]) == ("support", "1001")
    queued = next(r for r in engine.events(call_id) if r["kind"] == "queued")
    # the wait is measured from when the caller entered the hold loop, to the millisecond
    assert abs(answered["data"]["wait"] - (answered["ts"] - queued["ts"])) < 0.15
    ended = next(r for r in engine.events(call_id) if r["kind"] == "ended")
    assert ended["data"]["talk"] > 2.0

    recording = asterisk.recordings_dir / f"{call_id}.wav"
    assert recording.exists(), f"no recording at {recording}"
    seconds, peak = peak_amplitude(recording)
    assert seconds > 2.0, f"recording is only {seconds:.1f} s"
    assert peak > 1000, f"recording is silent (peak {peak})"
    agents = {a["agent_id"]: a for a in engine.api("GET", "/api/agents")}
    assert agents["1001"]["state"] == "available" and agents["1001"]["calls_answered"] == 1


def test_ring_no_answer_moves_the_call_to_the_next_agent(engine, phones, asterisk):
    silent = phones("1001", mode="never_answer")
    answering = phones("1002", mode="answer", ring_delay_ms=300)
    engine.login("1001", "support")  # logged in first: longest idle, offered first
    engine.login("1002", "support")
    result = asyncio.run(new_caller("2", "13900000002", hold_ms=9000).run(timeout=45))
    assert result.ok, result.describe()
    assert result.sent_bye and not result.received_bye_from_far_end, "the caller stayed connected throughout"
    assert silent.invites_received() == 1 and silent.answered_calls() == 0
    assert silent.cancels_received() == 1, "the unanswered phone stops ringing"
    assert answering.answered_calls() == 1, answering.log_tail()

    call_id = engine.call_id_for("13900000002")
    engine.wait_for_event("ended", call_id=call_id)
    events = engine.events(call_id)
    assert_in_order([e["kind"] for e in events], ["queued", "offered", "ring_no_answer", "offered", "answered"])
    offers = [e["agent_id"] for e in events if e["kind"] == "offered"]
    assert offers == ["1001", "1002"]
    assert [e["agent_id"] for e in events if e["kind"] == "answered"] == ["1002"]
    paused = [e for e in engine.events() if e["kind"] == "agent_state" and e["agent_id"] == "1001"]
    assert paused[-1]["data"] == {"state": "paused", "reason": "ring-no-answer"}
    agents = {a["agent_id"]: a for a in engine.api("GET", "/api/agents")}
    assert agents["1001"]["state"] == "paused" and agents["1001"]["reason"] == "ring-no-answer"
    assert (asterisk.recordings_dir / f"{call_id}.wav").exists()


def test_no_key_retries_the_menu_then_takes_the_default(engine, phones):
    phone = phones("1003", mode="answer_then_hangup", ring_delay_ms=200, talk_ms=1000)
    engine.login("1003", "support")
    result = asyncio.run(new_caller("", "13900000003", hold_ms=None).run(timeout=70))
    assert result.ok and result.received_bye_from_far_end, result.describe()
    call_id = engine.call_id_for("13900000003")
    ivr = [e["kind"] for e in engine.events(call_id) if e["kind"].startswith("ivr_")]
    assert ivr == ["ivr_menu_timeout"] * 3 + ["ivr_menu_default", "ivr_queue"]
    assert phone.answered_calls() == 1
    assert engine.wait_for_event("answered", call_id=call_id)["agent_id"] == "1003"


def test_invalid_key_retries_the_menu_then_takes_the_default(engine, phones):
    phones("1004", mode="answer_then_hangup", ring_delay_ms=200, talk_ms=1000)
    engine.login("1004", "support")
    result = asyncio.run(new_caller("9", "13900000004", hold_ms=None).run(timeout=70))
    assert result.ok and result.received_bye_from_far_end, result.describe()
    call_id = engine.call_id_for("13900000004")
    ivr = [(e["kind"], e["data"].get("key")) for e in engine.events(call_id) if e["kind"].startswith("ivr_")]
    assert ivr == [("ivr_menu_invalid", "9"), ("ivr_menu_timeout", None), ("ivr_menu_timeout", None),
                   ("ivr_menu_default", None), ("ivr_queue", None)]
    assert engine.wait_for_event("answered", call_id=call_id)["queue"] == "support"
