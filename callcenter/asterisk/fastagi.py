"""FastAGI server: panoramisk's request API behind a hardened connection handler.

panoramisk 1.4's own handler reads headers in a loop that never sees EOF: a client that closes
before finishing its headers makes it spin forever and freezes the whole event loop. Ours reads
headers with a size cap and a deadline, treats EOF as the end of that connection, and quotes every
argument it sends back to Asterisk.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol
from urllib.parse import urlsplit

from panoramisk.fast_agi import Request

from callcenter.asterisk.names import LANGUAGE, PROTOCOL_BREAKING, SAYABLE, SOUND_NAME

log = logging.getLogger(__name__)

VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ROUTE = re.compile(r"^[a-z0-9_/-]+$")
ALL_KEYS = "0123456789*#"


class AgiHeaderError(Exception):
    """The client's AGI headers were incomplete, too large, too slow or malformed."""


class CallerHungUp(Exception):
    """The channel hung up while an AGI command was running."""


class AgiCommandError(RuntimeError):
    """Asterisk refused or failed an AGI command."""


def quote(value: str) -> str:
    """Quote one AGI argument: res_agi splits on spaces and honours double quotes and backslashes."""
    if PROTOCOL_BREAKING.search(value):
        raise ValueError(f"AGI argument contains CR, LF or NUL: {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Spoken(Protocol):
    """Something to read out rather than play from a file (the IVR's ``Say``)."""

    kind: str  # digits | number | alpha | time (HH:MM)
    text: str


Prompt = str | Spoken


def checked_prompts(prompts: Iterable[Prompt]) -> list[Prompt]:
    """The prompts, each checked to be a valid sound name or something its SAY command can read."""
    checked = list(prompts)
    for p in checked:
        if isinstance(p, str):
            if not SOUND_NAME.match(p):
                raise ValueError(f"not a valid sound name: {p!r}")
        elif p.kind not in SAYABLE or not SAYABLE[p.kind].match(p.text):
            raise ValueError(f"cannot say {p.kind!r} {p.text!r}")
    return checked


def play_command(prompt: Prompt, escape: str) -> str:
    if isinstance(prompt, str):
        return f"STREAM FILE {quote(prompt)} {quote(escape)}"
    if prompt.kind == "time":
        # SAY DATETIME reads a moment; a time of day is that many seconds into a day, said in UTC.
        hours, minutes = prompt.text.split(":")
        return f"SAY DATETIME {int(hours) * 3600 + int(minutes) * 60} {quote(escape)} IMp UTC"
    return f"SAY {prompt.kind.upper()} {quote(prompt.text)} {quote(escape)}"


async def read_headers(reader: asyncio.StreamReader, max_bytes: int) -> dict[str, str]:
    """Read ``agi_x: value`` lines up to the blank line. EOF or more than max_bytes ends it."""
    buffer = b""
    while b"\n\n" not in buffer:
        chunk = await reader.read(4096)
        if not chunk:
            raise AgiHeaderError(f"client closed after {len(buffer)} header bytes")
        buffer += chunk
        if len(buffer) > max_bytes and b"\n\n" not in buffer[:max_bytes]:
            raise AgiHeaderError(f"headers larger than {max_bytes} bytes")
    head, _, _rest = buffer.partition(b"\n\n")
    headers: dict[str, str] = {}
    for raw in head.decode("utf-8", "replace").split("\n"):
        key, sep, value = raw.partition(": ")
        if not sep or not key.startswith("agi_"):
            raise AgiHeaderError(f"malformed header line {raw[:80]!r}")
        headers[key] = value.strip()
    if "agi_network_script" not in headers:
        raise AgiHeaderError("no agi_network_script header")
    return headers


class AgiChannel:
    """The handful of AGI commands the IVR needs, each with safe arguments and a deadline."""

    def __init__(self, request: Request, command_timeout: float):
        self.request = request
        self.headers = request.headers
        self.command_timeout = command_timeout

    @property
    def uniqueid(self) -> str:
        return self.headers.get("agi_uniqueid", "")

    @property
    def channel(self) -> str:
        return self.headers.get("agi_channel", "")

    @property
    def caller_number(self) -> str:
        return self.headers.get("agi_callerid", "")

    async def command(self, line: str, timeout: float | None = None) -> dict:
        try:
            result = await asyncio.wait_for(self.request.send_command(line), timeout or self.command_timeout)
        except asyncio.TimeoutError:
            raise AgiCommandError(f"AGI command timed out: {line.split(' ', 2)[:2]}") from None
        if result.get("error") in ("AGIResultHangup", "AGIAppError") or result.get("status_code") == 511:
            raise CallerHungUp(result.get("msg", "hangup"))
        if "error" in result:
            raise AgiCommandError(f"{line.split(' ', 1)[0]}: {result.get('msg') or result['error']}")
        return result

    async def get_data(self, prompts: Iterable[Prompt], timeout: float, max_digits: int) -> str:
        """Play prompts (a key interrupts them), then collect up to max_digits keys; '' on timeout.

        GET DATA plays a single file, so the prompts before the last (and a last one that is said,
        not a file) are played with every key as an escape digit; a key pressed there is the first
        digit collected.
        """
        prompts = checked_prompts(prompts)  # every one checked before anything is played
        last = prompts.pop() if prompts and isinstance(prompts[-1], str) else "silence/1"
        keys = ""
        for prompt in prompts:
            keys = await self._play(prompt, ALL_KEYS)
            if keys:
                break
        if not keys:
            result = await self.command(
                f"GET DATA {quote(last)} {int(timeout * 1000)} {int(max_digits)}",
                timeout=timeout + 120)
            return result.get("result", ("", ""))[0]
        while len(keys) < max_digits and not keys.endswith("#"):
            result = await self.command(f"WAIT FOR DIGIT {int(timeout * 1000)}", timeout=timeout + 5)
            code = int(result.get("result", ("0", ""))[0] or 0)
            if code <= 0:
                break
            keys += chr(code)
        return keys

    async def _play(self, prompt: Prompt, escape: str) -> str:
        """Play or say one prompt; the key that interrupted it, if any."""
        result = await self.command(play_command(prompt, escape), timeout=300)
        code = int(result.get("result", ("0", ""))[0] or 0)
        return chr(code) if code > 0 else ""

    async def stream(self, prompts: Iterable[Prompt]) -> None:
        for prompt in checked_prompts(prompts):
            await self._play(prompt, "")

    async def set_language(self, language: str) -> None:
        """The channel's sound language: Asterisk plays sounds/<language>/x when it has it, else x."""
        if not LANGUAGE.match(language):
            raise ValueError(f"not a sound language: {language!r}")
        await self.command(f"SET VARIABLE CHANNEL(language) {quote(language)}")

    async def set_variable(self, name: str, value: str) -> None:
        if not VARIABLE_NAME.match(name):
            raise ValueError(f"not a valid variable name: {name!r}")
        await self.command(f"SET VARIABLE {name} {quote(value)}")


AgiHandler = Callable[[AgiChannel], Awaitable[None]]


class FastAgiServer:
    def __init__(self, *, header_timeout: float = 5.0, max_header_bytes: int = 16384,
                 command_timeout: float = 30.0):
        self.header_timeout = header_timeout
        self.max_header_bytes = max_header_bytes
        self.command_timeout = command_timeout
        self.routes: dict[str, AgiHandler] = {}
        self.rejected_connections = 0
        self.accepted_connections = 0  # sessions that sent good headers (the /metrics counter)
        self._server: asyncio.base_events.Server | None = None
        self._sessions: set[asyncio.Task] = set()

    def route(self, prefix: str, handler: AgiHandler) -> None:
        """Requests for ``prefix`` or ``prefix/<arg>`` go to ``handler``."""
        if not ROUTE.match(prefix):
            raise ValueError(f"bad route {prefix!r}")
        self.routes[prefix] = handler

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._handle, host, port, limit=self.max_header_bytes)
        log.info("FastAGI listening on %s:%d", host, port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._sessions):
                task.cancel()
            await asyncio.gather(*self._sessions, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    def _find_route(self, script: str) -> AgiHandler | None:
        path = urlsplit(script).path.strip("/")
        while path:
            if path in self.routes:
                return self.routes[path]
            path = path.rpartition("/")[0]
        return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._sessions.add(task)
        peer = writer.get_extra_info("peername")
        try:
            try:
                headers = await asyncio.wait_for(read_headers(reader, self.max_header_bytes), self.header_timeout)
            except (AgiHeaderError, asyncio.TimeoutError, ConnectionError) as exc:
                self.rejected_connections += 1
                log.warning("FastAGI connection from %s dropped: %s", peer, exc or "header timeout")
                return
            self.accepted_connections += 1
            handler = self._find_route(headers["agi_network_script"])
            if handler is None:
                log.error("FastAGI: no route for %r", headers["agi_network_script"])
                return
            channel = AgiChannel(Request(app=None, headers=headers, reader=reader, writer=writer),
                                 self.command_timeout)
            try:
                await handler(channel)
            except CallerHungUp:
                log.info("caller %s hung up during AGI", channel.uniqueid)
            except (AgiCommandError, ConnectionError, ValueError) as exc:
                log.warning("FastAGI session %s ended: %s", channel.uniqueid, exc)
            except Exception:
                log.exception("FastAGI handler failed for %s", channel.uniqueid)
        finally:
            self._sessions.discard(task)
            writer.close()
