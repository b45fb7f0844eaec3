"""The SIPp harness against itself: real sipp callers calling real sipp phones on 127.0.0.1.

No Asterisk here: callers dial a phone directly (target port = the phone's port). Every port used
lies in 16000-16999. Each test is bounded well under 20 s by sipp run timeouts and ``_run``.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import shutil
import socket
import struct
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from callcenter.sipp.dtmf import key_sequence_pcap, read_pcap, rtp_offset
from callcenter.sipp import (
    MIN_KEY_GAP_MS,
    SippCaller,
    SippError,
    SippPhone,
    agent_scenario,
    caller_scenario,
    dtmf_pcap,
    parse_message_log,
    validate_keys,
)
from callcenter.sipp.runner import calls_from_messages, udp_port_free

needs_sipp = pytest.mark.skipif(shutil.which("sipp") is None,
                                reason="sipp not installed (apt-get install sip-tester)")
HOST = "127.0.0.1"
RFC2833_EVENT = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}


def _run(coro: Coroutine[Any, Any, Any], limit: float = 19.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, limit))


# ------------------------------------------------------------------------------------- fixtures
@dataclass
class Ports:
    """A block of 30 loopback UDP ports, all free when handed out.

    0-1 phone SIP, 2-3 phone control, 4-5 caller SIP, 6-7 caller control, 8-9 spare,
    10/14 phone media and 20/24 caller media (sipp also binds media + 2).
    """

    base: int

    def __getitem__(self, i: int) -> int:
        return self.base + i


_blocks = itertools.count(16000, 30)


@pytest.fixture
def ports() -> Ports:
    for base in _blocks:
        if base + 30 > 17000:
            break
        if all(udp_port_free(HOST, base + i) for i in range(30)):
            return Ports(base)
    pytest.fail("no free block of ports left in 16000-16999")


@pytest.fixture
def make_phone(tmp_path: Path, ports: Ports) -> Iterator[Callable[..., SippPhone]]:
    """Start phones (at most two) on the test's port block; all are stopped after the test."""
    phones: list[SippPhone] = []

    def start(mode: str = "answer", **kwargs: Any) -> SippPhone:
        n = len(phones)
        assert n < 2, "two phones per test at most"
        phone = SippPhone(
            f"agent{1001 + n}", sip_port=ports[n], control_port=ports[2 + n], media_port=ports[10 + 4 * n],
            mode=mode, workdir=tmp_path / f"phone{n}", **kwargs)
        phones.append(phone)
        phone.start()
        return phone

    yield start
    for phone in phones:
        phone.stop()
        assert not phone.running


def _caller(ports: Ports, phone: SippPhone, scenario: str, tmp_path: Path, n: int = 0) -> SippCaller:
    """Caller n (0 or 1) of this test, dialling the phone directly."""
    assert n < 2
    return SippCaller(
        scenario, local_port=ports[4 + n], control_port=ports[6 + n], media_port=ports[20 + 4 * n],
        target_port=phone.sip_port, service=phone.name, workdir=tmp_path / f"caller{n}")


# ------------------------------------------------------------------------------------- RTP sniffer
class RtpSniffer:
    """Collects RTP packets sent to one UDP port on lo (AF_PACKET: needs root, like sipp's pcap play)."""

    def __init__(self, port: int):
        self.port = port
        self.packets: list[tuple[int, int, bytes]] = []  # (payload type, timestamp, payload)
        self.error: str | None = None
        self.sock: socket.socket | None = None
        try:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
            self.sock.bind(("lo", 0))
            self.sock.settimeout(0.1)
        except (AttributeError, OSError) as exc:
            self.error = f"cannot sniff lo: {exc}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> RtpSniffer:
        if self.sock is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.sock is not None:
            self._thread.join(2)
            self.sock.close()

    def _loop(self) -> None:
        assert self.sock is not None
        while not self._stop.is_set():
            try:
                frame, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            if addr[2] == socket.PACKET_OUTGOING:  # lo shows each packet going out and coming in
                continue
            ip = frame[14:]
            if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
                continue
            udp = ip[(ip[0] & 15) * 4:]
            if struct.unpack(">H", udp[2:4])[0] != self.port or len(udp) < 8 + 12:
                continue
            rtp = udp[8:]
            self.packets.append((rtp[1] & 0x7F, struct.unpack(">I", rtp[4:8])[0], rtp[12:]))

    def dtmf_keys(self) -> list[int]:
        """RFC 2833 events whose end packet arrived, once per press (end packets are sent 3 times)."""
        seen: list[tuple[int, int]] = []
        for pt, ts, payload in self.packets:
            if pt == 101 and len(payload) >= 4 and payload[1] & 0x80 and (ts, payload[0]) not in seen:
                seen.append((ts, payload[0]))
        return [event for _, event in seen]

    def count(self, payload_type: int) -> int:
        return sum(1 for pt, _, _ in self.packets if pt == payload_type)


# ------------------------------------------------------------------------------------- rendering
def test_invalid_keys_raise_value_error() -> None:
    for keys in ("12a", "1 2", "A", "+", "٣"):
        with pytest.raises(ValueError):
            caller_scenario(keys)
        with pytest.raises(ValueError):
            validate_keys(keys)
    assert validate_keys("0123456789*#") == "0123456789*#"


def test_invalid_timings_and_numbers_raise() -> None:
    with pytest.raises(ValueError):
        caller_scenario("12", key_gap_ms=MIN_KEY_GAP_MS - 1)
    with pytest.raises(ValueError):
        caller_scenario("1", answer_wait_ms=-1)
    with pytest.raises(ValueError):
        caller_scenario("1", caller_number='06"><x')
    with pytest.raises(ValueError):
        agent_scenario("ring_forever")
    with pytest.raises(ValueError):
        agent_scenario("answer_then_hangup", talk_ms=0)


@needs_sipp  # (the pcaps come with sipp's package)
def test_caller_scenario_offers_pcma_and_plays_keys_in_order() -> None:
    text = caller_scenario("1*#0", key_gap_ms=300, answer_wait_ms=500, hold_ms=2000, caller_number="0611223344")
    root = ET.fromstring(text.split("\n", 2)[2])  # well-formed XML (DOCTYPE line dropped)
    plays = [e.get("play_pcap_audio") for e in root.iter("exec")]
    assert plays[1:] == ["/usr/share/sip-tester/g711a.pcap"]
    assert rtp_events(Path(plays[0])) == [("1", 0.0), ("*", 0.3), ("#", 0.6), ("0", 0.9)]
    invite = next(e.text for e in root.iter("send") if e.text and "INVITE sip:" in e.text)
    for line in ("m=audio [media_port] RTP/AVP 8 101", "a=rtpmap:8 PCMA/8000",
                 "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16"):
        assert line in invite
    assert '"0611223344" <sip:0611223344@[local_ip]:[local_port]>' in invite
    # pauses: answer wait, then the keys' time (one gap each, the last before the audio), then the hold
    waits = [int(e.get("timeout", 0)) for e in root.iter("recv") if e.get("request") == "BYE"]
    assert waits == [500, 1200, 2000]


def rtp_events(pcap: Path) -> list[tuple[str, float]]:
    """(key, start in seconds from the first) per telephone event in a key-sequence recording;
    checks that sequence numbers and timestamps only ever increase (Asterisk drops a key whose
    numbers do not)."""
    _header, records = read_pcap(pcap)
    events: list[tuple[str, float]] = []
    last_seq = last_ts = -1
    keys = "0123456789*#"
    for when, frame in records:
        offset = rtp_offset(frame)
        seq, ts = struct.unpack_from(">HI", frame, offset + 2)
        assert seq == last_seq + 1 or last_seq == -1, "sequence numbers run on by one"
        assert ts >= last_ts
        if ts != last_ts:
            events.append((keys[frame[offset + 12]], round(when - records[0][0], 2)))
        last_seq, last_ts = seq, ts
    return events


@needs_sipp
def test_a_repeated_or_lower_key_is_a_new_event_in_the_recording(tmp_path) -> None:
    pcap = key_sequence_pcap([dtmf_pcap(k) for k in "2210"], 250, cache_dir=tmp_path)
    assert rtp_events(pcap) == [("2", 0.0), ("2", 0.25), ("1", 0.5), ("0", 0.75)]
    assert key_sequence_pcap([dtmf_pcap(k) for k in "2210"], 250, cache_dir=tmp_path) == pcap  # reused


@needs_sipp
def test_agent_scenarios_per_mode() -> None:
    answer = agent_scenario("answer", ring_delay_ms=700)
    hangup = agent_scenario("answer_then_hangup", talk_ms=1234)
    never = agent_scenario("never_answer")
    for text in (answer, hangup, never):
        ET.fromstring(text.split("\n", 2)[2])
        assert "SIP/2.0 180 Ringing" in text and "SIP/2.0 487 Request Terminated" in text
    for text in (answer, hangup):
        assert "m=audio [media_port] RTP/AVP 8 101" in text and "a=fmtp:101 0-16" in text
        assert "g711a.pcap" in text
    assert "application/sdp" not in never and "g711a.pcap" not in never  # never answers
    assert "BYE [$far_contact] SIP/2.0" in hangup and 'timeout="1234"' in hangup
    assert "BYE [" not in answer and "far_contact" not in answer
    assert 'timeout="700"' in answer


def test_parse_message_log_groups_calls_and_ignores_retransmissions() -> None:
    def block(ts: str, direction: str, msg: str) -> str:
        head = "UDP message received [100] bytes :" if direction == "in" else "UDP message sent (100 bytes):"
        return f"----------------------------------------------- 2026-01-01 10:00:{ts}\n{head}\n\n{msg}\n\n"

    invite = ("INVITE sip:agent1001@127.0.0.1:5101 SIP/2.0\ni: abc@x\nf: \"061\" <sip:061@127.0.0.1>;tag=a\n"
              "t: <sip:agent1001@127.0.0.1>\nCSeq: 7 INVITE\nContent-Length: 0")
    ok = "SIP/2.0 200 OK\nCall-ID: abc@x\nTo: <sip:agent1001@127.0.0.1>;tag=b\nCSeq: 7 INVITE\nContent-Length: 0"
    bye = "BYE sip:agent1001@127.0.0.1:5101 SIP/2.0\nCall-ID: abc@x\nCSeq: 8 BYE\nContent-Length: 0"
    text = (block("00.000001", "in", invite) + block("00.500000", "in", invite) + block("01.000000", "out", ok)
            + block("02.000000", "in", bye) + "Discarded message for new calls while quitting\n")
    messages = parse_message_log(text)
    assert [m.method or m.status for m in messages] == ["INVITE", "INVITE", 200, "BYE"]
    assert messages[0].call_id == "abc@x" and messages[0].cseq == (7, "INVITE") and messages[2].to_tag == "b"
    calls = calls_from_messages(messages)
    assert len(calls) == 1
    assert calls[0].caller == "061" and calls[0].answered_at is not None and calls[0].ended_by == "far_end"
    assert (calls[0].answered_at - calls[0].invited_at).total_seconds() == pytest.approx(0.999999)


# ------------------------------------------------------------------------------------- real calls
@needs_sipp
def test_caller_presses_keys_and_hangs_up_on_answering_phone(make_phone: Callable[..., SippPhone],
                                                            ports: Ports, tmp_path: Path) -> None:
    phone = make_phone("answer", ring_delay_ms=200)
    scenario = caller_scenario("12", key_gap_ms=250, answer_wait_ms=300, hold_ms=1500, caller_number="0611000001")

    async def call() -> Any:
        with RtpSniffer(phone.media_port) as sniffer:
            result = await _caller(ports, phone, scenario, tmp_path).run(timeout=10)
            await phone.wait_until(lambda p: p.calls() and p.calls()[0].ended_at is not None, 3, "BYE")
        return result, sniffer

    result, sniffer = _run(call())
    assert result.ok, result.describe()
    assert result.answered and result.sent_bye and not result.received_bye_from_far_end
    ack, bye = result.first("sent", "ACK"), result.first("sent", "BYE")
    assert ack and bye
    # answer wait + 2 key gaps + hold, all after the ACK
    assert (bye.at - ack.at).total_seconds() >= (300 + 2 * 250 + 1500) / 1000 - 0.05
    assert phone.invites_received() == 1 and phone.answered_calls() == 1 and phone.cancels_received() == 0
    (seen,) = phone.calls()
    assert seen.caller == "0611000001" and seen.ended_by == "far_end"
    assert (seen.answered_at - seen.invited_at).total_seconds() >= 0.2  # ring_delay_ms
    # what went over the wire to the phone's media port: keys 1 then 2 as RFC 2833, then PCMA audio
    if sniffer.error:
        pytest.skip(f"SIP checked, RTP not: {sniffer.error}")
    assert sniffer.dtmf_keys() == [RFC2833_EVENT["1"], RFC2833_EVENT["2"]]
    assert sniffer.count(8) > 20


@needs_sipp
def test_phone_serves_many_calls_in_server_mode(make_phone: Callable[..., SippPhone],
                                               ports: Ports, tmp_path: Path) -> None:
    phone = make_phone("answer", ring_delay_ms=100)
    scenario = caller_scenario("", answer_wait_ms=0, hold_ms=400, play_audio=False)

    async def calls() -> list[Any]:
        first = await _caller(ports, phone, scenario, tmp_path, 0).run(timeout=8)
        second = await _caller(ports, phone, scenario, tmp_path, 1).run(timeout=8)
        both = await asyncio.gather(_caller(ports, phone, scenario, tmp_path / "a", 0).run(timeout=8),
                                    _caller(ports, phone, scenario, tmp_path / "b", 1).run(timeout=8))
        await phone.wait_for_invites(4, timeout=3)
        return [first, second, *both]

    results = _run(calls())
    for result in results:
        assert result.ok, result.describe()
    assert phone.running
    assert phone.invites_received() == 4 and phone.answered_calls() == 4
    assert len({c.call_id for c in phone.calls()}) == 4


@needs_sipp
def test_phone_hangs_up_after_talk_time_and_caller_ends_ok(make_phone: Callable[..., SippPhone],
                                                         ports: Ports, tmp_path: Path) -> None:
    phone = make_phone("answer_then_hangup", ring_delay_ms=100, talk_ms=1000)
    scenario = caller_scenario("", answer_wait_ms=0, hold_ms=None, max_wait_for_bye_ms=8000,
                               caller_number="0622")
    result = _run(_caller(ports, phone, scenario, tmp_path).run(timeout=12))
    assert result.ok, result.describe()
    assert result.received_bye_from_far_end and not result.sent_bye
    assert phone.hangups_sent() == 1 and phone.answered_calls() == 1
    # The phone's BYE is in the caller's dialog: request-URI = the caller's Contact, tags swapped.
    invite = result.first("sent", "INVITE")
    ok = result.first("received", status=200)
    bye = result.first("received", "BYE")
    assert invite and ok and bye
    contact = re.search(r"<(sip:[^;>]+)", invite.headers["contact"])
    assert contact and bye.start_line == f"BYE {contact.group(1)} SIP/2.0"
    caller_tag = re.search(r"tag=([^;>\s]+)", invite.headers["from"])
    assert caller_tag and bye.to_tag == caller_tag.group(1)
    assert ok.to_tag and f"tag={ok.to_tag}" in bye.headers["from"]
    assert bye.call_id == invite.call_id
    assert 0.95 <= (bye.at - ok.at).total_seconds() < 2.5  # talk_ms


@needs_sipp
def test_far_end_bye_during_hold_is_a_successful_call(make_phone: Callable[..., SippPhone],
                                                     ports: Ports, tmp_path: Path) -> None:
    phone = make_phone("answer_then_hangup", ring_delay_ms=0, talk_ms=600)
    scenario = caller_scenario("5", key_gap_ms=200, answer_wait_ms=0, hold_ms=8000)
    result = _run(_caller(ports, phone, scenario, tmp_path).run(timeout=12))
    assert result.ok, result.describe()
    assert result.received_bye_from_far_end and not result.sent_bye
    assert result.duration_s < 5


@needs_sipp
def test_never_answer_phone_is_cancelled(make_phone: Callable[..., SippPhone],
                                         ports: Ports, tmp_path: Path) -> None:
    phone = make_phone("never_answer")
    scenario = caller_scenario("1", cancel_after_ms=800)
    result = _run(_caller(ports, phone, scenario, tmp_path).run(timeout=10))
    assert result.ok, result.describe()
    assert result.sent_cancel and not result.answered and result.invite_final_status == 487
    assert [m.method or m.status for m in result.messages] == ["INVITE", 180, "CANCEL", 200, 487, "ACK"]
    assert phone.invites_received() == 1 and phone.cancels_received() == 1 and phone.answered_calls() == 0
    # the CANCEL and the ACK of the 487 share the INVITE's branch, as Asterisk needs to match them
    phone_msgs = [m for m in phone.messages() if m.direction == "received"]
    branches = {m.method: re.search(r"branch=([^;\s]+)", m.headers["via"]).group(1)  # type: ignore[union-attr]
                for m in phone_msgs}
    assert branches["INVITE"] == branches["CANCEL"] == branches["ACK"]
    (seen,) = phone.calls()
    assert seen.cancelled_at and (seen.cancelled_at - seen.invited_at).total_seconds() >= 0.75


@needs_sipp
def test_answer_phone_cancelled_while_ringing(make_phone: Callable[..., SippPhone],
                                              ports: Ports, tmp_path: Path) -> None:
    phone = make_phone("answer", ring_delay_ms=4000)
    result = _run(_caller(ports, phone, caller_scenario("", cancel_after_ms=400), tmp_path).run(timeout=10))
    assert result.ok, result.describe()
    assert result.invite_final_status == 487
    assert phone.cancels_received() == 1 and phone.answered_calls() == 0


@needs_sipp
def test_phone_answers_reinvite_and_keeps_the_call(make_phone: Callable[..., SippPhone],
                                                   ports: Ports, tmp_path: Path) -> None:
    phone = make_phone("answer", ring_delay_ms=0)
    base = caller_scenario("", answer_wait_ms=0, hold_ms=800, play_audio=False)
    reinvite = """
  <send retrans="500"><![CDATA[

      INVITE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:0600000001@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: [$far_to]
      Call-ID: [call_id]
      CSeq: 3 INVITE
      Contact: <sip:0600000001@[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=- 1 2 IN IP4 [local_ip]
      s=-
      c=IN IP4 [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8
      a=rtpmap:8 PCMA/8000

  ]]></send>
  <recv response="200"/>
  <send><![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:0600000001@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: [$far_to]
      Call-ID: [call_id]
      CSeq: 3 ACK
      Content-Length: 0

  ]]></send>
"""
    cut = base.index('  <recv request="BYE"')
    result = _run(_caller(ports, phone, base[:cut] + reinvite + base[cut:], tmp_path).run(timeout=10))
    assert result.ok, result.describe()
    assert [m.method or m.status for m in result.messages] == [
        "INVITE", 180, 200, "ACK", "INVITE", 200, "ACK", "BYE", 200]
    assert phone.invites_received() == 1 and phone.answered_calls() == 1


@needs_sipp
def test_phone_answers_options_without_counting_a_call(make_phone: Callable[..., SippPhone], ports: Ports) -> None:
    phone = make_phone("answer")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, ports[8]))
        sock.settimeout(3)
        sock.sendto((
            f"OPTIONS {phone.contact} SIP/2.0\r\nVia: SIP/2.0/UDP {HOST}:{ports[8]};branch=z9hG4bK-opt1\r\n"
            f"From: <sip:probe@{HOST}:{ports[8]}>;tag=p1\r\nTo: <{phone.contact}>\r\nCall-ID: opt-1@test\r\n"
            "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode(), (HOST, phone.sip_port))
        reply = sock.recvfrom(4096)[0].decode()
    assert reply.startswith("SIP/2.0 200 OK") and "opt-1@test" in reply
    time.sleep(0.2)
    assert phone.running and phone.invites_received() == 0


@needs_sipp
def test_caller_timeout_kills_sipp_and_ends_the_call(make_phone: Callable[..., SippPhone],
                                                     ports: Ports, tmp_path: Path) -> None:
    phone = make_phone("answer", ring_delay_ms=0)
    caller = _caller(ports, phone, caller_scenario("", hold_ms=None, play_audio=False), tmp_path)

    async def call() -> Any:
        result = await caller.run(timeout=1.5)
        await phone.wait_until(lambda p: p.calls() and p.calls()[0].ended_at is not None, 3, "BYE")
        return result

    result = _run(call())
    assert result.timed_out and not result.ok and result.exit_code is None
    assert result.teardown == "BYE"
    assert phone.calls()[0].ended_by == "far_end"
    assert udp_port_free(HOST, caller.local_port), "the caller's sipp is still bound to its port"


@needs_sipp
def test_phone_lifecycle_and_port_clash(make_phone: Callable[..., SippPhone], ports: Ports,
                                        tmp_path: Path) -> None:
    phone = make_phone("answer")
    assert phone.running and not udp_port_free(HOST, phone.sip_port)
    clash = SippPhone("agent2001", sip_port=phone.sip_port, media_port=ports[28], control_port=ports[9],
                      workdir=tmp_path / "clash")
    with pytest.raises(SippError, match="already in use"):
        clash.start()
    # sipp also binds media_port + 2 (video) and dies if it cannot: refused up front
    video_clash = SippPhone("agent2002", sip_port=ports[1], media_port=phone.media_port - 2,
                            control_port=ports[3], workdir=tmp_path / "video-clash")
    with pytest.raises(SippError, match=f"{phone.media_port} is already in use"):
        video_clash.start()
    assert not video_clash.running
    with pytest.raises(TimeoutError):
        _run(phone.wait_for_invites(1, timeout=0.3))
    phone.stop()
    assert not phone.running and udp_port_free(HOST, phone.sip_port)
    with pytest.raises(SippError, match="not running"):
        _run(phone.wait_for_invites(1, timeout=1))
