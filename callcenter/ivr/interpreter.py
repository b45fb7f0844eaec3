"""A pure, step-by-step IVR interpreter: a flow plus the caller's answers in, instructions out.

The session never touches a channel, a clock or the event loop; the shell (FastAGI for real calls,
a simulator for dry runs) carries out each instruction and reports back with ``digits()`` or
``played()``. Given the same flow and the same answers it always gives the same instructions and the
same trail, which is what makes flows testable without Asterisk.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from callcenter.acd.model import MaxWait
from callcenter.acd.steps import Steps, validate_steps
from callcenter.asterisk.names import SAYABLE
from callcenter.ivr.expressions import CALLER, evaluate, parse_condition, render_template
from callcenter.ivr.flow import (
    LANGUAGE,
    LANGUAGE_VARIABLE,
    PRIORITY,
    BranchNode,
    Flow,
    GotoNode,
    HangupNode,
    InputNode,
    LookupNode,
    MenuNode,
    PlayNode,
    QueueCallbackOffer,
    QueueAnnouncements,
    QueueNode,
    SayItem,
    ScheduleNode,
    SetNode,
    SurveyNode,
    TransferNode,
    VoicemailNode,
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
class Say:
    """A prompt Asterisk reads out (SAY DIGITS / NUMBER / ALPHA, or a time as HH:MM); ``text`` has
    been checked against its kind, so the shell can pass it on as it is."""

    kind: Literal["digits", "number", "alpha", "time"]
    text: str


# What the shell plays: a sound name, or something to say.
PromptItem = str | Say


@dataclass(frozen=True)
class Collect:
    """Play ``prompts`` (interruptible by a key), then wait ``timeout`` seconds for up to
    ``max_digits`` keys. Answer with ``digits(keys)``; ``digits("")`` means nothing was pressed."""

    prompts: tuple[PromptItem, ...]
    max_digits: int
    timeout: float


@dataclass(frozen=True)
class Play:
    """Play ``prompts`` to the end. Answer with ``played()``."""

    prompts: tuple[PromptItem, ...]


@dataclass(frozen=True)
class Lookup:
    """Find the customer in the CRM by ``by`` (the caller's number, or digits the caller entered)
    whose value is ``value``. Answer with ``looked_up(...)``; a slow or failing CRM is answered
    with status "unavailable"."""

    by: Literal["caller", "account"]
    value: str


@dataclass(frozen=True)
class Finish:
    """The IVR is over. ``variables`` are the channel variables the dialplan acts on: CC_ACTION
    (queue | hangup | transfer | voicemail | fallback); for a queue CC_QUEUE and CC_PRIORITY; for a
    transfer CC_TRANSFER_TO; for voicemail CC_QUEUE (the mailbox); plus CC_VAR_<name> for each
    variable the flow set or collected (names match ``^[a-z][a-z0-9_]{0,31}$``, values plain
    data). The prompt language is not among them: the shell has set it on the channel already."""

    action: Literal["queue", "hangup", "transfer", "voicemail", "fallback"]
    queue: str | None = None  # the queue, or the voicemail box
    priority: int = 0
    variables: dict[str, str] = field(default_factory=dict)
    steps: Steps | None = None  # the queue node's own widening steps, replacing the queue's
    max_wait: MaxWait | None = None  # the queue node's own max wait, replacing the queue's
    announce: QueueAnnouncements | None = None  # what the waiting caller is told, and how often
    callback: QueueCallbackOffer | None = None  # when the waiting caller is offered a callback
    transfer_to: str | None = None


Instruction = Collect | Play | Lookup | Finish
# Finds a flow by name for a goto node (the engine's library, or a directory in a dry run).
FlowResolver = Callable[[str], "Flow | None"]
LookupStatus = Literal["found", "not_found", "unavailable"]


@dataclass(frozen=True)
class TrailEntry:
    """One thing that happened, for the event log.

    kinds and their data: menu_choice {key, target}; menu_invalid {key}; menu_timeout {};
    menu_default {target}; input_ok {variable, digits: how many}; input_invalid {digits: how
    many}; input_timeout {}; input_default {target}; set {variables: "a,b" (names only)};
    branch {case: index or "else", target}; schedule {schedule, state: open|closed|holiday,
    target}; lookup {by, status: found|not_found|unavailable, tier (when found), target};
    goto {flow, entry: the node it goes on at}; goto_missing {flow, entry}; queue {queue, priority}; transfer {to};
    voicemail {mailbox}; step_limit {steps}; hangup {reason: "flow" | "no_default" | "step_limit"}.
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
                 now: datetime | None = None, flows: FlowResolver | Mapping[str, Flow] | None = None) -> None:
        """``now`` is when the call arrived, for schedule nodes: the shell passes the real clock
        (aware); a naive time is read as the wall clock in each schedule's own zone (simulation).
        A flow with a schedule node needs it. ``flows`` finds the flows goto nodes go to (without
        it, a goto finds nothing and the caller goes to the fallback route)."""
        if max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        self.flow = flow  # the flow the caller is in now (a goto changes it)
        self._find_flow: FlowResolver = (flows.get if isinstance(flows, Mapping)
                                         else flows if flows is not None else (lambda _name: None))
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

    @property
    def language(self) -> str | None:
        """The prompt language the call has chosen (variable ``language``), if it is a valid one."""
        value = self.variables.get(LANGUAGE_VARIABLE, "")
        return value if LANGUAGE.match(value) else None

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
        if isinstance(node, SurveyNode):
            return self._give(self._survey_answer(node, keys))
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

    def looked_up(self, status: LookupStatus, customer: Mapping[str, str | int | None] | None = None) -> Instruction:
        """The answer to a ``Lookup``: "found" with the customer's ``id``, ``tier`` and (optional)
        ``language``; "not_found"; or "unavailable" when the CRM was slow or failed."""
        self._expect(Lookup)
        node = self._current()
        assert isinstance(node, LookupNode)
        if status == "found" and customer is not None and customer.get("id") is not None:
            tier = str(customer.get("tier") or "")
            self.variables["customer_id"] = str(customer["id"])
            self.variables["customer_tier"] = tier
            language = str(customer.get("language") or "")
            if LANGUAGE.match(language):
                self.variables["customer_language"] = language
            if tier in node.priority_by_tier:
                self.variables[PRIORITY] = str(node.priority_by_tier[tier])
            # the customer id (not a personal datum) lets KPIs tell repeat contacts apart (FCR)
            self._log("lookup", by=node.by, status="found", tier=tier, customer_id=str(customer["id"]),
                      target=node.found)
            return self._give(self._enter(node.found))
        shown = status if status in ("not_found", "unavailable") else "not_found"
        self._log("lookup", by=node.by, status=shown, target=node.not_found)
        return self._give(self._enter(node.not_found))

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
            case InputNode() | SurveyNode():
                self._failures = 0
                return self._collect(node, node.prompts)
            case QueueNode():
                priority = self._priority(node)
                self._log("queue", queue=node.queue, priority=priority)
                extra = {}
                if node.callback is not None:  # what the hold loop's callback offer plays and waits for
                    extra.update(CC_CB_KEY=node.callback.key, CC_CB_PROMPTS="&".join(node.callback.prompts),
                                 CC_CB_WAIT=str(node.callback.wait))
                if node.survey is not None:
                    extra["CC_SURVEY"] = node.survey
                return Finish("queue", node.queue, priority, self._dialplan_variables(
                    CC_ACTION="queue", CC_QUEUE=node.queue, CC_PRIORITY=str(priority), **extra),
                    steps=validate_steps(node.steps) if node.steps else None,
                    max_wait=node.max_wait.to_max_wait() if node.max_wait else None, announce=node.announce,
                    callback=node.callback)
            case TransferNode():
                self._log("transfer", to=node.to)
                return Finish("transfer", variables=self._dialplan_variables(
                    CC_ACTION="transfer", CC_TRANSFER_TO=node.to), transfer_to=node.to)
            case VoicemailNode():
                self._log("voicemail", mailbox=node.mailbox)
                return Finish("voicemail", node.mailbox, variables=self._dialplan_variables(
                    CC_ACTION="voicemail", CC_QUEUE=node.mailbox))
            case LookupNode():
                value = self._caller() if node.by == "caller" else self.variables.get(node.variable or "", "")
                return Lookup(node.by, value)
            case GotoNode():
                return self._goto(node)
            case SetNode():
                self._set(node)
                return self._enter(node.next)
            case BranchNode():
                return self._enter(self._branch(node))
            case ScheduleNode():
                return self._enter(self._schedule(node))
            case PlayNode():
                self._after_play = node.next
                return Play(self._render(node.prompts))
            case HangupNode():
                if not node.prompts:
                    return self._hangup("flow")
                self._after_play = None
                return Play(self._render(node.prompts))
        raise TypeError(f"node type {node.type!r} has no interpreter")  # pragma: no cover

    def _survey_answer(self, node: SurveyNode, keys: str) -> Instruction:
        if isinstance(keys, str) and len(keys) == 1 and keys.isdigit() and 1 <= int(keys) <= node.scale:
            self._log("survey", question=node.question, score=int(keys))
            return self._after_survey(node)
        self._log("survey_timeout" if keys == "" else "survey_invalid", question=node.question)
        self._failures += 1
        if self._failures > node.retries:
            return self._after_survey(node)
        return self._step() or self._collect(node, node.invalid_prompts + node.prompts)

    def _after_survey(self, node: SurveyNode) -> Instruction:
        return self._enter(node.next) if node.next is not None else self._hangup("flow")

    def _collect(self, node: MenuNode | InputNode | SurveyNode, prompts: tuple[str | SayItem, ...]) -> Collect:
        # Menu keys are single characters, so one key is all there is to wait for.
        max_digits = node.max_digits if isinstance(node, InputNode) else 1
        return Collect(prompts=self._render(prompts), max_digits=max_digits, timeout=node.timeout)

    def _render(self, prompts: tuple[str | SayItem, ...]) -> tuple[PromptItem, ...]:
        """Sound names as they are; say items with their value read now, dropped if unsayable."""
        rendered: list[PromptItem] = []
        for prompt in prompts:
            if isinstance(prompt, str):
                rendered.append(prompt)
                continue
            text = render_template(prompt.value, lambda ref: self._read(ref, self.variables))
            if SAYABLE[prompt.say].match(text):
                rendered.append(Say(prompt.say, text))
        return tuple(rendered)

    def _goto(self, node: GotoNode) -> Instruction:
        target = self._find_flow(node.flow)
        entry = node.node or (target.start if target is not None else None)
        if target is None or entry not in target.nodes:
            self._log("goto_missing", flow=node.flow, entry=node.node or "")
            return Finish("fallback", variables=self._dialplan_variables(CC_ACTION="fallback"))
        self._log("goto", flow=target.name, entry=entry)
        self.flow = target
        return self._enter(entry)

    def _retry(self, node: MenuNode | InputNode, reprompt: tuple[str | SayItem, ...], default_kind: str) -> Instruction:
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

    def _dialplan_variables(self, **actions: str) -> dict[str, str]:
        """The action's own CC_ variables, then the flow's variables (prefixed, so they cannot
        replace an action variable)."""
        return {**actions, **{f"{DIALPLAN_PREFIX}{name}": value for name, value in self.variables.items()}}

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
        return Finish("hangup", None, 0, self._dialplan_variables(CC_ACTION="hangup"))

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
