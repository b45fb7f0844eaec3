"""A pure, step-by-step IVR interpreter: a flow plus the caller's answers in, instructions out.

The session never touches a channel, a clock or the event loop; the shell (FastAGI for real calls,
a simulator for dry runs) carries out each instruction and reports back with ``digits()`` or
``played()``. Given the same flow and the same answers it always gives the same instructions and the
same trail, which is what makes flows testable without Asterisk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from callcenter.acd.steps import Steps, validate_steps
from callcenter.ivr.expressions import CALLER, evaluate, parse_condition, render_template
from callcenter.ivr.flow import (
    PRIORITY,
    BranchNode,
    Flow,
    HangupNode,
    InputNode,
    MenuNode,
    PlayNode,
    QueueNode,
    ScheduleNode,
    SetNode,
)

DTMF_KEYS = frozenset("0123456789*#")
# Far more than any sane flow needs (a menu with 5 retries uses 7 steps), yet small enough that a
# flow looping back on itself ends the call instead of keeping the caller forever.
MAX_STEPS = 100
# Keys come from the caller's phone: the trail keeps only this many, and only printable DTMF.
_TRAIL_KEY_CHARS = frozenset("0123456789*#ABCD")
_TRAIL_KEY_MAX = 8
# Flow variables reach the dialplan under this prefix, so a flow cannot set any other channel
# variable (CC_ACTION, CC_QUEUE, Asterisk's own) whatever its variable names.
DIALPLAN_PREFIX = "CC_VAR_"
# Caller ID is untrusted text: kept short and without control characters before a template or a
# condition reads it (a CR/LF could never be passed to SET VARIABLE).
_CALLER_MAX = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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
    (CC_ACTION, and for a queue CC_QUEUE and CC_PRIORITY), plus CC_VAR_<name> for each variable
    the flow set or collected (names match ``^[a-z][a-z0-9_]{0,31}$``, values are plain data)."""

    action: Literal["queue", "hangup"]
    queue: str | None = None
    priority: int = 0
    variables: dict[str, str] = field(default_factory=dict)
    steps: Steps | None = None  # the queue node's own widening steps, replacing the queue's


Instruction = Collect | Play | Finish


@dataclass(frozen=True)
class TrailEntry:
    """One thing that happened, for the event log.

    kinds and their data: menu_choice {key, target}; menu_invalid {key}; menu_timeout {};
    menu_default {target}; input_ok {variable, digits: how many}; input_invalid {digits: how
    many}; input_timeout {}; input_default {target}; set {variables: "a,b" (names only)};
    branch {case: index or "else", target}; schedule {schedule, state: open|closed|holiday,
    target}; queue {queue, priority}; step_limit {steps};
    hangup {reason: "flow" | "no_default" | "step_limit"}.
    Entered digits and variable values are never in the trail: they may be account numbers.
    """

    node: str
    kind: str
    data: dict[str, str | int] = field(default_factory=dict)


class IvrStateError(RuntimeError):
    """The shell called the session out of turn (e.g. ``digits()`` while a Play is pending)."""


class IvrSession:
    """One caller's walk through one flow."""

    def __init__(self, flow: Flow, caller_number: str = "", *, max_steps: int = MAX_STEPS,
                 now: datetime | None = None) -> None:
        """``now`` is when the call arrived, for schedule nodes: the shell passes the real clock
        (aware); a naive time is read as the wall clock in each schedule's own zone (simulation).
        A flow with a schedule node needs it."""
        if max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        self.flow = flow
        self.caller_number = caller_number  # untrusted (caller ID)
        self.now = now
        self.max_steps = max_steps
        self.variables: dict[str, str] = {}  # set and collected so far, by name
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
        node = self._current()
        if isinstance(node, InputNode):
            return self._give(self._input_answer(node, keys))
        menu = node
        assert isinstance(menu, MenuNode)  # menus and input nodes are all that issue Collect
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
        return self._give(self._retry(menu, reprompt, "menu_default"))

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
            case InputNode():
                self._failures = 0
                return self._collect(node, node.prompts)
            case QueueNode():
                priority = self._priority(node)
                self._log("queue", queue=node.queue, priority=priority)
                return Finish("queue", node.queue, priority, {
                    "CC_ACTION": "queue", "CC_QUEUE": node.queue, "CC_PRIORITY": str(priority),
                    **self._dialplan_variables()}, steps=validate_steps(node.steps) if node.steps else None)
            case SetNode():
                self._set(node)
                return self._enter(node.next)
            case BranchNode():
                return self._enter(self._branch(node))
            case ScheduleNode():
                return self._enter(self._schedule(node))
            case PlayNode():
                self._after_play = node.next
                return Play(node.prompts)
            case HangupNode():
                if not node.prompts:
                    return self._hangup("flow")
                self._after_play = None
                return Play(node.prompts)
        raise TypeError(f"node type {node.type!r} has no interpreter")  # pragma: no cover

    def _collect(self, node: MenuNode | InputNode, prompts: tuple[str, ...]) -> Collect:
        # Menu keys are single characters, so one key is all there is to wait for.
        max_digits = node.max_digits if isinstance(node, InputNode) else 1
        return Collect(prompts=prompts, max_digits=max_digits, timeout=node.timeout)

    def _retry(self, node: MenuNode | InputNode, reprompt: tuple[str, ...], default_kind: str) -> Instruction:
        """One more failed attempt: ask again, or once retries are used up go to the default."""
        self._failures += 1
        if self._failures > node.retries:
            if node.default is None:
                return self._hangup("no_default")
            self._log(default_kind, target=node.default)
            return self._enter(node.default)
        return self._step() or self._collect(node, reprompt + node.prompts)

    def _input_answer(self, node: InputNode, keys: str) -> Instruction:
        digits = keys if isinstance(keys, str) else ""
        if node.terminator == "#" and digits.endswith("#"):
            digits = digits[:-1]  # the key that ended the entry, not part of it
        if digits == "":
            self._log("input_timeout")
            return self._retry(node, node.timeout_prompts, "input_default")
        if not _valid_digits(node, digits):
            # The count only: the keys themselves may be most of a card number.
            self._log("input_invalid", digits=min(len(digits), 999))
            return self._retry(node, node.invalid_prompts, "input_default")
        self.variables[node.variable] = digits
        self._log("input_ok", variable=node.variable, digits=len(digits))
        return self._enter(node.next)

    def _set(self, node: SetNode) -> None:
        # Every value is rendered against the variables as they were before this node, so the
        # order of keys in the file does not change the result.
        before = dict(self.variables)
        for name, value in node.variables.items():
            self.variables[name] = render_template(value, lambda ref: self._read(ref, before)) \
                if isinstance(value, str) else str(value)
        self._log("set", variables=",".join(node.variables))

    def _branch(self, node: BranchNode) -> str:
        readable = {**self.variables, CALLER: self._caller()}
        for index, case in enumerate(node.cases):
            if evaluate(parse_condition(case.if_), readable):
                self._log("branch", case=index, target=case.goto)
                return case.goto
        self._log("branch", case="else", target=node.else_)
        return node.else_

    def _schedule(self, node: ScheduleNode) -> str:
        if self.now is None:
            raise IvrStateError("a schedule node needs the time the call arrived: IvrSession(now=...)")
        state = self.flow.schedules[node.schedule].state_at(self.now)
        target = {"open": node.open, "closed": node.closed}.get(state) or node.holiday or node.closed
        self._log("schedule", schedule=node.schedule, state=state, target=target)
        return target

    def _priority(self, node: QueueNode) -> int:
        # An explicit priority on the queue node wins; otherwise one a set node stored (validated
        # -10..10 at load, so int() cannot fail); otherwise the default.
        if "priority" in node.model_fields_set or PRIORITY not in self.variables:
            return node.priority
        return int(self.variables[PRIORITY])

    def _dialplan_variables(self) -> dict[str, str]:
        return {f"{DIALPLAN_PREFIX}{name}": value for name, value in self.variables.items()}

    def _read(self, name: str, variables: dict[str, str]) -> str:
        return self._caller() if name == CALLER else variables.get(name, "")

    def _caller(self) -> str:
        return _CONTROL.sub("", self.caller_number if isinstance(self.caller_number, str) else "")[:_CALLER_MAX]

    def _step(self) -> Finish | None:
        """Count one step; past the limit, end the call (a flow must not loop forever)."""
        self.steps += 1
        if self.steps <= self.max_steps:
            return None
        self._log("step_limit", steps=self.max_steps)
        return self._hangup("step_limit")

    def _hangup(self, reason: str) -> Finish:
        self._log("hangup", reason=reason)
        return Finish("hangup", None, 0, {"CC_ACTION": "hangup", **self._dialplan_variables()})

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


def _valid_digits(node: InputNode, digits: str) -> bool:
    if not node.min_digits <= len(digits) <= node.max_digits or not set(digits) <= DTMF_KEYS:
        return False
    if node.terminator == "#" and "#" in digits:
        return False  # a '#' can only end the entry, never be inside it
    return node.pattern is None or re.fullmatch(node.pattern, digits) is not None


def _trail_key(keys: object) -> str:
    """A log-safe rendering of whatever the caller sent: DTMF characters kept, others as '?'."""
    text = keys if isinstance(keys, str) else "?"
    shown = "".join(c if c in _TRAIL_KEY_CHARS else "?" for c in text[:_TRAIL_KEY_MAX])
    return shown + ("..." if len(text) > _TRAIL_KEY_MAX else "")
