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
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from callcenter.acd.steps import StepsError, validate_steps
from callcenter.asterisk.names import PROTOCOL_BREAKING, SOUND_NAME
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
Prompts = Annotated[tuple[Sound, ...], Field(max_length=32)]
VariableName = Annotated[str, Field(pattern=VARIABLE_NAME.pattern)]
# A set node's value: text (with ${var} references) or a whole number (YAML reads `priority: 5`
# as one). Strict, so YAML's yes/no do not slip in as 1/0.
SetValue = Union[StrictInt, Annotated[StrictStr, Field(max_length=256)]]
# The one set key with a meaning beyond being stored: the queue priority (see QueueNode). Others,
# such as `queue_skills` and `language`, are stored like any variable, for the dialplan and the ACD.
PRIORITY = "priority"
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
        for name in type(self).model_fields:
            if name.endswith("prompts"):
                for index, sound in enumerate(getattr(self, name)):
                    yield (name, str(index)), sound


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


class QueueNode(_NodeBase):
    """End the IVR: the caller waits in this queue.

    The priority is the one written here; a queue node that writes none takes the ``priority`` a
    ``set`` node stored earlier in the call (e.g. a VIP branch), and 0 when there is none. So an
    explicit priority always wins, and one queue node can serve callers of several priorities.
    """

    type: Literal["queue"]
    queue: Annotated[str, Field(pattern=QUEUE_NAME.pattern)]
    priority: Annotated[int, Field(strict=True, ge=-10, le=10)] = 0
    # This caller's own widening steps, replacing the queue's (same form as in routing.yaml),
    # e.g. [{after: 0, require: "lang.zh >= 5"}, {after: 60, require: "true"}].
    steps: Annotated[list[dict[str, Any]] | None, AfterValidator(_checked_steps)] = None


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


Node = Annotated[
    Union[MenuNode, QueueNode, PlayNode, HangupNode, InputNode, SetNode, BranchNode, ScheduleNode],
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
        if isinstance(node, QueueNode) and known_queues is not None and node.queue not in known_queues:
            yield ("nodes", name, "queue"), unknown_queue_message(node.queue, known_queues)
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
    for name, schedule in doc.schedules.items():
        if isinstance(schedule.hours, dict):
            for key, in_key, message in hours_problems(schedule.hours):
                at: Loc = ("schedules", name, "hours", key)
                yield ((*at, "[key]") if in_key else at), 0, message


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
        elif isinstance(value, str):
            if PROTOCOL_BREAKING.search(value):
                yield at, 0, "a value must not contain line breaks or NUL characters"
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
