"""Render the SIPp XML scenarios for callers (UAC) and agent phones (UAS).

Scenarios are rendered per use as plain text; the runner writes them into its own temp folder. Every
message that SIPp sends is written out in full here (no embedded scenarios) so that what goes to
Asterisk is visible in one place. SIPp keywords such as ``[local_ip]`` or ``[$var]`` are left for
SIPp to fill in; only the values we own (keys, timings, numbers, pcap paths) are put in by Python.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from xml.sax.saxutils import quoteattr

from callcenter.sipp.dtmf import key_sequence_pcap

#: Where Debian's sip-tester package installs its RTP recordings.
PCAP_DIR = Path("/usr/share/sip-tester")

#: G.711 A-law (payload type 8) speech, about 7 s long.
AUDIO_PCAP = "g711a.pcap"

_KEY_PCAP_SUFFIX = {**{d: d for d in "0123456789"}, "*": "star", "#": "pound"}

#: Each DTMF recording lasts ~140 ms, and SIPp cancels a call's still-playing pcap when the next
#: play_pcap_audio starts, which would cut off the key's end packets; so keys (and the audio after
#: the last key) must be at least this far apart.
MIN_KEY_GAP_MS = 200

_CALLER_NUMBER = re.compile(r"^[A-Za-z0-9+._-]{1,32}$")
# A display name goes into a SIP quoted-string inside SIPp's CDATA: no quote, backslash, SIPp's
# [keyword] brackets, or line breaks; anything else printable (markup included) is fine.
_CALLER_NAME = re.compile(r'^[^"\\\[\]\r\n\x00-\x1f]{1,64}$')
_SIP_USER = _CALLER_NUMBER

# The INVITE, a CANCEL of it and the ACK of a non-2xx answer must share one Via branch (RFC 3261
# 9.1, 17.1.1.3): Asterisk matches the CANCEL to the INVITE transaction by it. SIPp's own [branch]
# changes with every message, so callers use this fixed per-call branch for those three.
_INVITE_BRANCH = "z9hG4bK-cc-[pid]-[call_number]-inv"

# The phone's To tag, repeated in every response to the INVITE and as From tag of its own BYE.
_PHONE_TAG = "[pid]SIPpTag01[call_number]"

_SDP = """v=0
o=- 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=callcenter-sipp
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv"""


class PhoneMode(StrEnum):
    """What an agent phone does with each INVITE."""

    ANSWER = "answer"
    ANSWER_THEN_HANGUP = "answer_then_hangup"
    NEVER_ANSWER = "never_answer"


def validate_keys(keys: str) -> str:
    """Return ``keys`` if it only holds DTMF keys 0-9, * and #; raise ValueError otherwise."""
    bad = sorted({k for k in keys if k not in _KEY_PCAP_SUFFIX})
    if bad:
        raise ValueError(f"invalid DTMF keys {bad!r} in {keys!r}: only 0-9, * and # can be pressed")
    return keys


def dtmf_pcap(key: str, pcap_dir: Path = PCAP_DIR) -> Path:
    """The RFC 2833 recording for one key ('*' -> star, '#' -> pound)."""
    validate_keys(key)
    if len(key) != 1:
        raise ValueError(f"dtmf_pcap takes one key, got {key!r}")
    return pcap_dir / f"dtmf_2833_{_KEY_PCAP_SUFFIX[key]}.pcap"


# ---------------------------------------------------------------------------------------- helpers
def _ms(name: str, value: int, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum} (milliseconds), got {value!r}")
    return value


def _pcap(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: install the sip-tester package")
    return str(path)


def _attrs(**attrs: object) -> str:
    parts = []
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        parts.append(f"{key}={quoteattr('true' if value is True else str(value))}")
    return " ".join(parts)


def _send(body: str, **attrs: object) -> str:
    lines = "\n".join("      " + line if line else "" for line in body.strip("\n").splitlines())
    open_tag = f"<send {_attrs(**attrs)}>" if _attrs(**attrs) else "<send>"
    return f"  {open_tag}\n    <![CDATA[\n\n{lines}\n\n    ]]>\n  </send>"


def _recv(actions: str = "", **attrs: object) -> str:
    if actions:
        return f"  <recv {_attrs(**attrs)}>\n    <action>\n{actions}\n    </action>\n  </recv>"
    return f"  <recv {_attrs(**attrs)}/>"


def _play(pcap: str) -> str:
    # exec play_pcap_audio returns at once (a media thread sends the RTP to the far end's SDP address)
    return f"  <nop>\n    <action>\n      <exec play_pcap_audio={quoteattr(pcap)}/>\n    </action>\n  </nop>"


def _label(name: str) -> str:
    return f'  <label id="{name}"/>'


def _jump(name: str) -> str:
    return f'  <nop next="{name}"/>'


def _scenario(name: str, elements: list[str]) -> str:
    body = "\n\n".join(elements)
    return (
        '<?xml version="1.0" encoding="ISO-8859-1" ?>\n'
        '<!DOCTYPE scenario SYSTEM "sipp.dtd">\n'
        "<!-- rendered by callcenter.sipp.scenarios; do not edit -->\n"
        f"<scenario name={quoteattr(name)}>\n\n{body}\n\n</scenario>\n"
    )


def _ok_to_last_request(contact: str, to_tag: str = "") -> str:
    """A 200 OK without body echoing the last received request (BYE, CANCEL)."""
    return _send(f"""
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]{f";tag={to_tag}" if to_tag else ""}
[last_Call-ID:]
[last_CSeq:]
Contact: {contact}
Content-Length: 0
""")


def _cancelled(contact: str) -> list[str]:
    """Label ``cancelled``: a UAS's answer to a CANCEL of the ringing INVITE (whose CSeq number
    the scenario captured as ``invite_cseq``): 200 to the CANCEL, 487 to the INVITE, its ACK."""
    return [
        _label("cancelled"),
        # The CANCEL's To has no tag; its 200 should carry the tag of our 180 (RFC 3261 9.2).
        _ok_to_last_request(contact, to_tag=_PHONE_TAG),
        _send(f"""
SIP/2.0 487 Request Terminated
[last_Via:]
[last_From:]
[last_To:];tag={_PHONE_TAG}
[last_Call-ID:]
CSeq: [$invite_cseq] INVITE
Contact: {contact}
Content-Length: 0
""", retrans=500),
        _recv(request="ACK", crlf=True),
    ]


# ---------------------------------------------------------------------------------------- caller
def caller_scenario(
    keys: str = "",
    key_gap_ms: int = 400,
    answer_wait_ms: int = 1000,
    hold_ms: int | None = 3000,
    caller_number: str = "0600000001",
    *,
    cancel_after_ms: int | None = None,
    answer_timeout_ms: int = 30_000,
    max_wait_for_bye_ms: int = 120_000,
    play_audio: bool = True,
    pcap_dir: Path = PCAP_DIR,
    caller_name: str | None = None,
) -> str:
    """A UAC that dials ``[service]@[remote_ip]:[remote_port]`` (``-s`` and the sipp target).

    After the 200 OK and ACK it waits ``answer_wait_ms``, presses ``keys`` (RFC 2833 pcaps)
    ``key_gap_ms`` apart, starts g711a.pcap audio, then hangs up after ``hold_ms``; with ``hold_ms``
    None it waits up to ``max_wait_for_bye_ms`` for the far end's BYE (the call fails if none comes).
    A BYE from the far end at any point after the answer is accepted and ends the call successfully;
    the result's trace tells who hung up. With ``cancel_after_ms`` the call is CANCELled if it is
    not answered within that time of the INVITE's first provisional response (a successful call
    too); without it, no answer within ``answer_timeout_ms`` fails the call.
    """
    validate_keys(keys)
    if not _CALLER_NUMBER.match(caller_number):
        raise ValueError(f"caller_number {caller_number!r} must be 1-32 of [A-Za-z0-9+._-]")
    if caller_name is not None and not _CALLER_NAME.match(caller_name):
        raise ValueError(f"caller_name {caller_name!r}: 1-64 printable characters without quotes, "
                         "backslashes or square brackets")
    _ms("key_gap_ms", key_gap_ms, MIN_KEY_GAP_MS if keys else 0)
    _ms("answer_wait_ms", answer_wait_ms)
    if hold_ms is not None:
        _ms("hold_ms", hold_ms)
    if cancel_after_ms is not None:
        _ms("cancel_after_ms", cancel_after_ms, 1)
    _ms("answer_timeout_ms", answer_timeout_ms, 1)
    _ms("max_wait_for_bye_ms", max_wait_for_bye_ms, 1)
    # All keys in one recording, renumbered so that any sequence (a key lower than or equal to the
    # one before) reaches Asterisk whole; see callcenter.sipp.dtmf.
    keys_pcap = _pcap(key_sequence_pcap([dtmf_pcap(k, pcap_dir) for k in keys], key_gap_ms)) if keys else None
    audio = _pcap(pcap_dir / AUDIO_PCAP) if play_audio else None

    contact = f"<sip:{caller_number}@[local_ip]:[local_port];transport=[transport]>"
    from_hdr = (f'From: "{caller_name or caller_number}" <sip:{caller_number}@[local_ip]:[local_port]>'
                ";tag=[pid]SIPpTag00[call_number]")
    to_hdr = "To: <sip:[service]@[remote_ip]:[remote_port]>"
    ruri = "sip:[service]@[remote_ip]:[remote_port]"
    el: list[str] = []

    def invite_transaction(method: str, to: str) -> str:
        # INVITE, its CANCEL and the ACK to its 487 are one transaction: same Via branch and CSeq.
        return (f"{method} {ruri} SIP/2.0\n"
                f"Via: SIP/2.0/[transport] [local_ip]:[local_port];branch={_INVITE_BRANCH};rport\n"
                f"{from_hdr}\n{to}\nCall-ID: [call_id]\nCSeq: 1 {method}")

    el.append(_send(f"""
{invite_transaction("INVITE", to_hdr)}
Contact: {contact}
Max-Forwards: 70
User-Agent: callcenter-sipp-caller
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, UPDATE
Content-Type: application/sdp
Content-Length: [len]

{_SDP}
""", retrans=500))

    # SIPp times the recv that the call is parked on, so every pre-answer recv gets the same limit.
    if cancel_after_ms is not None:
        ring = {"timeout": cancel_after_ms, "ontimeout": "cancel"}
        el.append(_recv(response="100", optional=True))  # the CANCEL clock starts once the far end reacts
        el += [_recv(response=code, optional=True, **ring) for code in ("180", "183")]
    else:
        ring = {"timeout": answer_timeout_ms}  # no ontimeout: SIPp CANCELs and counts a failed call
        el += [_recv(response=code, optional=True, **ring) for code in ("100", "180", "183")]
    # rrs: [next_url] becomes the 200's Contact (Asterisk's) and [routes] its Record-Route set.
    el.append(_recv(
        '      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="far_to"/>',
        response="200", rrs=True, rtd=True, **ring))

    def in_dialog(method: str, cseq: int) -> str:
        # requests inside the established dialog go to Asterisk's Contact along its route set
        return (f"{method} [next_url] SIP/2.0\n"
                "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport\n"
                f"{from_hdr}\nTo:[$far_to]\n[routes]\nCall-ID: [call_id]\nCSeq: {cseq} {method}\n"
                f"Contact: {contact}")

    el.append(_send(f"""
{in_dialog("ACK", 1)}
Max-Forwards: 70
Content-Length: 0
"""))

    # Every wait after the answer is a recv of BYE with a timeout: it pauses like <pause>, but a
    # BYE from the far end (an IVR hanging up early) ends the call cleanly instead of counting as
    # an unexpected message.
    steps = 0

    def wait(ms: int, then: str | None = None) -> None:
        nonlocal steps
        if ms <= 0:
            return
        steps += 1
        label = then or f"step{steps}"
        el.append(_recv(request="BYE", timeout=ms, ontimeout=label, next="far_bye"))
        if then is None:
            el.append(_label(label))

    wait(answer_wait_ms)
    if keys_pcap is not None:
        el.append(_play(keys_pcap))
        wait(key_gap_ms * len(keys))
    if audio is not None:
        el.append(_play(audio))
    if hold_ms is None:
        # No ontimeout: if the far end never hangs up, SIPp sends BYE itself and fails the call.
        el.append(_recv(request="BYE", timeout=max_wait_for_bye_ms, next="far_bye"))
    else:
        wait(max(hold_ms, 1), then="hangup")

    el.append(_label("hangup"))
    el.append(_send(f"""
{in_dialog("BYE", 2)}
Max-Forwards: 70
Content-Length: 0
""", retrans=500))
    el.append(_recv(response="200", next="done"))

    if cancel_after_ms is not None:
        el.append(_label("cancel"))
        el.append(_send(f"""
{invite_transaction("CANCEL", to_hdr)}
Max-Forwards: 70
Content-Length: 0
""", retrans=500))
        el.append(_recv(response="200"))
        el.append(_recv(response="487"))
        el.append(_send(f"""
{invite_transaction("ACK", "[last_To:]")}
Max-Forwards: 70
Content-Length: 0
"""))
        el.append(_jump("done"))

    el.append(_label("far_bye"))
    el.append(_ok_to_last_request(contact))
    el.append(_label("done"))
    # One short stop so a lost 200 to a BYE can still be answered before sipp exits.
    el.append('  <timewait milliseconds="200"/>')
    return _scenario(f"callcenter caller {caller_number} keys={keys or '-'}", el)


# ---------------------------------------------------------------------------------------- agent
def agent_scenario(
    mode: PhoneMode | str = PhoneMode.ANSWER,
    ring_delay_ms: int = 1000,
    talk_ms: int = 5000,
    *,
    user: str = "agent",
    play_audio: bool = True,
    pcap_dir: Path = PCAP_DIR,
) -> str:
    """A UAS for one agent phone; SIPp runs it once per incoming INVITE, for as many calls as come.

    ``answer``: 180, ``ring_delay_ms`` later 200 OK (PCMA + telephone-event), plays g711a.pcap after
    the ACK, waits for the far end's BYE. ``answer_then_hangup``: same, but after ``talk_ms`` the
    phone sends BYE itself (unless the far end hung up first). ``never_answer``: 180, then waits for
    the CANCEL (200 to it, 487 to the INVITE, ACK). A CANCEL while ringing is handled in every mode;
    OPTIONS/INFO/NOTIFY/UPDATE are answered by sipp's ``-aa``; an in-dialog re-INVITE is answered
    with the same SDP.
    """
    mode = PhoneMode(mode)
    _ms("ring_delay_ms", ring_delay_ms)
    _ms("talk_ms", talk_ms, 1)
    if not _SIP_USER.match(user):
        raise ValueError(f"user {user!r} must be 1-32 of [A-Za-z0-9+._-]")
    audio = _pcap(pcap_dir / AUDIO_PCAP) if play_audio else None
    contact = f"<sip:{user}@[local_ip]:[local_port];transport=[transport]>"
    el: list[str] = []

    # Captured from the INVITE because later messages (ACK without Contact, OPTIONS, a re-INVITE)
    # overwrite [last_*] and an rrs on the ACK would leave [next_url] empty: the phone's own BYE is
    # built from these (request-URI = Asterisk's Contact, From/To swapped), and the 487 needs the
    # INVITE's CSeq number while the last message is the CANCEL.
    captures = ['      <ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="invite_cseq"/>']
    if mode is PhoneMode.ANSWER_THEN_HANGUP:
        # (sipp refuses to load a scenario that assigns a variable it never uses)
        captures += [
            '      <ereg regexp="sips?:[^&lt;&gt;;,&quot; ]+" search_in="hdr" header="Contact:"'
            ' check_it="true" assign_to="far_contact"/>',
            '      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="far_from"/>',
            '      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="near_to"/>',
        ]
    el.append(_recv("\n".join(captures), request="INVITE", crlf=True))

    el.append(_send(f"""
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag={_PHONE_TAG}
[last_Call-ID:]
[last_CSeq:]
Contact: {contact}
Content-Length: 0
"""))

    if mode is PhoneMode.NEVER_ANSWER:
        el.append(_recv(request="CANCEL", next="cancelled"))
    elif ring_delay_ms > 0:
        # Ring for ring_delay_ms, but a CANCEL (queue ring timeout, caller gone) ends the ringing.
        el.append(_recv(request="CANCEL", timeout=ring_delay_ms, ontimeout="answer", next="cancelled"))
    el.append(_label("answer"))

    answer_body = f"""
Contact: {contact}
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, UPDATE
User-Agent: callcenter-sipp-phone
Content-Type: application/sdp
Content-Length: [len]

{_SDP}
"""
    if mode is not PhoneMode.NEVER_ANSWER:
        el.append(_send(f"""
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag={_PHONE_TAG}
[last_Call-ID:]
[last_CSeq:]
{answer_body.strip()}
""", retrans=500))
        el.append(_recv(request="ACK", crlf=True, rtd=True))
        if audio is not None:
            el.append(_play(audio))
        el.append(_label("talk"))
        # SIPp parks on the first recv of a run of optional ones and times that one, so the talk
        # timer sits on the optional re-INVITE recv, in front of the BYE it stands for.
        talk = {"timeout": talk_ms, "ontimeout": "hangup"} if mode is PhoneMode.ANSWER_THEN_HANGUP else {}
        el.append(_recv(request="INVITE", optional=True, next="reinvite", **talk))
        el.append(_recv(request="BYE", next="far_bye", **talk))

        if mode is PhoneMode.ANSWER_THEN_HANGUP:
            el.append(_label("hangup"))
            el.append(_send(f"""
BYE [$far_contact] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From:[$near_to];tag={_PHONE_TAG}
To:[$far_from]
Call-ID: [call_id]
CSeq: 1 BYE
Contact: {contact}
Max-Forwards: 70
Content-Length: 0
""", retrans=500))
            el.append(_recv(response="200", next="done"))

        el.append(_label("reinvite"))
        el.append(_send(f"""
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
{answer_body.strip()}
""", retrans=500))
        el.append(_recv(request="ACK", next="talk"))

        el.append(_label("far_bye"))
        el.append(_ok_to_last_request(contact))
        el.append(_jump("done"))

    el.extend(_cancelled(contact))

    el.append(_label("done"))
    # Keeps the finished call around briefly so retransmitted BYEs/ACKs are absorbed by it.
    el.append('  <timewait milliseconds="1000"/>')
    return _scenario(f"callcenter agent phone {user} ({mode.value})", el)


# ---------------------------------------------------------------------------------------- customers
def customers_scenario(busy: str, no_answer: str, *, ring_delay_ms: int = 300, user: str = "customers",
                       play_audio: bool = True, pcap_dir: Path = PCAP_DIR) -> str:
    """A UAS standing for many customers' phones behind the trunk (outbound campaigns, callbacks):
    how it answers depends on the number dialled. Numbers starting with ``busy`` (digits after an
    optional '+') get 486 Busy Here; with ``no_answer``, 180 and then nothing until the CANCEL; any
    other number rings ``ring_delay_ms``, answers and waits for the far end's BYE."""
    for name, prefix in (("busy", busy), ("no_answer", no_answer)):
        if not re.fullmatch(r"[0-9]{1,20}", prefix):
            raise ValueError(f"{name} prefix {prefix!r} must be 1-20 digits")
    _ms("ring_delay_ms", ring_delay_ms)
    contact = f"<sip:{user}@[local_ip]:[local_port];transport=[transport]>"
    audio = _pcap(pcap_dir / AUDIO_PCAP) if play_audio else None
    response = f"""
[last_Via:]
[last_From:]
[last_To:];tag={_PHONE_TAG}
[last_Call-ID:]
[last_CSeq:]
Contact: {contact}
"""
    el = [_recv("\n".join([
        '      <ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="invite_cseq"/>',
        f'      <ereg regexp="INVITE sip:[+]?{busy}" search_in="msg" check_it="false" assign_to="is_busy"/>',
        f'      <ereg regexp="INVITE sip:[+]?{no_answer}" search_in="msg" check_it="false" assign_to="is_silent"/>',
    ]), request="INVITE", crlf=True)]
    el.append('  <nop next="busy" test="is_busy"/>')
    el.append(_send(f"SIP/2.0 180 Ringing{response}Content-Length: 0\n"))
    el.append('  <nop next="silent" test="is_silent"/>')
    el.append(_recv(request="CANCEL", timeout=ring_delay_ms, ontimeout="answer", next="cancelled"))
    el.append(_label("answer"))
    el.append(_send(f"""SIP/2.0 200 OK{response}Content-Type: application/sdp
Content-Length: [len]

{_SDP}
""", retrans=500))
    el.append(_recv(request="ACK", crlf=True, rtd=True))
    if audio is not None:
        el.append(_play(audio))
    el.append(_recv(request="BYE"))
    el.append(_ok_to_last_request(contact))
    el.append(_jump("done"))
    el.append(_label("silent"))
    el.append(_recv(request="CANCEL", next="cancelled"))
    el.append(_label("busy"))
    el.append(_send(f"SIP/2.0 486 Busy Here{response}Content-Length: 0\n", retrans=500))
    el.append(_recv(request="ACK", crlf=True, next="done"))
    el.extend(_cancelled(contact))
    el.append(_label("done"))
    el.append('  <timewait milliseconds="1000"/>')
    return _scenario(f"callcenter customers behind the trunk (busy {busy}, no answer {no_answer})", el)
