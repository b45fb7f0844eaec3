"""The engine's failure modes on the real stack: it is down, it is abused, or it is fed bad values."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time

import pytest

from callcenter.asterisk.ami import AmiClient, AmiValueError
from tests.stack.conftest import new_caller


def test_engine_down_sends_new_calls_to_the_fallback_queue(engine, phones, asterisk):
    phone = phones("1005", mode="answer_then_hangup", ring_delay_ms=200, talk_ms=1500)
    engine.stop()
    started = time.time()
    result = asyncio.run(new_caller("2", "13900000005", hold_ms=None).run(timeout=40))
    assert result.ok and result.received_bye_from_far_end, result.describe()
    assert phone.invites_received() >= 1 and phone.answered_calls() == 1, phone.log_tail()
    recordings = [p for p in asterisk.recordings_dir.glob("*-fallback.wav") if p.stat().st_mtime >= started]
    assert len(recordings) == 1, "fallback calls are recorded too"


def test_restarted_engine_readopts_a_caller_already_waiting(engine, phones):
    phone = phones("1006", mode="answer_then_hangup", ring_delay_ms=200, talk_ms=1000)
    caller = new_caller("2", "13900000009", hold_ms=None)

    async def scenario():
        run = asyncio.create_task(caller.run(timeout=60))
        call_id = await asyncio.to_thread(engine.call_id_for, "13900000009")
        first = await asyncio.to_thread(engine.wait_for_event, "queued", call_id=call_id, timeout=25)
        await asyncio.sleep(1)
        assert await asyncio.to_thread(engine.stop) == 0
        await asyncio.to_thread(engine.start)
        again = await asyncio.to_thread(engine.wait_for_event, "queued", call_id=first["call_id"],
                                        after=first["id"], timeout=10)
        engine.login("1006", "support")
        answered = await asyncio.to_thread(engine.wait_for_event, "answered", call_id=first["call_id"], timeout=15)
        return await run, first, again, answered

    result, first, again, answered = asyncio.run(scenario())
    assert result.ok and result.received_bye_from_far_end, result.describe()
    assert phone.answered_calls() == 1
    assert answered["agent_id"] == "1006"
    # the caller kept its place: its wait counts from when it first queued, before the restart
    assert answered["data"]["wait"] >= answered["ts"] - first["ts"] - 1.5
    assert not [e for e in engine.events(first["call_id"]) if e["kind"] == "fallback"]


def test_an_engine_stopped_while_an_agent_rings_stops_the_ringing_and_the_next_one_connects(engine, phones):
    """A phone left ringing by a stopping engine could be answered and bridged with nobody
    watching: the stopping engine cancels it, and the restarted one offers the caller again."""
    phone = phones("1008", mode="answer_then_hangup", ring_delay_ms=3000, talk_ms=1000)
    caller = new_caller("2", "13900000013", hold_ms=None)

    async def scenario():
        run = asyncio.create_task(caller.run(timeout=60))
        call_id = await asyncio.to_thread(engine.call_id_for, "13900000013")
        engine.login("1008", "support")
        await asyncio.to_thread(engine.wait_for_event, "offered", call_id=call_id, agent_id="1008")
        await phone.wait_for_invites(1)
        assert await asyncio.to_thread(engine.stop) == 0  # the phone is still ringing (3 s)
        cancelled = phone.cancels_received()
        await asyncio.to_thread(engine.start)
        engine.login("1008", "support")
        answered = await asyncio.to_thread(engine.wait_for_event, "answered", call_id=call_id, timeout=20)
        return await run, cancelled, answered

    result, cancelled, answered = asyncio.run(scenario())
    assert result.ok and result.received_bye_from_far_end, result.describe()
    assert cancelled == 1, "the stopping engine cancelled the ringing phone"
    assert answered["agent_id"] == "1008" and phone.answered_calls() == 1, phone.log_tail()


def test_caller_waiting_past_the_maximum_hold_goes_to_the_fallback_queue(engine, phones, settings):
    phone = phones("1005", mode="answer_then_hangup", ring_delay_ms=200, talk_ms=1000)
    result = asyncio.run(new_caller("2", "13900000010", hold_ms=None).run(timeout=settings.max_hold_seconds + 40))
    assert result.ok and result.received_bye_from_far_end, result.describe()
    assert phone.answered_calls() == 1
    exited = engine.wait_for_event("exited", call_id=engine.call_id_for("13900000010"))
    assert exited["data"]["reason"] == "fallback:max_hold"
    assert exited["data"]["wait"] >= settings.max_hold_seconds


def test_caller_already_waiting_goes_to_fallback_when_the_engine_dies(engine, phones, settings):
    phone = phones("1006", mode="answer_then_hangup", ring_delay_ms=200, talk_ms=1500)
    # nobody logged in: the caller waits in the hold loop inside Asterisk
    caller = new_caller("2", "13900000006", hold_ms=None)

    async def scenario():
        run = asyncio.create_task(caller.run(timeout=60))
        call_id = await asyncio.to_thread(engine.call_id_for, "13900000006")
        await asyncio.to_thread(engine.wait_for_event, "queued", call_id=call_id, timeout=25)
        engine.proc.kill()  # no clean shutdown: the engine simply vanishes
        killed_at = time.monotonic()
        await phone.wait_until(lambda p: p.invites_received() >= 1, timeout=settings.heartbeat_max_age + 10)
        return await run, time.monotonic() - killed_at

    result, _ = asyncio.run(scenario())
    assert result.ok and result.received_bye_from_far_end, result.describe()
    assert phone.answered_calls() == 1


def _health(engine) -> dict:
    return engine.api("GET", "/api/health", timeout=2)


def test_broken_fastagi_clients_do_not_stall_the_loop(engine, phones, settings):
    ticks_before = _health(engine)["loop_ticks"]
    # 1: half a header, then close
    with socket.create_connection((settings.agi_host, settings.agi_port)) as s:
        s.sendall(b"agi_network_script: ivr/main\nagi_chan")
    # 2: 1 MB of garbage with no blank line
    with socket.create_connection((settings.agi_host, settings.agi_port)) as s:
        try:
            s.sendall(b"x" * 1_048_576)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may cut us off once past its cap: that is the point
    # 3: half a header, then silence (held open past the header deadline)
    slow = socket.create_connection((settings.agi_host, settings.agi_port))
    slow.sendall(b"agi_network_script: ivr/main\n")

    deadline = time.monotonic() + settings.agi_header_timeout + 5
    while time.monotonic() < deadline and _health(engine)["agi_rejected_connections"] < 3:
        time.sleep(0.2)
    health = _health(engine)
    slow.close()
    assert health["agi_rejected_connections"] == 3
    assert health["loop_ticks"] > ticks_before, "the heartbeat task kept ticking"

    phone = phones("1007", mode="answer", ring_delay_ms=200)
    engine.login("1007", "sales")
    result = asyncio.run(new_caller("1", "13900000007", hold_ms=3000).run(timeout=40))
    assert result.ok, result.describe()
    assert phone.answered_calls() == 1
    answered = engine.wait_for_event("answered", agent_id="1007")
    assert answered["queue"] == "sales"


def test_ami_value_with_crlf_is_refused_before_anything_is_sent(asterisk, settings):
    async def scenario():
        ami = AmiClient(settings.ami_host, settings.ami_port, settings.ami_user, settings.ami_secret)
        await ami.connect()
        transport = ami._manager.protocol.transport
        written: list[bytes] = []
        real_write = transport.write
        transport.write = lambda data: (written.append(data), real_write(data))[1]
        try:
            with pytest.raises(AmiValueError, match="CallerID.*CR, LF or NUL"):
                await ami.action("Originate", Channel="PJSIP/agent1001", Context="cc-agent-connect", Exten="s",
                                 Priority=1, CallerID="x\r\nAction: Hangup\r\nChannel: /.*/")
            with pytest.raises(AmiValueError, match="Variable"):
                await ami.action("Setvar", Variable="CC_X\nAction: Logoff", Value="1")
            with pytest.raises(AmiValueError, match="NUL"):
                await ami.action("Setvar", Variable="CC_X", Value="a\x00b")
            assert written == [], "nothing reached Asterisk"
            pong = await ami.action("Ping")  # the connection is intact and still usable
            assert pong.get("Response") == "Success"
            assert len(written) == 1
        finally:
            ami.close()

    asyncio.run(scenario())


def test_a_frozen_asterisk_is_noticed_within_two_ping_intervals_and_the_engine_logs_in_again(
        engine_with_routing, asterisk, phones):
    """A peer that stops answering (a frozen Asterisk: its TCP connection stays open, half-open
    to us) must not look connected: an unanswered Ping drops the connection."""
    engine = engine_with_routing(None, ami_ping_interval=1)
    assert _health(engine)["ami_connected"] is True
    os.killpg(asterisk.proc.pid, signal.SIGSTOP)
    frozen = time.monotonic()
    try:
        while time.monotonic() - frozen < 10 and _health(engine)["ami_connected"]:
            time.sleep(0.1)
        noticed = time.monotonic() - frozen
        health = _health(engine)
    finally:
        os.killpg(asterisk.proc.pid, signal.SIGCONT)
    assert health["ami_connected"] is False and health["ok"] is False and health["parts"]["ami"]["ok"] is False
    assert noticed <= 2 * 1 + 0.5, f"noticed after {noticed:.1f} s, more than two ping intervals"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not _health(engine)["ami_connected"]:
        time.sleep(0.2)
    assert _health(engine)["ok"] is True, "logged in again once Asterisk answers"
    # and calls are served again
    phone = phones("1009", mode="answer", ring_delay_ms=200, talk_ms=1000)
    engine.login("1009", "support")
    result = asyncio.run(new_caller("2", "13900000017", hold_ms=3000).run(timeout=40))
    assert result.ok and phone.answered_calls() == 1, result.describe()
