"""A dry run of a flow with no phone: the same ``IvrSession`` a real call uses, answered from a list.

The caller's key presses are given up front, one group per time a menu waits (``9,,2``: '9' to the
first, nothing - a timeout - to the second, '2' to the third). Prompts are "played" at once. The
result is the walk node by node: what would be played (and in which language), which keys each
menu received, the customer lookups and what they found, the trail, and how the IVR ends (a queue
with priority, steps, max wait and announcements; a transfer; voicemail; a hang-up) with the channel
variables it sets. Lookups are answered by a function the caller of ``simulate`` gives (the CLI
reads the configured CRM); goto nodes find other flows through ``flows``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from callcenter.ivr.flow import Flow
from callcenter.ivr.interpreter import (
    Collect,
    Finish,
    FlowResolver,
    Instruction,
    IvrSession,
    Lookup,
    LookupStatus,
    Play,
    PromptItem,
    Say,
    TrailEntry,
)

# Answers a lookup: (status, the customer's id/tier/language when found).
LookupAnswer = Callable[[Lookup], tuple[LookupStatus, Mapping[str, Any] | None]]


def no_crm(_lookup: Lookup) -> tuple[LookupStatus, None]:
    """The lookup answer without a CRM: as a real call gets when the CRM does not answer."""
    return "unavailable", None

# What a phone can send as DTMF; anything else in --digits is a typo, not a caller's key.
SIMULATED_KEYS = frozenset("0123456789*#ABCD")


@dataclass(frozen=True)
class SimStep:
    """One instruction the session gave, and the answer the simulated caller gave to it."""

    node: str  # the node that gave the instruction
    kind: Literal["collect", "play", "lookup"]
    prompts: tuple[PromptItem, ...]
    timeout: float | None  # collect: seconds the menu waits for a key
    max_digits: int | None  # collect: how many keys it reads at most (1 for a menu)
    pressed: str | None  # collect: the key group from the list, "" = nothing; None: list ran out
    received: str | None  # collect: what the menu got (a real GET DATA stops at max_digits keys)
    trail: tuple[TrailEntry, ...]  # what the answer led to
    language: str | None = None  # the call's prompt language when the instruction was given
    flow: str = ""  # the flow the node is in (a goto moves the caller to another)
    lookup: str | None = None  # lookup: what was looked up by, e.g. "caller +8613800138000"

    @property
    def assumed_silence(self) -> bool:
        """The list of key groups ran out here, so the caller is taken to press nothing."""
        return self.kind == "collect" and self.pressed is None


@dataclass(frozen=True)
class SimResult:
    flow: str
    source: str
    caller: str
    at: datetime | None  # when the call is placed, as given (schedule nodes); None: the real clock
    steps: tuple[SimStep, ...]
    finish: Finish
    trail: tuple[TrailEntry, ...]  # the session's whole trail
    unused_keys: tuple[str, ...]  # key groups left over when the IVR ended

    @property
    def prompts(self) -> tuple[str, ...]:
        """Every prompt that would be played, in order (say items as "say digits 1234")."""
        return tuple(prompt_text(prompt) for step in self.steps for prompt in step.prompts)

    @property
    def variables(self) -> dict[str, str]:
        """The channel variables the dialplan would act on."""
        return dict(self.finish.variables)

    def as_dict(self) -> dict[str, Any]:
        return {
            "flow": self.flow,
            "source": self.source,
            "caller": self.caller,
            "at": self.at.isoformat() if self.at is not None else None,
            "steps": [{**asdict(step), "prompts": [prompt_text(p) for p in step.prompts],
                       "assumed_silence": step.assumed_silence} for step in self.steps],
            "prompts": list(self.prompts),
            "trail": [asdict(entry) for entry in self.trail],
            "result": {"action": self.finish.action, "queue": self.finish.queue,
                       "priority": self.finish.priority,
                       # None: the queue's own steps (and max wait) from the routing file apply
                       "steps": self.finish.steps.describe() if self.finish.steps else None,
                       "max_wait": _max_wait_text(self.finish),
                       "announce": self.finish.announce.model_dump() if self.finish.announce else None,
                       "transfer_to": self.finish.transfer_to},
            "variables": self.variables,
            "unused_keys": list(self.unused_keys),
        }


def parse_digits(spec: str) -> tuple[str, ...]:
    """``"9,,2"`` -> ``("9", "", "2")``: one key group per menu attempt, empty for a timeout.
    An empty spec is no groups at all (the caller never presses anything)."""
    if spec.strip() == "":
        return ()
    groups = tuple(group.strip() for group in spec.split(","))
    for group in groups:
        bad = sorted(set(group) - SIMULATED_KEYS)
        if bad:
            raise ValueError(f"key group {group!r}: {''.join(bad)!r} is not a phone key "
                             "(keys are 0-9, *, #, A-D; groups are separated by ',')")
    return groups


def simulate(flow: Flow, keys: Sequence[str] = (), *, caller: str = "",
             at: datetime | None = None, flows: FlowResolver | None = None,
             lookup: LookupAnswer = no_crm) -> SimResult:
    """Walk ``flow`` answering each wait for keys with the next group of ``keys``; once they run
    out, with silence. Always ends: the session's step limit bounds any flow.

    ``at`` is when the call is placed; a naive time is the wall clock in each schedule's zone
    ("09:00" means 09:00 where the schedule is). Without it, schedule nodes use the real clock."""
    session = IvrSession(flow, caller_number=caller, now=at if at is not None else datetime.now(timezone.utc),
                         flows=flows)
    remaining = list(keys)
    steps: list[SimStep] = []
    instruction: Instruction = session.start()
    while not isinstance(instruction, Finish):
        node, where, language = session.node or "", session.flow.name, session.language
        logged = len(session.trail)
        if isinstance(instruction, Collect):
            pressed = remaining.pop(0) if remaining else None
            # Like the FastAGI shell: the channel hands over at most max_digits keys.
            received = (pressed or "")[: instruction.max_digits]
            next_instruction = session.digits(received)
            step = SimStep(node, "collect", instruction.prompts, instruction.timeout, instruction.max_digits,
                           pressed, received, tuple(session.trail[logged:]), language, where)
        elif isinstance(instruction, Play):
            next_instruction = session.played()
            step = SimStep(node, "play", instruction.prompts, None, None, None, None,
                           tuple(session.trail[logged:]), language, where)
        elif isinstance(instruction, Lookup):
            next_instruction = session.looked_up(*lookup(instruction))
            step = SimStep(node, "lookup", (), None, None, None, None, tuple(session.trail[logged:]),
                           language, where, f"{instruction.by} {instruction.value or '(empty)'}")
        else:  # pragma: no cover - the interpreter has no other instructions
            raise TypeError(f"unknown IVR instruction {instruction!r}")
        steps.append(step)
        instruction = next_instruction
    return SimResult(flow=flow.name, source=flow.source, caller=caller, at=at, steps=tuple(steps),
                     finish=instruction, trail=tuple(session.trail), unused_keys=tuple(remaining))


# -------------------------------------------------------------------------------- rendering


def render(result: SimResult) -> str:
    """The walk as text, one numbered step per instruction, for a person reading a terminal."""
    at = result.at.strftime("%Y-%m-%d %H:%M") if result.at is not None else "not given"
    lines = [f"flow {result.flow} ({result.source}); caller {result.caller or '(none)'}; at {at}"]
    # Entries logged before the first instruction: the start node ended the IVR by itself.
    lines += [f"      {_entry(e)}" for e in result.trail[: len(result.trail) - sum(len(s.trail) for s in result.steps)]]
    for number, step in enumerate(result.steps, 1):
        lines.append(f"{number:>3}. {step.node}: {_instruction(step)}")
        if step.kind == "collect":
            lines.append(f"      caller: {_answer(step)}")
        lines += [f"      {_entry(e)}" for e in step.trail]
    lines.append(f"result: {_finish(result.finish)}")
    lines.append("variables: " + " ".join(f"{k}={v}" for k, v in result.variables.items()))
    lines.append("prompts played: " + (", ".join(result.prompts) or "none"))
    if result.unused_keys:
        lines.append("unused key groups: " + ",".join(result.unused_keys) + " (the IVR ended first)")
    return "\n".join(lines)


def prompt_text(prompt: PromptItem) -> str:
    return f"say {prompt.kind} {prompt.text}" if isinstance(prompt, Say) else prompt


def _instruction(step: SimStep) -> str:
    if step.kind == "lookup":
        return f"look up the customer by {step.lookup}"
    prompts = ", ".join(prompt_text(p) for p in step.prompts) or "nothing"
    if step.language is not None:
        prompts = f"({step.language}) {prompts}"
    if step.kind == "play":
        return f"play {prompts}"
    if step.max_digits and step.max_digits > 1:
        return f"play {prompts}; wait {step.timeout:g} s for up to {step.max_digits} keys"
    return f"play {prompts}; wait {step.timeout:g} s for a key"


def _answer(step: SimStep) -> str:
    if step.pressed is None:
        return "presses nothing (no key groups left)"
    if step.pressed == "":
        return "presses nothing"
    extra = "" if step.received == step.pressed else f" (only {step.received!r} is read)"
    return f"presses {step.pressed}{extra}"


def _entry(entry: TrailEntry) -> str:
    data = " ".join(f"{k}={v}" for k, v in entry.data.items())
    return f"trail: {entry.node} {entry.kind}" + (f" {data}" if data else "")


def _finish(finish: Finish) -> str:
    if finish.action == "queue":
        steps = "; ".join(finish.steps.describe()) if finish.steps else "the queue's own steps"
        text = f"queue {finish.queue} with priority {finish.priority}, requiring {steps}"
        if finish.max_wait is not None:
            text += f"; max wait {_max_wait_text(finish)}"
        if finish.announce is not None:
            told = [what for what, on in (("position", finish.announce.position),
                                          ("estimated wait", finish.announce.estimated_wait)) if on]
            text += (f"; announcing {' and '.join(told) or 'nothing'} after {finish.announce.first_after} s, "
                     f"then every {finish.announce.every} s")
        return text
    if finish.action == "transfer":
        return f"transfer to {finish.transfer_to}"
    if finish.action == "voicemail":
        return f"voicemail in mailbox {finish.queue}"
    if finish.action == "fallback":
        return "fallback route (every agent rings)"
    return "hangup"


def _max_wait_text(finish: Finish) -> str | None:
    limit = finish.max_wait
    if limit is None:
        return None
    then = f"overflow to {limit.target}" if limit.target else limit.action.value
    return f"{limit.seconds:g} s, then {then}"
