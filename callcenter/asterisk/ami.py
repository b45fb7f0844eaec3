"""A thin, hardened wrapper around panoramisk's AMI manager.

What it adds to panoramisk, and why:
- it is created inside the running loop (panoramisk binds futures to whatever loop is current);
- every action has a timeout, and a timed-out action is removed from panoramisk's pending table
  instead of lingering there forever;
- values are checked before anything is sent: panoramisk escapes nothing, so a CR or LF inside a
  value would end the current action and inject a second one (a NUL would truncate it);
- event callbacks never raise into the protocol (an exception there would kill event delivery)
  and must not block: they run synchronously and hand off anything slow to tasks;
- no action is ever re-sent after a reconnect (panoramisk re-queues unanswered actions by default,
  which would ring an agent twice for one Originate);
- liveness: panoramisk sends Ping but never looks for the answer, so a peer that froze (or a
  half-open TCP connection) would look connected forever. Here every Ping must be answered within
  ``ping_interval``; one that is not drops the connection, so a dead peer is noticed within two
  intervals, and reconnecting backs off (1, 2, 4 ... ``reconnect_max`` seconds) while it is down.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from panoramisk import Manager
from panoramisk.message import Message

from callcenter.asterisk.names import PROTOCOL_BREAKING

log = logging.getLogger(__name__)

HEADER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


class AmiValueError(ValueError):
    """An action carried a value that would corrupt or inject AMI framing. Nothing was sent."""


class AmiTimeout(TimeoutError):
    """Asterisk did not answer an action in time."""


class AmiError(RuntimeError):
    """Asterisk answered an action with an error."""


class AmiNotConnected(ConnectionError):
    """The AMI connection is not up (yet, or any more)."""


class AmiConnectionLost(AmiNotConnected):
    """The connection dropped after the action was sent and before its answer: Asterisk may or may
    not have carried it out (for an Originate: the phone may be ringing). Never resent; whoever
    sent it finds out from the resync after the next login."""


class AmiIncompleteList(AmiError):
    """A list action's items did not add up to the ListItems count Asterisk announced."""


@dataclass(frozen=True)
class OriginateResult:
    answered: bool
    reason: int  # Asterisk's OriginateResponse Reason: 4 = answered, 3 = no answer, 5 = busy, 8 = congestion
    channel: str


def check_fields(action: str, fields: Mapping[str, object]) -> dict[str, str | list[str]]:
    """Return the fields as strings, or raise AmiValueError naming the action and field at fault."""
    clean: dict[str, str | list[str]] = {}
    for key, value in fields.items():
        if not HEADER_NAME.match(key):
            raise AmiValueError(f"AMI {action}: header name {key!r} is not a plain token")
        values = value if isinstance(value, (list, tuple)) else [value]
        as_text = []
        for v in values:
            text = str(v)
            if PROTOCOL_BREAKING.search(text):
                raise AmiValueError(
                    f"AMI {action}: value of {key!r} contains CR, LF or NUL, which would inject "
                    f"AMI framing; refused before sending: {text!r}")
            if key.lower() == "variable" and "," in text:
                # Asterisk splits each Variable header on commas: a comma would set extra variables.
                raise AmiValueError(f"AMI {action}: Variable {text!r} contains a comma; refused before sending")
            as_text.append(text)
        clean[key] = as_text if isinstance(value, (list, tuple)) else as_text[0]
    return clean


RECONNECT_FIRST = 1.0  # seconds before the first reconnection attempt; doubled after each failure
NO_PANORAMISK_PING = 10 ** 9  # panoramisk's own pinger never fires: ours checks the answers


class _BackoffManager(Manager):
    """panoramisk's Manager, retrying a refused connection after a growing delay instead of
    every second forever."""

    reconnect_max = 30.0

    def connection_made(self, f):
        if not f.cancelled() and f.exception() is not None:
            # panoramisk schedules the next attempt with reconnect_timeout: lengthen it first
            self.reconnect_timeout = min(self.reconnect_timeout * 2, self.reconnect_max)
        return super().connection_made(f)


class AmiClient:
    def __init__(self, host: str, port: int, username: str, secret: str, *,
                 action_timeout: float = 5.0, on_event: Callable[[Message], None] | None = None,
                 on_login: Callable[[], None] | None = None, ping_interval: float = 5.0,
                 reconnect_max: float = 30.0):
        self._config = dict(host=host, port=port, username=username, secret=secret)
        self.action_timeout = action_timeout
        self.ping_interval = ping_interval
        self.reconnect_max = reconnect_max
        self._on_event = on_event
        self._on_login = on_login
        self._manager: Manager | None = None
        self._logged_in = asyncio.Event()
        self._fully_booted = asyncio.Event()  # FullyBooted seen on the current connection
        self._in_flight: set[asyncio.Future] = set()  # actions sent and not answered yet
        self._liveness: asyncio.Task | None = None
        self.dead_connections = 0  # connections dropped because a Ping went unanswered

    # ------------------------------------------------------------------ connection
    async def connect(self, timeout: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        self._manager = _BackoffManager(
            loop=loop, **self._config, ping_delay=NO_PANORAMISK_PING, ping_interval=NO_PANORAMISK_PING,
            reconnect_timeout=RECONNECT_FIRST, on_login=self._logged_in_cb, on_disconnect=self._disconnected_cb,
        )
        self._manager.reconnect_max = self.reconnect_max
        self._manager.register_event("*", self._dispatch)
        self._manager.connect()
        self._liveness = loop.create_task(self._check_liveness(), name="AMI liveness")
        try:
            await asyncio.wait_for(self._logged_in.wait(), timeout)
        except asyncio.TimeoutError:
            self.close()
            raise AmiNotConnected(
                f"could not log in to AMI at {self._config['host']}:{self._config['port']} "
                f"as {self._config['username']!r} within {timeout:.0f} s") from None

    @property
    def connected(self) -> bool:
        return self._logged_in.is_set()

    def _logged_in_cb(self, manager: Manager) -> None:
        log.info("AMI logged in")
        manager.reconnect_timeout = RECONNECT_FIRST
        self._logged_in.set()
        if self._on_login is not None:
            self._guard(self._on_login)

    def _disconnected_cb(self, manager: Manager, exc) -> None:
        log.warning("AMI connection lost: %s", exc)
        self._logged_in.clear()
        self._fully_booted.clear()
        # panoramisk keeps unanswered actions to resend after reconnecting; an Originate resent
        # would ring an agent twice. Actions still waiting for an answer fail now, rather than
        # at their timeout: their senders must not take the silence for a refusal.
        manager.awaiting_actions.clear()
        for future in list(self._in_flight):
            if not future.done():
                future.set_exception(AmiConnectionLost(f"AMI connection lost before the answer ({exc})"))

    async def _check_liveness(self) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            if not self.connected:
                continue  # panoramisk is reconnecting (or a login is pending)
            try:
                await self.action("Ping", timeout=self.ping_interval)
            except AmiTimeout:
                self.dead_connections += 1
                log.warning("AMI: no answer to Ping within %.1f s: the connection is dead, reconnecting",
                            self.ping_interval)
                self._drop_connection()
            except (AmiError, ConnectionError) as exc:
                log.info("AMI Ping not sent: %s", exc)

    def _drop_connection(self) -> None:
        """Abort the TCP connection: panoramisk sees it lost (on_disconnect) and reconnects."""
        protocol = self._manager.protocol if self._manager is not None else None
        transport = getattr(protocol, "transport", None)
        self._logged_in.clear()
        self._fully_booted.clear()
        if transport is not None:
            transport.abort()

    def close(self) -> None:
        if self._liveness is not None:
            self._liveness.cancel()
            self._liveness = None
        if self._manager is not None:
            # panoramisk reconnects on connection_lost; detach the callback first
            self._manager.connection_lost = lambda exc: None
            self._manager.close()
            self._manager = None
        self._logged_in.clear()

    # ------------------------------------------------------------------ events
    def _dispatch(self, manager: Manager, event: Message) -> None:
        if event.get("Event") == "FullyBooted":
            self._fully_booted.set()
        if self._on_event is not None:
            self._guard(self._on_event, event)

    @staticmethod
    def _guard(fn, *args) -> None:
        try:
            fn(*args)
        except Exception:  # an exception here would unwind into panoramisk's protocol
            log.exception("AMI event handler failed")

    # ------------------------------------------------------------------ actions
    async def action(self, name: str, *, timeout: float | None = None, **fields) -> Message | list[Message]:
        clean = check_fields(name, fields)
        if self._manager is None or self._manager.protocol is None or not self.connected:
            raise AmiNotConnected(f"AMI {name}: not connected")
        future = self._manager.send_action({"Action": name, **clean})
        self._in_flight.add(future)
        try:
            result = await asyncio.wait_for(asyncio.shield(future), timeout or self.action_timeout)
        except asyncio.TimeoutError:
            self._forget(future)
            raise AmiTimeout(f"AMI {name}: no answer within {timeout or self.action_timeout:.1f} s") from None
        finally:
            self._in_flight.discard(future)
        first = result[0] if isinstance(result, list) else result
        if first.get("Response", "").lower() == "error":
            raise AmiError(f"AMI {name}: {first.get('Message', 'error')}")
        return result

    def _forget(self, future: asyncio.Future) -> None:
        protocol = self._manager.protocol if self._manager else None
        if protocol is None:
            return
        for key, pending in list(protocol.responses.items()):
            if pending.future is future:
                protocol.responses.pop(key, None)
        future.cancel()

    async def originate_to_context(self, *, channel: str, context: str, exten: str, ring_timeout: float,
                                   channel_id: str, caller_id: str, variables: Mapping[str, str]) -> OriginateResult:
        """Ring ``channel``; once answered it runs ``context,exten,1``. Returns when answered or failed."""
        result = await self.action(
            "Originate", timeout=ring_timeout + 10,
            Channel=channel, Context=context, Exten=exten, Priority=1,
            Timeout=int(ring_timeout * 1000), Async="true", ChannelId=channel_id, CallerID=caller_id,
            Variable=[f"{k}={v}" for k, v in variables.items()],
        )
        final = result[-1] if isinstance(result, list) else result
        reason = int(final.get("Reason", 0) or 0)
        return OriginateResult(answered=final.get("Response") == "Success", reason=reason,
                               channel=final.get("Channel", ""))

    async def wait_connected(self, timeout: float) -> bool:
        """Wait (at most ``timeout``) for the connection to be logged in; False if it is not."""
        try:
            await asyncio.wait_for(self._logged_in.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def wait_fully_booted(self, timeout: float) -> bool:
        """Wait for Asterisk's FullyBooted on this connection (sent right after login once every
        module is loaded). False if it did not come in time: the caller decides whether to go on."""
        try:
            await asyncio.wait_for(self._fully_booted.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def list_action(self, name: str, item_event: str, *, timeout: float | None = None,
                          **fields) -> list[Message]:
        """A list action (``EventList: start`` ... ``<name>Complete``): its items, checked against the
        ListItems count of the closing event. A short list (events lost or cut) raises
        AmiIncompleteList rather than be taken for the truth."""
        result = await self.action(name, timeout=timeout, **fields)
        messages = result if isinstance(result, list) else [result]
        items = [m for m in messages if m.get("Event") == item_event]
        closing = [m for m in messages if m.get("EventList", "").lower() == "complete"]
        if not closing:
            raise AmiIncompleteList(f"AMI {name}: no closing event after {len(items)} item(s)")
        announced = closing[-1].get("ListItems")
        if announced is None or not str(announced).isdigit() or int(announced) != len(items):
            raise AmiIncompleteList(f"AMI {name}: {len(items)} item(s) received, ListItems says {announced!r}")
        return items

    async def set_global(self, name: str, value: str) -> None:
        await self.action("Setvar", Variable=name, Value=value)

    async def set_channel_var(self, channel: str, name: str, value: str) -> None:
        if not channel:
            raise AmiValueError(f"AMI Setvar {name}: no channel given")
        await self.action("Setvar", Channel=channel, Variable=name, Value=value)

    async def hangup(self, channel: str, cause: int = 16) -> None:
        """Hang up one channel, named by its name or its uniqueid (no regular expressions)."""
        if channel.startswith("/"):
            raise AmiValueError("AMI Hangup: regular expressions are not used by the engine")
        await self.action("Hangup", Channel=channel, Cause=cause)

    async def redirect(self, channel: str, context: str, exten: str, priority: int = 1, *,
                       also: tuple[str, str] | None = None) -> None:
        """Send ``channel`` to ``context,exten,priority``; ``also`` = (channel, context) moves a
        second channel (to its ``exten``,1) in the same action, which is how two bridged channels
        leave their bridge together."""
        extra = {} if also is None else {"ExtraChannel": also[0], "ExtraContext": also[1], "ExtraExten": exten,
                                         "ExtraPriority": 1}
        await self.action("Redirect", Channel=channel, Context=context, Exten=exten, Priority=priority, **extra)
