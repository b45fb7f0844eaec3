"""Run sipp processes (one-call callers, long-running agent phones) and read their message traces.

Every sipp runs in its own session (process group) with stdin and its screen discarded (``-nostdin``,
stdout to /dev/null), binds only to the given loopback address (``-i``/``-mi``/``-ci`` plus
``-bind_local``) and writes a SIP message trace that this module parses. Processes are tracked so
that none outlives the Python process, even when a test forgets to stop one.
"""

from __future__ import annotations

import asyncio
import atexit
import errno
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from callcenter.sipp.scenarios import PhoneMode, agent_scenario

log = logging.getLogger(__name__)

SIPP_BINARY = "sipp"
LOOPBACK = "127.0.0.1"

# sipp's exit codes (sipp -h)
EXIT_ALL_CALLS_OK = 0
EXIT_SOME_CALL_FAILED = 1
EXIT_INTERNAL_COMMAND = 97
EXIT_NO_CALL_PROCESSED = 99

# A phone runs for a whole test session: never let sipp's overload watchdog end it because the
# machine was busy (by default 120 minor / 10 major trips within 10 minutes make sipp quit).
_PHONE_WATCHDOG_ARGS = ["-watchdog_minor_maxtriggers", "1000000", "-watchdog_major_maxtriggers", "1000000"]


class SippError(RuntimeError):
    """sipp could not be started, or exited when it should not have."""


# ---------------------------------------------------------------------------------------- traces
_BLOCK_START = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?)\s*$", re.M)
_DIRECTION = re.compile(r"^\w+ message (sent|received)\b")
_COMPACT = {"i": "call-id", "f": "from", "t": "to", "m": "contact", "v": "via",
            "l": "content-length", "c": "content-type"}
_URI_USER = re.compile(r"sips?:([^@;>\s]+)@")
_TAG = re.compile(r";\s*tag=([^;>\s]+)", re.I)


@dataclass(frozen=True)
class SipMessage:
    """One SIP message from a sipp message trace, as sipp sent or received it."""

    at: datetime
    direction: Literal["sent", "received"]
    start_line: str
    headers: dict[str, str]  # lower-case full header name -> first value
    body: str = ""

    @property
    def is_request(self) -> bool:
        return not self.start_line.startswith("SIP/2.0")

    @property
    def method(self) -> str | None:
        """Request method, None for a response."""
        return self.start_line.split(" ", 1)[0] if self.is_request else None

    @property
    def status(self) -> int | None:
        """Response status code, None for a request."""
        if self.is_request:
            return None
        parts = self.start_line.split()
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None

    @property
    def call_id(self) -> str:
        return self.headers.get("call-id", "")

    @property
    def cseq(self) -> tuple[int, str]:
        """(number, method) of the CSeq header; (0, '') if missing."""
        parts = self.headers.get("cseq", "").split()
        if len(parts) == 2 and parts[0].isdigit():
            return int(parts[0]), parts[1].upper()
        return 0, ""

    @property
    def to_tag(self) -> str | None:
        match = _TAG.search(self.headers.get("to", ""))
        return match.group(1) if match else None

    @property
    def from_user(self) -> str | None:
        match = _URI_USER.search(self.headers.get("from", ""))
        return match.group(1) if match else None

    def is_response_to(self, method: str, status: int | None = None) -> bool:
        return (not self.is_request and self.cseq[1] == method
                and (status is None or self.status == status))


def parse_message_log(text: str) -> list[SipMessage]:
    """Parse a sipp ``-trace_msg`` file into messages; blocks that hold no SIP message are skipped."""
    messages: list[SipMessage] = []
    starts = list(_BLOCK_START.finditer(text))
    for i, match in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        block = text[match.end():end].lstrip("\r\n")
        head, _, rest = block.partition("\n")
        direction = _DIRECTION.match(head.strip())
        if not direction:
            continue
        sip = rest.lstrip("\r\n")
        header_part, _, body = sip.replace("\r\n", "\n").partition("\n\n")
        lines = header_part.split("\n")
        if not lines or not lines[0].strip():
            continue
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                continue
            key = name.strip().lower()
            headers.setdefault(_COMPACT.get(key, key), value.strip())
        try:
            at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S.%f")
        except ValueError:
            at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")
        messages.append(SipMessage(at, direction.group(1), lines[0].strip(), headers,  # type: ignore[arg-type]
                                   body.strip()))
    return messages


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


# ---------------------------------------------------------------------------------------- processes
_LIVE: set[subprocess.Popen[bytes]] = set()


def _kill_all_live() -> None:
    for proc in list(_LIVE):
        _kill_group(proc, signal.SIGKILL)
        _LIVE.discard(proc)


atexit.register(_kill_all_live)


def _kill_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    # Only while the leader is unreaped: after that its pid (= the group id) may be reused.
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass


def _spawn(cmd: Sequence[str], workdir: Path, stderr_path: Path) -> subprocess.Popen[bytes]:
    if shutil.which(cmd[0]) is None:
        raise SippError(f"{cmd[0]} not found: apt-get install sip-tester")
    log.debug("starting %s", " ".join(cmd))
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(
            list(cmd), cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=err, start_new_session=True,  # own process group, killable as a whole
        )
    _LIVE.add(proc)
    return proc


def _stop_sync(proc: subprocess.Popen[bytes], grace: float) -> int:
    """SIGTERM, then SIGKILL after ``grace`` s; returns the exit code.

    sipp exits at once on SIGTERM/SIGINT, with code 0 and without ending its open calls (SIGUSR1
    would wait for them to finish on their own), so the exit code of a stopped sipp means nothing.
    """
    _kill_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _kill_group(proc, signal.SIGKILL)
        proc.wait(timeout=5)
    _LIVE.discard(proc)
    return proc.returncode


async def _stop_async(proc: subprocess.Popen[bytes], grace: float) -> int:
    _kill_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while proc.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    if proc.poll() is None:
        _kill_group(proc, signal.SIGKILL)
        proc.wait(timeout=5)  # SIGKILL: immediate
    _LIVE.discard(proc)
    return proc.returncode


def udp_port_free(host: str, port: int) -> bool:
    """True if UDP ``host:port`` can be bound, i.e. no sipp (or anything else) holds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def udp_port_bound(host: str, port: int) -> bool:
    """True if some socket is bound to UDP ``host:port`` (or the wildcard), from /proc/net/udp.

    Read-only, unlike a bind probe, which could steal the port from a sipp that is starting.
    """
    wanted = {f"{int.from_bytes(socket.inet_aton(h), sys.byteorder):08X}:{port:04X}" for h in (host, "0.0.0.0")}
    try:
        lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    except OSError:
        return not udp_port_free(host, port)
    return any(line.split()[1] in wanted for line in lines if len(line.split()) > 1)


def _free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _base_args(host: str, sip_port: int, media_port: int, control_port: int | None, workdir: Path,
               name: str) -> list[str]:
    return [
        "-i", host, "-p", str(sip_port), "-bind_local",
        "-mi", host, "-mp", str(media_port),
        # sipp also opens a UDP remote-control socket, by default on 0.0.0.0:8888 (anyone could
        # send it keys); keep it on loopback, on a port of ours
        "-ci", host, "-cp", str(control_port if control_port is not None else _free_udp_port(host)),
        "-nostdin",
        "-aa",  # 200 OK to INFO/NOTIFY/OPTIONS/UPDATE, inside a call or not
        "-trace_msg", "-message_file", str(workdir / f"{name}_messages.log"),
        "-trace_err", "-error_file", str(workdir / f"{name}_errors.log"),
        "-trace_screen", "-screen_file", str(workdir / f"{name}_screen.log"),
    ]


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


# ---------------------------------------------------------------------------------------- caller
@dataclass
class CallerResult:
    """What one caller run did, from sipp's exit code and its message trace."""

    exit_code: int | None  # None if it had to be killed
    timed_out: bool
    duration_s: float
    message_log: str
    error_log: str = ""
    stderr: str = ""
    screen: str = ""
    workdir: Path | None = None
    messages: list[SipMessage] = field(default_factory=list)
    teardown: str | None = None  # "BYE"/"CANCEL" the runner sent itself after killing a stuck sipp

    @property
    def ok(self) -> bool:
        """sipp exited 0: the one call followed the scenario to its end."""
        return self.exit_code == EXIT_ALL_CALLS_OK and not self.timed_out

    def _count(self, direction: str, method: str) -> int:
        return len({m.cseq for m in self.messages if m.direction == direction and m.method == method})

    @property
    def answered(self) -> bool:
        return any(m.direction == "received" and m.is_response_to("INVITE", 200) for m in self.messages)

    @property
    def invite_final_status(self) -> int | None:
        """Final status the far end gave to the INVITE (200, 486, 487, ...), if any."""
        for m in self.messages:
            if m.direction == "received" and m.is_response_to("INVITE") and (m.status or 0) >= 200:
                return m.status
        return None

    @property
    def received_bye_from_far_end(self) -> bool:
        return self._count("received", "BYE") > 0

    @property
    def sent_bye(self) -> bool:
        return self._count("sent", "BYE") > 0

    @property
    def sent_cancel(self) -> bool:
        return self._count("sent", "CANCEL") > 0

    def first(self, direction: str, method: str | None = None, status: int | None = None) -> SipMessage | None:
        """First message in this direction with this method (request) or status (response)."""
        for m in self.messages:
            if m.direction == direction and (method is None or m.method == method) \
                    and (status is None or m.status == status):
                return m
        return None

    def describe(self) -> str:
        """A readable summary for assertion messages and logs."""
        flow = ", ".join(f"{'>' if m.direction == 'sent' else '<'}{m.method or m.status}" for m in self.messages)
        return (f"exit={self.exit_code} timed_out={self.timed_out} {self.duration_s:.1f}s "
                f"flow=[{flow}] workdir={self.workdir}\n"
                f"errors:\n{_tail(self.error_log, 15)}\nstderr:\n{_tail(self.stderr, 15)}")


def _leftover_request(messages: Sequence[SipMessage], host: str, port: int) -> tuple[str, bytes] | None:
    """The BYE (answered) or CANCEL (ringing) that ends a call a killed caller left open, if any."""
    invite = next((m for m in messages if m.direction == "sent" and m.method == "INVITE"), None)
    if invite is None:
        return None
    if any(m.method in ("BYE", "CANCEL") for m in messages):
        return None  # already being ended by one side or the other
    finals = [m for m in messages if m.direction == "received" and m.is_response_to("INVITE")
              and (m.status or 0) >= 200]
    provisional = any(m.direction == "received" and m.is_response_to("INVITE") and (m.status or 0) < 200
                      for m in messages)
    h = invite.headers
    if finals and finals[0].status == 200:
        contact = re.search(r"sips?:[^<>;,\"\s]+", finals[0].headers.get("contact", ""))
        ruri = contact.group(0) if contact else invite.start_line.split()[1]
        method, to, cseq = "BYE", finals[0].headers.get("to", ""), f"{invite.cseq[0] + 1} BYE"
        branch = f"z9hG4bK-cc-teardown-{port}-{time.time_ns()}"
    elif not finals and provisional:
        # A CANCEL must carry the INVITE's Via (same branch) to match its transaction.
        ruri, method, to = invite.start_line.split()[1], "CANCEL", h.get("to", "")
        branch = re.search(r"branch=([^;\s]+)", h.get("via", ""))
        if branch is None:
            return None
        branch, cseq = branch.group(1), f"{invite.cseq[0]} CANCEL"
    else:
        return None
    text = (f"{method} {ruri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {host}:{port};branch={branch};rport\r\n"
            f"From: {h.get('from', '')}\r\nTo: {to}\r\nCall-ID: {invite.call_id}\r\n"
            f"CSeq: {cseq}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    return method, text.encode()


def _end_leftover_call(messages: Sequence[SipMessage], host: str, port: int,
                       target_host: str, target_port: int) -> str | None:
    request = _leftover_request(messages, host, port)
    if request is None:
        return None
    method, payload = request
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((host, port))  # from the caller's own port: where the dialog lives
            for _ in range(2):  # fire and forget over UDP: one copy may be lost
                sock.sendto(payload, (target_host, target_port))
    except OSError as exc:
        log.warning("could not send %s for a killed caller: %s", method, exc)
        return None
    log.warning("caller on port %d was killed mid-call; sent %s to %s:%d", port, method,
                target_host, target_port)
    return method


class SippCaller:
    """One caller: a sipp UAC that places exactly one call (``-m 1``) from a rendered scenario.

    ``target_host:target_port`` is Asterisk (127.0.0.1:5060) in real use, or a phone in tests;
    ``service`` is the dialled user part (``-s``). sipp binds ``media_port`` and ``media_port + 2``
    (its video socket), so concurrent sipps need media ports at least 4 apart. Files go to
    ``workdir`` (a fresh temp folder by default, removed after a successful run unless
    ``keep_files``).
    """

    def __init__(
        self,
        scenario: str,
        *,
        local_port: int,
        media_port: int,
        control_port: int | None = None,
        target_host: str = LOOPBACK,
        target_port: int = 5060,
        service: str = "5000",
        host: str = LOOPBACK,
        name: str = "caller",
        workdir: Path | None = None,
        keep_files: bool = False,
        extra_args: Sequence[str] = (),
    ):
        self.scenario = scenario
        self.local_port = local_port
        self.media_port = media_port
        self.control_port = control_port
        self.target_host = target_host
        self.target_port = target_port
        self.service = service
        self.host = host
        self.name = name
        self._own_workdir = workdir is None
        self.workdir = workdir
        self.keep_files = keep_files
        self.extra_args = list(extra_args)

    def command(self, workdir: Path) -> list[str]:
        return [
            SIPP_BINARY, f"{self.target_host}:{self.target_port}",
            "-sf", str(workdir / f"{self.name}.xml"),
            "-m", "1", "-s", self.service,
            *_base_args(self.host, self.local_port, self.media_port, self.control_port, workdir, self.name),
            *self.extra_args,
        ]

    async def run(self, timeout: float = 60.0) -> CallerResult:
        """Place the call; return when sipp exits, or kill it after ``timeout`` seconds."""
        workdir = self.workdir or Path(tempfile.mkdtemp(prefix=f"cc-sipp-{self.name}-"))
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / f"{self.name}.xml").write_text(self.scenario)
        stderr_path = workdir / f"{self.name}.stderr"
        started = time.monotonic()
        proc = _spawn(self.command(workdir), workdir, stderr_path)
        timed_out = False
        try:
            while proc.poll() is None:
                if time.monotonic() - started > timeout:
                    timed_out = True
                    log.warning("caller %s still running after %.1f s; stopping it", self.name, timeout)
                    break
                await asyncio.sleep(0.05)
        finally:
            if proc.poll() is None:
                await _stop_async(proc, grace=1.0)
            _LIVE.discard(proc)
        text = _read(workdir / f"{self.name}_messages.log")
        messages = parse_message_log(text)
        leftover = None
        if timed_out:
            # sipp dies on SIGTERM without ending its call; end it for it so Asterisk does not keep
            # a caller in its queue forever.
            leftover = _end_leftover_call(messages, self.host, self.local_port,
                                          self.target_host, self.target_port)
        result = CallerResult(
            exit_code=None if timed_out else proc.returncode,
            timed_out=timed_out,
            duration_s=time.monotonic() - started,
            message_log=text,
            error_log=_read(workdir / f"{self.name}_errors.log"),
            stderr=_read(stderr_path),
            screen=_read(workdir / f"{self.name}_screen.log"),
            workdir=workdir,
            messages=messages,
            teardown=leftover,
        )
        if result.ok:
            log.info("caller %s: ok in %.1f s", self.name, result.duration_s)
            if self._own_workdir and not self.keep_files:
                shutil.rmtree(workdir, ignore_errors=True)
                result.workdir = None
        else:
            log.warning("caller %s failed: %s", self.name, result.describe())
        return result

    def run_sync(self, timeout: float = 60.0) -> CallerResult:
        """``run`` for code without an event loop."""
        return asyncio.run(self.run(timeout))


# ---------------------------------------------------------------------------------------- phone
@dataclass
class PhoneCall:
    """One incoming call as an agent phone saw it (keyed by Call-ID)."""

    call_id: str
    caller: str | None  # user part of the INVITE's From
    invited_at: datetime
    answered_at: datetime | None = None
    cancelled_at: datetime | None = None
    ended_at: datetime | None = None
    ended_by: Literal["far_end", "phone"] | None = None


def calls_from_messages(messages: Sequence[SipMessage]) -> list[PhoneCall]:
    """Group a UAS trace into calls; retransmissions and re-INVITEs do not add calls."""
    calls: dict[str, PhoneCall] = {}
    for m in messages:
        call = calls.get(m.call_id)
        if m.direction == "received" and m.method == "INVITE" and m.to_tag is None:
            if call is None:
                calls[m.call_id] = PhoneCall(m.call_id, m.from_user, m.at)
            continue
        if call is None:
            continue
        if m.direction == "sent" and m.is_response_to("INVITE", 200) and call.answered_at is None:
            call.answered_at = m.at
        elif m.direction == "received" and m.method == "CANCEL" and call.cancelled_at is None:
            call.cancelled_at = m.at
        elif m.method == "BYE" and call.ended_at is None:
            call.ended_at = m.at
            call.ended_by = "far_end" if m.direction == "received" else "phone"
    return list(calls.values())


class SippPhone:
    """An agent phone: one long-running sipp UAS on its own SIP and media ports, call after call.

    ``start()``/``stop()`` are synchronous (bounded to a few seconds) so session fixtures can use
    them; ``async with`` works too. Counts come from the phone's message trace, which sipp flushes
    per message, so they are live while the phone runs; a restart begins a new trace. sipp binds
    ``media_port`` and ``media_port + 2``: space phones' media ports at least 4 apart. Files stay in
    ``workdir`` (a temp folder by default) after ``stop()``.
    """

    def __init__(
        self,
        name: str,
        *,
        sip_port: int,
        media_port: int,
        mode: PhoneMode | str = PhoneMode.ANSWER,
        ring_delay_ms: int = 1000,
        talk_ms: int = 5000,
        control_port: int | None = None,
        host: str = LOOPBACK,
        workdir: Path | None = None,
        play_audio: bool = True,
        extra_args: Sequence[str] = (),
        scenario: str | None = None,
    ):
        """``scenario``: a UAS scenario of its own (e.g. ``customers_scenario``) instead of an
        agent phone's in ``mode``."""
        self.name = name
        self.sip_port = sip_port
        self.media_port = media_port
        self.mode = PhoneMode(mode)
        self.control_port = control_port
        self.host = host
        self.scenario = scenario or agent_scenario(self.mode, ring_delay_ms, talk_ms, user=name, play_audio=play_audio)
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix=f"cc-sipp-{name}-"))
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen[bytes] | None = None
        self._parsed: tuple[tuple[int, int], list[SipMessage]] | None = None  # ((size, mtime), msgs)

    # ------------------------------------------------------------------ paths
    @property
    def contact(self) -> str:
        """The SIP URI Asterisk should send this agent's calls to."""
        return f"sip:{self.name}@{self.host}:{self.sip_port}"

    @property
    def message_file(self) -> Path:
        return self.workdir / f"{self.name}_messages.log"

    @property
    def error_file(self) -> Path:
        return self.workdir / f"{self.name}_errors.log"

    @property
    def stderr_file(self) -> Path:
        return self.workdir / f"{self.name}.stderr"

    def command(self) -> list[str]:
        # No remote host and a scenario that starts with <recv>: sipp runs as a server, creating a
        # call per new Call-ID for as long as it lives (no -m, no -timeout).
        return [
            SIPP_BINARY, "-sf", str(self.workdir / f"{self.name}.xml"), "-s", self.name,
            *_base_args(self.host, self.sip_port, self.media_port, self.control_port, self.workdir, self.name),
            *_PHONE_WATCHDOG_ARGS,
            *self.extra_args,
        ]

    # ------------------------------------------------------------------ lifecycle
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 5.0) -> None:
        """Start sipp and return once it has bound its SIP port; raise SippError otherwise."""
        if self.running:
            return
        for port in (self.sip_port, self.media_port, self.media_port + 2):
            if not udp_port_free(self.host, port):
                raise SippError(f"phone {self.name}: UDP {self.host}:{port} is already in use")
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / f"{self.name}.xml").write_text(self.scenario)
        self.proc = _spawn(self.command(), self.workdir, self.stderr_file)
        deadline = time.monotonic() + timeout
        while not udp_port_bound(self.host, self.sip_port):
            if self.proc.poll() is not None:
                code = self.proc.returncode
                _LIVE.discard(self.proc)
                raise SippError(f"phone {self.name}: sipp exited with {code}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise SippError(f"phone {self.name}: sipp did not bind {self.host}:{self.sip_port} "
                                f"in {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.02)
        log.info("phone %s (%s) listening on %s, media %d, trace %s",
                 self.name, self.mode.value, self.contact, self.media_port, self.message_file)

    def stop(self, grace: float = 1.0) -> int | None:
        """Stop sipp (SIGTERM, then SIGKILL of its process group); return its exit code."""
        if self.proc is None:
            return None
        code = _stop_sync(self.proc, grace)
        log.info("phone %s stopped (exit %s)", self.name, code)
        return code

    def __enter__(self) -> SippPhone:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> SippPhone:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    # ------------------------------------------------------------------ what happened
    def message_log(self) -> str:
        return _read(self.message_file)

    def messages(self) -> list[SipMessage]:
        """Every SIP message in the trace so far (re-parsed only when the file has grown)."""
        try:
            st = self.message_file.stat()
        except FileNotFoundError:
            return []
        key = (st.st_size, st.st_mtime_ns)
        if self._parsed is None or self._parsed[0] != key:
            self._parsed = (key, parse_message_log(self.message_log()))
        return list(self._parsed[1])

    def calls(self) -> list[PhoneCall]:
        """Every call this phone was offered, oldest first."""
        return calls_from_messages(self.messages())

    def invites_received(self) -> int:
        return len(self.calls())

    def answered_calls(self) -> int:
        return sum(1 for c in self.calls() if c.answered_at is not None)

    def cancels_received(self) -> int:
        return sum(1 for c in self.calls() if c.cancelled_at is not None)

    def hangups_sent(self) -> int:
        """Calls the phone itself ended with BYE (answer_then_hangup)."""
        return sum(1 for c in self.calls() if c.ended_by == "phone")

    def log_tail(self, lines: int = 30) -> str:
        return (f"stderr:\n{_tail(_read(self.stderr_file), lines)}\n"
                f"errors:\n{_tail(_read(self.error_file), lines)}")

    async def wait_until(self, condition: Callable[[SippPhone], bool], timeout: float,
                         what: str = "condition") -> None:
        """Poll the trace until ``condition(self)`` holds; TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not condition(self):
            if not self.running:
                raise SippError(f"phone {self.name} is not running (waiting for {what}):\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"phone {self.name}: no {what} within {timeout:.1f} s "
                                   f"(calls so far: {self.calls()})")
            await asyncio.sleep(0.05)

    async def wait_for_invites(self, n: int, timeout: float = 10.0) -> int:
        """Wait until at least ``n`` calls were offered to this phone; return the count."""
        await self.wait_until(lambda p: p.invites_received() >= n, timeout, f"{n} INVITE(s)")
        return self.invites_received()


# The port layout the tests, the demo and the benchmark share. sipp binds media_port and
# media_port + 2, so media ports are 10 apart. An agent phone listens at the port of its contact
# in the settings, with media at 7100 + 10 * (id - 1000); the caller in slot k uses SIP port
# 6000 + k and media 8000 + 10 * k.
def agent_phone(agent_id: str, contact: str, **kwargs) -> SippPhone:
    """The SIPp phone for ``agent_id``, listening where Asterisk rings it (``contact``)."""
    host_port = contact.rsplit("@", 1)[-1]
    if ":" not in host_port:
        raise ValueError(f"agent {agent_id}: contact {contact!r} has no port for a SIPp phone to listen on")
    return SippPhone(f"agent{agent_id}", sip_port=int(host_port.rsplit(":", 1)[1]),
                     media_port=7100 + 10 * (int(agent_id) - 1000), **kwargs)


def caller_in_slot(slot: int, scenario: str, **kwargs) -> SippCaller:
    """A SIPp caller on the ports of ``slot`` (callers placed at the same time need distinct slots)."""
    return SippCaller(scenario, local_port=6000 + slot, media_port=8000 + 10 * slot, **kwargs)
