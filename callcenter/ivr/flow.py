"""IVR flow files: the node model, and a loader whose errors point at ``file:line:column: field``.

One flow per YAML file; the flow's name is the file stem (the dialplan asks for it by that name).
The node model is a union discriminated on ``type`` so the language can grow node types without
touching the loader: a new node class joins ``Node``, and says which other nodes it can lead to in
``targets()``, and reference checking covers it.

YAML is composed into a node tree first (which keeps every value's position) and only then
constructed into Python data, so pydantic error locations can be mapped back to lines and columns.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, Union, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    Tag,
    ValidationError,
)

from callcenter.acd.config import MaxWaitSpec
from callcenter.acd.steps import StepsError, validate_steps
from callcenter.asterisk.names import LANGUAGE, PROTOCOL_BREAKING, SOUND_NAME
from callcenter.yaml_source import YamlSourceError, compose_yaml, list_index, locate_mark
from callcenter.config import QUEUE_NAME
from callcenter.ivr.expressions import (
    CALLER,
    VARIABLE_NAME,
    ExpressionError,
    check_pattern,
    condition_names,
    parse_condition,
    template_references,
)
from callcenter.ivr.schedules import Schedule, hours_problems

# Sound names go into AGI commands (STREAM FILE / GET DATA) verbatim: no dots (so no '..' and no
# file extensions), no spaces or quotes that would split or break the command line.
NODE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
# The flow name travels in the AGI URL (agi://host/ivr/<flow>), so it is kept URL- and log-safe.
FLOW_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
DTMF_KEY = re.compile(r"^[0-9*#]$")
# A number a transfer node may dial: an extension or an external number, digits with an optional
# leading '+', so it can go into the dialplan with no quoting at all.
DIAL_NUMBER = re.compile(r"^\+?[0-9]{2,20}$")
FLOW_SUFFIXES = (".yaml", ".yml")

# What each pattern means, for error messages a person writing a flow can act on.
_PATTERN_HELP = {
    SOUND_NAME.pattern: "a sound name like 'digits/1': lowercase letters, digits, '_', '-' and '/'"
    " (no dots, spaces, quotes or file extension)",
    NODE_NAME.pattern: "a node name: a letter, then letters, digits, '_' or '-' (at most 64)",
    DTMF_KEY.pattern: "a single key: one of 0-9, * or # (quote it in YAML, e.g. \"1\" or \"#\")",
    QUEUE_NAME.pattern: f"a queue name matching {QUEUE_NAME.pattern}",
    VARIABLE_NAME.pattern: "a variable name: a lowercase letter, then lowercase letters, digits or '_'"
    " (at most 32)",
    DIAL_NUMBER.pattern: "an extension or phone number: 2 to 20 digits, optionally after a '+'",
    FLOW_NAME.pattern: f"a flow name (a file name without .yaml) matching {FLOW_NAME.pattern}",
}
_TYPE_HELP = {
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dict_type": "a mapping",
    "tuple_type": "a list, e.g. [hello, digits/1]",
    "string_type": "a string",
    "int_type": "a whole number",
    "float_type": "a number",
}


def _digit_keys(options: Any) -> Any:
    # YAML reads an unquoted `1:` as the integer 1; accept single digits so `{1: sales}` works.
    if isinstance(options, dict):
        return {
            (str(k) if isinstance(k, int) and not isinstance(k, bool) and 0 <= k <= 9 else k): v
            for k, v in options.items()
        }
    return options


Sound = Annotated[str, Field(pattern=SOUND_NAME.pattern)]
NodeName = Annotated[str, Field(pattern=NODE_NAME.pattern)]
DtmfKey = Annotated[str, Field(pattern=DTMF_KEY.pattern)]
SAY_KINDS = ("digits", "number", "alpha", "time")


class SayItem(BaseModel):
    """A prompt read out by Asterisk rather than played from a file, e.g. the account number the
    caller typed: ``{say: digits, value: "${account}"}``. ``value`` may use ``${name}`` references;
    when what it reads is not sayable (digits: 0-9*#; number: a whole number; alpha: letters and
    digits; time: HH:MM) the item is skipped, never half-said."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    say: Literal["digits", "number", "alpha", "time"]
    value: Annotated[StrictStr, Field(min_length=1, max_length=200)]


# A prompt is a sound name or a say item; told apart by shape, so an error in either is reported
# against that one form instead of against both.
Prompt = Annotated[
    Union[Annotated[Sound, Tag("sound")], Annotated[SayItem, Tag("say")]],
    Discriminator(lambda value: "say" if isinstance(value, dict | SayItem) else "sound"),
]
Prompts = Annotated[tuple[Prompt, ...], Field(max_length=32)]
_PROMPT_TAGS = ("sound", "say")
VariableName = Annotated[str, Field(pattern=VARIABLE_NAME.pattern)]
# A set node's value: text (with ${var} references) or a whole number (YAML reads `priority: 5`
# as one). Strict, so YAML's yes/no do not slip in as 1/0.
SetValue = Union[StrictInt, Annotated[StrictStr, Field(max_length=256)]]
# The one set key with a meaning beyond being stored: the queue priority (see QueueNode). Others,
# such as `queue_skills` and `language`, are stored like any variable, for the dialplan and the ACD.
PRIORITY = "priority"
# The set key that picks the call's prompt language (Asterisk's CHANNEL(language)).
LANGUAGE_VARIABLE = "language"
MAX_INPUT_DIGITS = 32


class _NodeBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def targets(self) -> Iterator[tuple[tuple[str, ...], str]]:
        """(field path inside this node, node name) for every node this one can lead to."""
        return iter(())

    def sounds(self) -> Iterator[tuple[tuple[str, ...], str]]:
        """(field path inside this node, sound name) for every prompt this node can play.

        By convention every field whose name ends in ``prompts`` is a list of sound names, so a new
        node type's prompts are covered (e.g. by the sound-file check) without another list to keep.
        """
        for name, index, prompt in self.prompt_items():
            if isinstance(prompt, str):
                yield (name, str(index)), prompt

    def prompt_items(self) -> Iterator[tuple[str, int, str | SayItem]]:
        """(field, index, prompt) for every prompt of every ``*prompts`` field."""
        for name in type(self).model_fields:
            if name.endswith("prompts"):
                for index, prompt in enumerate(getattr(self, name)):
                    yield name, index, prompt


class MenuNode(_NodeBase):
    """Play prompts, wait for one key, go to the node the key maps to (re-asking on failure)."""

    type: Literal["menu"]
    prompts: Annotated[Prompts, Field(min_length=1)]
    options: Annotated[dict[DtmfKey, NodeName], Field(min_length=1), BeforeValidator(_digit_keys)]
    timeout: Annotated[float, Field(strict=True, ge=1, le=60)] = 5.0
    retries: Annotated[int, Field(strict=True, ge=0, le=5)] = 2
    invalid_prompts: Prompts = ()
    timeout_prompts: Prompts = ()
    default: NodeName | None = None

    def targets(self) -> Iterator[tuple[tuple[str, ...], str]]:
        for key, target in self.options.items():
            yield ("options", key), target
        if self.default is not None:
            yield ("default",), self.default


def _checked_steps(raw: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if raw is not None:
        try:
            validate_steps(raw)
        except StepsError as exc:
            raise ValueError(str(exc)) from None
    return raw


class QueueAnnouncements(BaseModel):
    """What a waiting caller is told, and how often: their place in line ("you are next" / "there
    are N calls waiting ahead of you") and the estimated wait in minutes (said only when there is an
    estimate, i.e. someone staffs the queue). The first announcement comes ``first_after`` seconds
    into the wait, then one every ``every`` seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    position: StrictBool = True
    estimated_wait: StrictBool = True
    every: Annotated[int, Field(strict=True, ge=15, le=3600)] = 60
    first_after: Annotated[int, Field(strict=True, ge=0, le=3600)] = 0


class QueueCallbackOffer(BaseModel):
    """Virtual hold: offer a waiting caller to be called back, keeping their place, instead of
    holding on. Offered once the estimated wait is over ``when_wait_over`` seconds: the first time
    ``first_after`` seconds into the wait, then every ``every`` seconds while it still is. The
    caller presses ``key`` (during ``prompts``, waiting ``wait`` seconds after them), confirms
    their caller ID with the same key or types another number."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    when_wait_over: Annotated[int, Field(strict=True, ge=0, le=7200)] = 120
    first_after: Annotated[int, Field(strict=True, ge=0, le=3600)] = 30
    every: Annotated[int, Field(strict=True, ge=30, le=3600)] = 120
    key: Annotated[str, Field(pattern=r"^[1-9]$")] = "1"
    prompts: Annotated[tuple[Sound, ...], Field(min_length=1, max_length=8)] = ("vm-tocallback", "vm-press",
                                                                                  "digits/1")
    wait: Annotated[int, Field(strict=True, ge=1, le=15)] = 5


class QueueNode(_NodeBase):
    """End the IVR: the caller waits in this queue.

    The priority is the one written here; a queue node that writes none takes the ``priority`` a
    ``set`` or ``lookup`` node stored earlier in the call (e.g. a VIP branch), and 0 when there is
    none. So an explicit priority always wins, and one queue node can serve callers of several
    priorities.
    """

    type: Literal["queue"]
    queue: Annotated[str, Field(pattern=QUEUE_NAME.pattern)]
    priority: Annotated[int, Field(strict=True, ge=-10, le=10)] = 0
    # This caller's own widening steps, replacing the queue's (same form as in routing.yaml),
    # e.g. [{after: 0, require: "lang.zh >= 5"}, {after: 60, require: "true"}].
    steps: Annotated[list[dict[str, Any]] | None, AfterValidator(_checked_steps)] = None
    announce: QueueAnnouncements | None = None
    # This caller's own max wait in this queue, replacing the queue's (same form as in
    # routing.yaml): {seconds: 300, then: voicemail | fallback | overflow, queue: <for overflow>}.
    max_wait: MaxWaitSpec | None = None
    callback: QueueCallbackOffer | None = None
    # The survey flow the caller is sent to when the agent hangs up first (a flow file's name).
    survey: Annotated[str, Field(pattern=FLOW_NAME.pattern)] | None = None

    def sounds(self) -> Iterator[tuple[tuple[str, ...], str]]:
        if self.callback is not None:
            for index, sound in enumerate(self.callback.prompts):
                yield ("callback", "prompts", str(index)), sound


class PlayNode(_NodeBase):
    """Play prompts (keys are ignored), then go on to ``next``."""

    type: Literal["play"]
    prompts: Annotated[Prompts, Field(min_length=1)]
    next: NodeName

    def targets(self) -> Iterator[tuple[tuple[str, ...], str]]:
        yield ("next",), self.next


class HangupNode(_NodeBase):
    """End the IVR and the call, after playing the prompts if any."""

    type: Literal["hangup"]
    prompts: Prompts = ()


class InputNode(_NodeBase):
    """Collect several digits (an account or order number) into ``variable``, then go to ``next``.

    The answer ends at ``max_digits`` keys, at the timeout, or at '#' when ``terminator`` is '#'
    (the '#' is not part of the digits). It must have ``min_digits`` to ``max_digits`` keys and,
    when ``pattern`` is given, match it as a whole; otherwise the caller is asked again, up to
    ``retries`` more times, then the call goes to ``default`` (or hangs up without one).
    With ``terminator: none`` a '#' is an ordinary key for the pattern; note that Asterisk's GET
    DATA, which real calls use, always ends input at '#' and drops it, so on a real call '#' can
    only end the input early.
    The digits are never written to the trail or the event log (only how many there were): they
    may be card or account numbers. They do reach the dialplan as CC_VAR_<variable>.
    """

    type: Literal["input"]
    prompts: Annotated[Prompts, Field(min_length=1)]
    variable: VariableName
    min_digits: Annotated[int, Field(strict=True, ge=1, le=MAX_INPUT_DIGITS)] = 1
    max_digits: Annotated[int, Field(strict=True, ge=1, le=MAX_INPUT_DIGITS)]
    terminator: Literal["#", "none"] = "#"
    timeout: Annotated[float, Field(strict=True, ge=1, le=60)] = 5.0
    pattern: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    retries: Annotated[int, Field(strict=True, ge=0, le=5)] = 2
    invalid_prompts: Prompts = ()
    timeout_prompts: Prompts = ()
    next: NodeName
    default: NodeName | None = None

    def targets(self) -> Iterator[tuple[tuple[str, ...], str]]:
        yield ("next",), self.next
        if self.default is not None:
            yield ("default",), self.default


class SetNode(_NodeBase):
    """Store call variables, then go to ``next`` (no prompt, no wait).

    Values are text that may read ``${name}`` of a variable set or collected earlier, or
    ``${caller}`` (an unset variable reads as ""); they are data, replaced once and never re-read
    as templates. ``priority`` must be a whole number -10..10 (see QueueNode); ``queue_skills``
    and ``language`` are stored like other variables.
    At the end of the IVR every variable reaches the dialplan as the channel variable
    ``CC_VAR_<name>`` (names match ``^[a-z][a-z0-9_]{0,31}$``, so no other channel variable can be
    set this way), set by the FastAGI shell with SET VARIABLE and a quoted value; values are never
    pasted into AGI or AMI command text.
    """

    type: Literal["set"]
    variables: Annotated[dict[VariableName, SetValue], Field(min_length=1, max_length=32)]
    next: NodeName

    def targets(self) -> Iterator[tuple[tuple[str, ...], str]]:
        yield ("next",), self.next


class BranchCase(BaseModel):
    """One case of a branch node: when condition ``if`` holds, go to ``goto``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    if_: Annotated[str, Field(alias="if", min_length=1, max_length=1000)]
    goto: NodeName


class BranchNode(_NodeBase):
    """Go to the ``goto`` of the first case whose condition holds, else to ``else``.

    Conditions: ``var == "text"``, ``var != "text"``, ``var in ["a", "b"]``,
    ``var matches "regex"`` (the whole value must match), ``var starts_with "+86"``, combined with
    ``not``, ``and``, ``or`` (in that order of binding) and parentheses. ``caller`` is the caller's
    number; a variable not set on this call reads as "".
    """

    type: Literal["branch"]
    cases: Annotated[tuple[BranchCase, ...], Field(min_length=1, max_length=32)]
    else_: Annotated[NodeName, Field(alias="else")]

    def targets(self) -> Iterator[tuple[tuple[str, ...], str]]:
        for index, case in enumerate(self.cases):
            yield ("cases", str(index), "goto"), case.goto
        yield ("else",), self.else_


class ScheduleNode(_NodeBase):
    """Go to ``open`` or ``closed`` by the flow's named schedule at the time the call arrived; on
    one of its holidays to ``holiday``, or to ``closed`` when there is no holiday node."""

    type: Literal["schedule"]
    schedule: NodeName
    open: NodeName
    closed: NodeName
    holiday: NodeName | None = None

    def targets(self) -> Iterator[tuple[tuple[str, ...], str]]:
        yield ("open",), self.open
        yield ("closed",), self.closed
        if self.holiday is not None:
            yield ("holiday",), self.holiday


class TransferNode(_NodeBase):
    """End the IVR: connect the caller to an extension or an external number (the dialplan's
    ``cc-outbound`` context decides how a number is dialled). No variable can reach the number."""

    type: Literal["transfer"]
    to: Annotated[str, Field(pattern=DIAL_NUMBER.pattern)]


class VoicemailNode(_NodeBase):
    """End the IVR: the caller leaves a message in a queue's voicemail box (every queue in
    routing.yaml has one, in the ``callcenter`` voicemail context)."""

    type: Literal["voicemail"]
    mailbox: Annotated[str, Field(pattern=QUEUE_NAME.pattern)]


class GotoNode(_NodeBase):
    """Go on in another flow (at its start, or at ``node``), keeping the call's variables. The
    other flow is taken as it is at that moment; if it is missing, the caller goes to the fallback
    route rather than being cut off."""

    type: Literal["goto"]
    flow: Annotated[str, Field(pattern=FLOW_NAME.pattern)]
    node: NodeName | None = None


class LookupNode(_NodeBase):
    """Look the caller up in the CRM by caller number or by digits collected earlier (``variable``),
    then go to ``found`` or ``not_found``. A slow or failing CRM counts as not found (the call is
    never held up). A match stores ``customer_id``, ``customer_tier`` and, when the CRM knows it,
    ``customer_language``; and ``priority`` when the tier is in ``priority_by_tier``. Caller ID is
    not identity: a number match means "this number belongs to customer X", nothing more."""

    type: Literal["lookup"]
    by: Literal["caller", "account"]
    variable: VariableName | None = None  # the collected digits, for by: account
    priority_by_tier: Annotated[
        dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,15}$")], Annotated[int, Field(strict=True, ge=-10, le=10)]],
        Field(max_length=16)] = {}
    found: NodeName
    not_found: NodeName

    def targets(self) -> Iterator[tuple[tuple[str, ...], str]]:
        yield ("found",), self.found
        yield ("not_found",), self.not_found


class SurveyNode(_NodeBase):
    """Ask one survey question: the caller rates 1..``scale`` with one key. The answer is logged
    as ``survey_answered`` (question, score) against the call, its agent and queue; then ``next``
    (or the call ends). No answer, or a key off the scale, asks again ``retries`` times, then goes
    on without a score."""

    type: Literal["survey"]
    question: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")] = "csat"
    prompts: Annotated[Prompts, Field(min_length=1)]
    scale: Annotated[int, Field(strict=True, ge=2, le=9)] = 5
    timeout: Annotated[float, Field(strict=True, ge=1, le=60)] = 5.0
    retries: Annotated[int, Field(strict=True, ge=0, le=5)] = 1
    invalid_prompts: Prompts = ()
    next: NodeName | None = None

    def targets(self) -> Iterator[tuple[tuple[str, ...], str]]:
        if self.next is not None:
            yield ("next",), self.next


# What a lookup node stores on a match.
CUSTOMER_VARIABLES = ("customer_id", "customer_tier", "customer_language")

Node = Annotated[
    Union[MenuNode, QueueNode, PlayNode, HangupNode, InputNode, SetNode, BranchNode, ScheduleNode,
          TransferNode, VoicemailNode, GotoNode, LookupNode, SurveyNode],
    Field(discriminator="type"),
]
NODE_TYPES: Mapping[str, type[_NodeBase]] = MappingProxyType(
    {get_args(cls.model_fields["type"].annotation)[0]: cls for cls in get_args(get_args(Node)[0])}
)


class _FlowDocument(BaseModel):
    """The schema of one flow file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: NodeName
    nodes: Annotated[dict[NodeName, Node], Field(min_length=1, max_length=1000)]
    schedules: Annotated[dict[NodeName, Schedule], Field(max_length=100)] = {}


def flow_json_schema() -> dict:
    """The JSON Schema of a flow file, generated from the very model the loader validates with.
    Published as ivr_flows/flow.schema.json so editors validate flows as they are typed."""
    schema = _FlowDocument.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "callcenter IVR flow",
            "description": "One IVR flow per file in ivr_flows/; the flow's name is the file name.",
            **{k: v for k, v in schema.items() if k not in ("title", "description")}}


@dataclass(frozen=True)
class Flow:
    """A validated flow: every target and the start node exist. Build it with ``load_flow``,
    ``load_flows`` or ``parse_flow``, which check that."""

    name: str
    start: str
    nodes: Mapping[str, Node]
    source: str = "<string>"
    # 1-based (line, column) by field path: 'nodes.<name>' is where the node's name is written,
    # deeper paths ('nodes.welcome.prompts.2') and 'start' where their value is. Kept so checks
    # that run on a loaded flow (the linter) can point at the line they are about.
    positions: Mapping[str, tuple[int, int]] = dataclass_field(
        default_factory=lambda: MappingProxyType({}), compare=False, repr=False)
    schedules: Mapping[str, Schedule] = dataclass_field(default_factory=lambda: MappingProxyType({}))

    def locate(self, field: str) -> tuple[int, int] | None:
        """The position of ``field``, or of the nearest enclosing field that has one."""
        parts = field.split(".")
        while parts:
            found = self.positions.get(".".join(parts))
            if found is not None:
                return found
            parts.pop()
        return None


@dataclass(frozen=True)
class FlowProblem:
    source: str
    line: int | None  # 1-based, None when the problem is with the file as a whole
    column: int | None
    field: str  # dotted path, e.g. nodes.welcome.options.1; "" for the whole file
    message: str

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}:{self.column}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class FlowError(ValueError):
    """One or more flow files are invalid; each line of the message is one ``FlowProblem``."""

    def __init__(self, problems: Sequence[FlowProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


Loc = tuple[str | int, ...]


def parse_flow(
    text: str, name: str, *, source: str = "<string>", known_queues: Collection[str] | None = None
) -> Flow:
    """Validate one flow's YAML text. ``known_queues``, when given, is the set queue nodes may use."""
    if not FLOW_NAME.match(name):
        raise FlowError([_problem(source, None, "", f"flow name {name!r} (the file name) must match "
                                  f"{FLOW_NAME.pattern}")])
    root, data = _compose(text, source)
    if not isinstance(data, dict):
        raise FlowError([_problem(source, root and root.start_mark, "",
                                  "expected a mapping with 'start' and 'nodes'")])
    try:
        doc = _FlowDocument.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # A failed item also fails its container's length check ("at least 1 item after
        # validation"); report only the most specific error at each place.
        locs = [tuple(err["loc"]) for err in errors]
        errors = [e for e in errors if not any(_inside(other, tuple(e["loc"])) for other in locs)]
        raise FlowError(_sorted(_schema_problem(source, root, err) for err in errors)) from None
    problems = [
        _problem(source, locate_mark(root, loc), _field(loc), msg)
        for loc, msg in _reference_problems(doc, known_queues)
    ]
    problems += [_problem_at(source, root, loc, offset, msg) for loc, offset, msg in _language_problems(doc)]
    if problems:
        raise FlowError(_sorted(problems))
    return Flow(name=name, start=doc.start, nodes=MappingProxyType(dict(doc.nodes)), source=source,
                positions=MappingProxyType(_positions(root)),
                schedules=MappingProxyType(dict(doc.schedules)))


def flow_file(directory: Path, name: str) -> Path | None:
    """The file that holds flow ``name`` in ``directory`` (any flow suffix), or None."""
    return next((path for suffix in FLOW_SUFFIXES if (path := directory / f"{name}{suffix}").is_file()), None)


def load_flow(path: str | Path, *, known_queues: Collection[str] | None = None) -> Flow:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowError([_problem(str(path), None, "", f"cannot read flow file: {exc}")]) from None
    return parse_flow(text, path.stem, source=str(path), known_queues=known_queues)


def load_flows(directory: str | Path, *, known_queues: Collection[str] | None = None) -> dict[str, Flow]:
    """Every flow in ``directory`` by name. All files are checked and all problems reported at once,
    so one bad file does not hide another."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FlowError([_problem(str(directory), None, "", "flow directory does not exist")])
    flows: dict[str, Flow] = {}
    problems: list[FlowProblem] = []
    # Sorted so the result and the error order do not depend on the file system; dotfiles skipped
    # because editors leave lock and swap files next to the file being edited.
    for path in sorted(directory.iterdir()):
        if path.suffix not in FLOW_SUFFIXES or path.name.startswith(".") or not path.is_file():
            continue
        if path.stem in flows:
            problems.append(_problem(str(path), None, "", f"flow {path.stem!r} is defined twice "
                                     f"(also in {flows[path.stem].source})"))
            continue
        try:
            flows[path.stem] = load_flow(path, known_queues=known_queues)
        except FlowError as exc:
            problems.extend(exc.problems)
    if problems:
        raise FlowError(problems)
    return flows


# ------------------------------------------------------------------------------------ internals


def _compose(text: str, source: str) -> tuple[yaml.Node | None, Any]:
    try:
        return compose_yaml(text)
    except YamlSourceError as exc:
        raise FlowError([_problem(source, exc.mark, "", exc.reason)]) from None


def _reference_problems(
    doc: _FlowDocument, known_queues: Collection[str] | None
) -> Iterator[tuple[Loc, str]]:
    if doc.start not in doc.nodes:
        yield ("start",), f"start node {doc.start!r} is not a node in this flow"
    for name, node in doc.nodes.items():
        for path, target in node.targets():
            if target not in doc.nodes:
                yield ("nodes", name, *path), f"target {target!r} is not a node in this flow"
        for path, queue in queues_named(node):
            if known_queues is not None and queue not in known_queues:
                yield ("nodes", name, *path), unknown_queue_message(queue, known_queues)
        if isinstance(node, QueueNode) and node.max_wait is not None:
            yield from (((("nodes", name, "max_wait", *path), message)
                         for path, message in _max_wait_problems(node)))
        if isinstance(node, LookupNode) and (node.by == "account") != (node.variable is not None):
            yield ("nodes", name, "variable"), ("a lookup by account needs 'variable' (the collected digits)"
                                                if node.variable is None else
                                                "only a lookup by account reads a variable")
        if isinstance(node, ScheduleNode) and node.schedule not in doc.schedules:
            known = ", ".join(sorted(doc.schedules)) or "none; add a top-level 'schedules:' mapping"
            yield ("nodes", name, "schedule"), f"schedule {node.schedule!r} is not defined (known: {known})"


# Problems inside the little languages (patterns, templates, conditions, hours): (field path,
# offset inside the string value, message), so the column can point into the string.
LanguageProblem = tuple[Loc, int, str]


def _language_problems(doc: _FlowDocument) -> Iterator[LanguageProblem]:
    for name, node in doc.nodes.items():
        here: Loc = ("nodes", name)
        if isinstance(node, InputNode):
            yield from _input_problems(here, node)
        elif isinstance(node, SetNode):
            yield from _set_problems(here, node)
        elif isinstance(node, BranchNode):
            yield from _branch_problems(here, node)
        for field_name, index, prompt in node.prompt_items():
            if isinstance(prompt, SayItem):
                yield from _template_problems((*here, field_name, index, "value"), prompt.value)
    for name, schedule in doc.schedules.items():
        if isinstance(schedule.hours, dict):
            for key, in_key, message in hours_problems(schedule.hours):
                at: Loc = ("schedules", name, "hours", key)
                yield ((*at, "[key]") if in_key else at), 0, message


def queues_named(node: Node) -> Iterator[tuple[tuple[str, ...], str]]:
    """(field path, queue name) for every queue a node names: shared with the linter."""
    if isinstance(node, QueueNode):
        yield ("queue",), node.queue
        if node.max_wait is not None and node.max_wait.queue is not None:
            yield ("max_wait", "queue"), node.max_wait.queue
    elif isinstance(node, VoicemailNode):
        yield ("mailbox",), node.mailbox


def _max_wait_problems(node: QueueNode) -> Iterator[tuple[tuple[str, ...], str]]:
    spec = node.max_wait
    assert spec is not None
    shape = spec.shape_problem()
    if shape is not None:
        yield (), shape
    elif spec.queue == node.queue:
        yield ("queue",), f"cannot overflow into {node.queue!r}, the queue the caller is already in"


def _input_problems(here: Loc, node: InputNode) -> Iterator[LanguageProblem]:
    if node.min_digits > node.max_digits:
        yield (*here, "min_digits"), 0, f"min_digits {node.min_digits} is more than max_digits {node.max_digits}"
    if node.variable in (CALLER, PRIORITY):
        yield (*here, "variable"), 0, f"{node.variable!r} cannot hold digits (it is reserved)"
    if node.pattern is not None:
        try:
            check_pattern(node.pattern, digits_only=True)
        except ExpressionError as exc:
            yield (*here, "pattern"), exc.offset, exc.message


def _set_problems(here: Loc, node: SetNode) -> Iterator[LanguageProblem]:
    for key, value in node.variables.items():
        at: Loc = (*here, "variables", key)
        if key == CALLER:
            yield (*at, "[key]"), 0, "'caller' is the caller's number and cannot be set"
        elif key == PRIORITY:
            if not isinstance(value, int) or not -10 <= value <= 10:
                yield at, 0, f"priority must be a whole number from -10 to 10, got {_short(value)}"
        elif key == LANGUAGE_VARIABLE and isinstance(value, str) and "${" not in value and not LANGUAGE.match(value):
            yield at, 0, (f"{value!r} is not a sound language: a folder name under Asterisk's sounds/"
                          " such as 'en' or 'zh' (two lowercase letters, then optional _suffixes)")
        elif isinstance(value, str):
            if PROTOCOL_BREAKING.search(value):
                yield at, 0, "a value must not contain line breaks or NUL characters"
            yield from _template_problems(at, value)


def _template_problems(at: Loc, value: str) -> Iterator[LanguageProblem]:
    try:
        for _ in template_references(value):
            pass
    except ExpressionError as exc:
        yield at, exc.offset, exc.message


def _branch_problems(here: Loc, node: BranchNode) -> Iterator[LanguageProblem]:
    for index, case in enumerate(node.cases):
        try:
            parse_condition(case.if_)
        except ExpressionError as exc:
            yield (*here, "cases", index, "if"), exc.offset, f"condition: {exc.message}"


def variables_read(node: Node) -> Iterator[tuple[tuple[str, ...], str]]:
    """(field path, variable name) for every variable a node reads (not ``caller``), for the
    linter's check that each is set somewhere. Only call on a loaded flow (parses are valid)."""
    for field_name, index, prompt in node.prompt_items():
        if isinstance(prompt, SayItem):
            for name, _ in template_references(prompt.value):
                if name != CALLER:
                    yield (field_name, str(index), "value"), name
    if isinstance(node, LookupNode) and node.variable is not None:
        yield ("variable",), node.variable
    if isinstance(node, SetNode):
        for key, value in node.variables.items():
            if isinstance(value, str):
                for name, _ in template_references(value):
                    if name != CALLER:
                        yield ("variables", key), name
    elif isinstance(node, BranchNode):
        for index, case in enumerate(node.cases):
            for name in condition_names(parse_condition(case.if_)):
                if name != CALLER:
                    yield ("cases", str(index), "if"), name


def variables_written(node: Node) -> Iterator[str]:
    """The variables a node stores."""
    if isinstance(node, SetNode):
        yield from node.variables
    elif isinstance(node, InputNode):
        yield node.variable
    elif isinstance(node, LookupNode):
        yield from CUSTOMER_VARIABLES
        if node.priority_by_tier:
            yield PRIORITY


def unknown_queue_message(queue: str, known_queues: Collection[str]) -> str:
    """Shared with the linter, so a flow check and a load say the same thing."""
    known = ", ".join(sorted(known_queues)) or "none"
    return f"queue {queue!r} is not a configured queue (known: {known})"


def _positions(root: yaml.Node | None) -> dict[str, tuple[int, int]]:
    """Positions for ``Flow.positions``: top-level values, node names, and values inside nodes."""
    found: dict[str, tuple[int, int]] = {}
    if not isinstance(root, yaml.MappingNode):
        return found
    for key, value in root.value:
        if not isinstance(key, yaml.ScalarNode):
            continue
        found[key.value] = _position(value.start_mark)
        if key.value in ("nodes", "schedules") and isinstance(value, yaml.MappingNode):
            for name, node in value.value:
                if isinstance(name, yaml.ScalarNode):
                    found[f"{key.value}.{name.value}"] = _position(name.start_mark)
                    # Fields are at most three levels deep (cases.0.if, hours.mon); the bound also
                    # keeps the walk finite should an alias make the tree share or repeat parts.
                    _walk_positions(node, f"{key.value}.{name.value}", 3, found)
    return found


def _walk_positions(node: yaml.Node, path: str, depth: int, found: dict[str, tuple[int, int]]) -> None:
    if depth == 0:
        return
    if isinstance(node, yaml.MappingNode):
        children = [(k.value, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value != "<<"]
    elif isinstance(node, yaml.SequenceNode):
        children = [(str(i), v) for i, v in enumerate(node.value)]
    else:
        return
    for part, child in children:
        found[f"{path}.{part}"] = _position(child.start_mark)
        _walk_positions(child, f"{path}.{part}", depth - 1, found)


def _position(mark: yaml.Mark) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


def _schema_problem(source: str, root: yaml.Node | None, err: Any) -> FlowProblem:
    loc: Loc = tuple(err["loc"])
    # Pydantic puts the discriminator tag into the location of a node's errors
    # (nodes.welcome.menu.options); it is not in the file, so drop it.
    if len(loc) >= 3 and loc[0] == "nodes" and loc[2] in NODE_TYPES:
        tag, loc = loc[2], loc[:2] + loc[3:]
    else:
        tag = None
    # Likewise the tag of a prompt's form (sound name or say item) after its index.
    prompt_tag = next((i for i in range(2, len(loc)) if loc[i] in _PROMPT_TAGS and isinstance(loc[i - 1], int)
                       and str(loc[i - 2]).endswith("prompts")), None)
    if prompt_tag is not None:
        loc = loc[:prompt_tag] + loc[prompt_tag + 1:]
    kind, message = err["type"], err["msg"]
    at_key = kind == "extra_forbidden" or loc[-1:] == ("[key]",)
    if kind == "extra_forbidden":
        model = _model_at(loc, tag)
        keys = ", ".join(f.alias or name for name, f in model.model_fields.items())
        message = f"unknown key {str(loc[-1])!r}; expected one of: {keys}"
    elif kind == "value_error":
        message = str(err["ctx"]["error"])
    elif kind == "missing":
        message = "required field is missing"
    elif kind == "union_tag_not_found":
        message = f"missing 'type'; expected one of: {', '.join(NODE_TYPES)}"
    elif kind == "union_tag_invalid":
        message = f"unknown node type {err['input'].get('type')!r}; expected one of: {', '.join(NODE_TYPES)}"
    elif kind == "string_pattern_mismatch" and err["ctx"]["pattern"] in _PATTERN_HELP:
        message = f"{err['input']!r} is not {_PATTERN_HELP[err['ctx']['pattern']]}"
    elif kind == "string_type" and loc[-3:-2] == ("options",) and loc[-1:] == ("[key]",):
        message = f"{err['input']!r} is not {_PATTERN_HELP[DTMF_KEY.pattern]}"
    elif kind in _TYPE_HELP:
        message = f"expected {_TYPE_HELP[kind]}, got {_short(err['input'])}"
    return _problem(source, locate_mark(root, loc, at_key=at_key), _field(loc), message)


def _model_at(loc: Loc, tag: str | None) -> type[BaseModel]:
    """The model whose mapping holds the last part of ``loc`` (for the list of keys it allows)."""
    if loc[:1] == ("schedules",) and len(loc) == 3:
        return Schedule
    if tag == "branch" and "cases" in loc[:-1]:
        return BranchCase
    if tag == "queue" and loc[2:3] in (("announce",), ("max_wait",)):
        return QueueAnnouncements if loc[2] == "announce" else MaxWaitSpec
    if tag is not None and len(loc) >= 5 and str(loc[2]).endswith("prompts"):
        return SayItem
    return NODE_TYPES[tag] if tag else _FlowDocument


def _problem_at(source: str, root: yaml.Node | None, loc: Loc, offset: int, message: str) -> FlowProblem:
    """A problem ``offset`` characters into the string at ``loc`` (past the opening quote if the
    string is quoted). Multi-line and block strings point at their start instead."""
    node = _locate_node(root, loc)
    if node is None:
        return _problem(source, None, _field(loc), message)
    mark = node.start_mark
    column = mark.column + 1
    if isinstance(node, yaml.ScalarNode) and node.start_mark.line == node.end_mark.line:
        if node.style in ("'", '"'):
            column += 1 + offset
        elif node.style is None:
            column += offset
    return FlowProblem(source, mark.line + 1, column, _field(loc), message)


def _locate_node(root: yaml.Node | None, loc: Loc) -> yaml.Node | None:
    if root is None:
        return None
    if loc[-1:] == ("[key]",):
        mark = locate_mark(root, loc)
        return yaml.ScalarNode("tag:yaml.org,2002:str", "", mark, mark) if mark is not None else None
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)), None)
            if match is None:
                break
            node = match
        elif isinstance(node, yaml.SequenceNode) and (index := list_index(part)) is not None \
                and index < len(node.value):
            node = node.value[index]
        else:
            break
    return node


def _inside(loc: Loc, parent: Loc) -> bool:
    return len(loc) > len(parent) and loc[: len(parent)] == parent


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _field(loc: Loc) -> str:
    return ".".join(str(part) for part in loc if part != "[key]")


def _problem(source: str, mark: yaml.Mark | None, field: str, message: str) -> FlowProblem:
    if mark is None:
        return FlowProblem(source, None, None, field, message)
    return FlowProblem(source, mark.line + 1, mark.column + 1, field, message)


def _sorted(problems: Iterator[FlowProblem] | list[FlowProblem]) -> list[FlowProblem]:
    return sorted(problems, key=lambda p: (p.line or 0, p.column or 0))
