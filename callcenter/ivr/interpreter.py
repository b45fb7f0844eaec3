"""A pure, step-by-step IVR interpreter: a flow plus the caller's answers in, instructions out.

The session never touches a channel, a clock or the event loop; the shell (FastAGI for real calls,
a simulator for dry runs) carries out each instruction and reports back with ``digits()`` or
``played()``. Given the same flow and the same answers it always gives the same instructions and the
same trail, which is what makes flows testable without Asterisk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from callcenter.ivr.flow import Flow, HangupNode, MenuNode, PlayNode, QueueNode

DTMF_KEYS = frozenset("0123456789*#")
# Far more than any sane flow needs (a menu with 5 retries uses 7 steps), yet small enough that a
# flow looping back on itself ends the call instead of keeping the caller forever.
MAX_STEPS = 100
# Keys come from the caller's phone: the trail keeps only this many, and only printable DTMF.
_TRAIL_KEY_CHARS = frozenset("0123456789*#ABCD")
_TRAIL_KEY_MAX = 8


@dataclass(frozen=True)
class Collect:
    """Play ``prompts`` (interruptible by a key), then wait ``timeout`` seconds for up to
    ``max_digits`` keys. Answer with ``digits(keys)``; ``digits("")`` means nothing was pressed."""

    prompts: tuple[str, ...]
    max_digits: int
    timeout: float


@dataclass(frozen=True)
class Play:
    """Play ``prompts`` to the end. Answer with ``played()``."""

    prompts: tuple[str, ...]


@dataclass(frozen=True)
class Finish:
    """The IVR is over. ``variables`` are the channel variables the dialplan acts on
    (CC_ACTION, and for a queue CC_QUEUE and CC_PRIORITY)."""

    action: Literal["queue", "hangup"]
    queue: str | None = None
    priority: int = 0
    variables: dict[str, str] = field(default_factory=dict)


Instruction = Collect | Play | Finish


@dataclass(frozen=True)
class TrailEntry:
    """One thing that happened, for the event log.

    kinds and their data: menu_choice {key, target}; menu_invalid {key}; menu_timeout {};
    menu_default {target}; queue {queue, priority}; step_limit {steps};
    hangup {reason: "flow" | "no_default" | "step_limit"}.
    """

    node: str
    kind: str
    data: dict[str, str | int] = field(default_factory=dict)


class IvrStateError(RuntimeError):
    """The shell called the session out of turn (e.g. ``digits()`` while a Play is pending)."""


class IvrSession:
    """One caller's walk through one flow."""

    def __init__(self, flow: Flow, caller_number: str = "", *, max_steps: int = MAX_STEPS) -> None:
        if max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        self.flow = flow
        self.caller_number = caller_number  # untrusted (caller ID); kept for later node types
        self.max_steps = max_steps
        self.trail: list[TrailEntry] = []
        self.node: str | None = None  # the node the caller is at
        self.steps = 0
        self._pending: Instruction | None = None  # the instruction the shell is carrying out
        self._started = False
        self._failures = 0  # failed attempts at the current menu
        self._after_play: str | None = None  # node to go to once a Play is done; None: hang up

    @property
    def pending(self) -> Instruction | None:
        """The last instruction given: awaiting an answer, or the final ``Finish``."""
        return self._pending

    @property
    def finished(self) -> bool:
        return isinstance(self._pending, Finish)

    @property
    def result(self) -> Finish | None:
        return self._pending if isinstance(self._pending, Finish) else None

    def start(self) -> Instruction:
        if self._started:
            raise IvrStateError("session already started")
        self._started = True
        return self._give(self._enter(self.flow.start))

    def digits(self, keys: str) -> Instruction:
        """The caller's answer to a ``Collect``: the keys pressed, or "" on timeout."""
        self._expect(Collect)
        menu = self._current()
        assert isinstance(menu, MenuNode)  # only menus issue Collect so far
        if keys == "":
            self._log("menu_timeout")
            reprompt = menu.timeout_prompts
        elif isinstance(keys, str) and len(keys) == 1 and keys in DTMF_KEYS and keys in menu.options:
            target = menu.options[keys]
            self._log("menu_choice", key=keys, target=target)
            return self._give(self._enter(target))
        else:
            self._log("menu_invalid", key=_trail_key(keys))
            reprompt = menu.invalid_prompts
        self._failures += 1
        if self._failures > menu.retries:
            if menu.default is None:
                return self._give(self._hangup("no_default"))
            self._log("menu_default", target=menu.default)
            return self._give(self._enter(menu.default))
        return self._give(self._step() or self._collect(menu, reprompt + menu.prompts))

    def played(self) -> Instruction:
        """The answer to a ``Play``: the prompts have been played."""
        self._expect(Play)
        if self._after_play is None:
            return self._give(self._hangup("flow"))
        return self._give(self._enter(self._after_play))

    # ---------------------------------------------------------------------------- internals

    def _enter(self, name: str) -> Instruction:
        self.node = name
        limit = self._step()
        if limit is not None:
            return limit
        node = self.flow.nodes[name]
        match node:
            case MenuNode():
                self._failures = 0
                return self._collect(node, node.prompts)
            case QueueNode():
                self._log("queue", queue=node.queue, priority=node.priority)
                return Finish("queue", node.queue, node.priority, {
                    "CC_ACTION": "queue", "CC_QUEUE": node.queue, "CC_PRIORITY": str(node.priority)})
            case PlayNode():
                self._after_play = node.next
                return Play(node.prompts)
            case HangupNode():
                if not node.prompts:
                    return self._hangup("flow")
                self._after_play = None
                return Play(node.prompts)
        raise TypeError(f"node type {node.type!r} has no interpreter")  # pragma: no cover

    def _collect(self, menu: MenuNode, prompts: tuple[str, ...]) -> Collect:
        # Menu keys are single characters, so one key is all there is to wait for.
        return Collect(prompts=prompts, max_digits=1, timeout=menu.timeout)

    def _step(self) -> Finish | None:
        """Count one step; past the limit, end the call (a flow must not loop forever)."""
        self.steps += 1
        if self.steps <= self.max_steps:
            return None
        self._log("step_limit", steps=self.max_steps)
        return self._hangup("step_limit")

    def _hangup(self, reason: str) -> Finish:
        self._log("hangup", reason=reason)
        return Finish("hangup", None, 0, {"CC_ACTION": "hangup"})

    def _current(self) -> object:
        assert self.node is not None
        return self.flow.nodes[self.node]

    def _log(self, kind: str, **data: str | int) -> None:
        self.trail.append(TrailEntry(self.node or "", kind, data))

    def _give(self, instruction: Instruction) -> Instruction:
        self._pending = instruction
        return instruction

    def _expect(self, kind: type) -> None:
        if not isinstance(self._pending, kind):
            state = "not started" if self._pending is None else f"pending {type(self._pending).__name__}"
            raise IvrStateError(f"expected an answer to {kind.__name__}, but the session is {state}")


def _trail_key(keys: object) -> str:
    """A log-safe rendering of whatever the caller sent: DTMF characters kept, others as '?'."""
    text = keys if isinstance(keys, str) else "?"
    shown = "".join(c if c in _TRAIL_KEY_CHARS else "?" for c in text[:_TRAIL_KEY_MAX])
    return shown + ("..." if len(text) > _TRAIL_KEY_MAX else "")
