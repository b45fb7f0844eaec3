"""The routing rules file (``routing.yaml``): queues, their strategies, widening steps, service
levels and max waits, and each agent's queues and skill levels. Loaded and validated in full
before anything uses it; every problem names the file, line, column and field. The file format
is documented in docs/skills.md ("The routing file")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StringConstraints, ValidationError

from callcenter.acd.model import MaxWait, MaxWaitAction, QueueConfig, RoutingError, Strategy
from callcenter.acd.requirements import SkillError, check_known_skills, check_skills, unknown_skill_reason
from callcenter.acd.transfer import IDENTITY_PREFIX, is_identity_skill
from callcenter.acd.router import checked_queue_configs
from callcenter.acd.steps import StepsError, validate_steps
from callcenter.config import AGENT_ID, QUEUE_NAME
from callcenter.yaml_source import SourceProblem, SourceProblems, YamlSourceError, compose_yaml, locate_mark

Number = StrictInt | StrictFloat
QueueName = Annotated[str, StringConstraints(pattern=QUEUE_NAME.pattern)]
AgentId = Annotated[str, StringConstraints(pattern=AGENT_ID.pattern)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _ServiceLevel(_Strict):
    target: Annotated[Number, Field(gt=0, le=1)] = 0.8
    seconds: Annotated[Number, Field(gt=0, le=3600)] = 20


class MaxWaitSpec(_Strict):
    """A max wait as written in a file (routing.yaml's queues, and IVR queue nodes)."""

    seconds: Annotated[Number, Field(gt=0, le=86400)]
    then: Literal["overflow", "voicemail", "fallback"]
    queue: QueueName | None = None  # the overflow target

    def shape_problem(self) -> str | None:
        """What is wrong with the combination of fields, if anything."""
        if (self.then == "overflow") != (self.queue is not None):
            return "give 'queue' (the overflow target) with 'then: overflow', and only then"
        return None

    def to_max_wait(self) -> MaxWait:
        """The router's form; only for a spec whose ``queue`` is given exactly when overflowing."""
        return MaxWait(float(self.seconds), MaxWaitAction(self.then), self.queue)


class _Queue(_Strict):
    strategy: Strategy = Strategy.LONGEST_IDLE
    weight: Annotated[StrictInt, Field(ge=-100, le=100)] = 0
    service_level: _ServiceLevel = _ServiceLevel()
    steps: list[dict[str, Any]] = [{"after": 0, "require": "true"}]
    max_wait: MaxWaitSpec | None = None
    initial_handle_seconds: Annotated[Number, Field(gt=0, le=86400)] = 180


class _Agent(_Strict):
    queues: list[QueueName] = Field(min_length=1)
    skills: dict[str, Any] = {}
    wrapup_seconds: Annotated[Number, Field(ge=0, le=3600)] | None = None
    weight: Annotated[Number, Field(gt=0, le=1000)] = 1
    team: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,31}$")] | None = None


class _RoutingDocument(_Strict):
    skills: list[str] | None = None  # the vocabulary; omitted: any well-formed skill name
    priority_aging_seconds: Annotated[Number, Field(ge=0, le=86400)] = 300
    max_no_answers: Annotated[StrictInt, Field(ge=1, le=20)] = 1
    queues: dict[QueueName, _Queue] = Field(min_length=1)
    agents: dict[AgentId, _Agent] = {}


@dataclass(frozen=True)
class AgentProfile:
    """What an agent serves and how well: used at login and on every reload."""

    queues: frozenset[str]
    skills: Mapping[str, int]
    wrapup_seconds: float | None = None
    weight: float = 1.0
    team: str | None = None  # QA scores and the wallboard group agents by it


@dataclass(frozen=True)
class RoutingPlan:
    """A validated routing file, ready for the router."""

    source: str
    queues: tuple[QueueConfig, ...]
    agents: Mapping[str, AgentProfile]
    priority_aging_seconds: float
    max_no_answers: int
    known_skills: frozenset[str] | None

    @property
    def queue_names(self) -> list[str]:
        return [q.name for q in self.queues]


RoutingProblem = SourceProblem


class RoutingConfigError(SourceProblems):
    """The routing file is not valid; every problem names file, line, column and field."""


def load_routing(path: str | Path) -> RoutingPlan:
    """Read and validate a routing file; RoutingConfigError lists every problem found."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RoutingConfigError([RoutingProblem(source, None, None, "", f"cannot read routing file: {exc}")]) from None
    return parse_routing(text, source)


def parse_routing(text: str, source: str = "<routing>") -> RoutingPlan:
    try:
        root, data = compose_yaml(text)
    except YamlSourceError as exc:
        line, column = (exc.mark.line + 1, exc.mark.column + 1) if exc.mark else (None, None)
        raise RoutingConfigError([RoutingProblem(source, line, column, "", exc.reason)]) from None

    def problem(loc: Sequence[str | int], message: str, *, at_key: bool = False) -> RoutingProblem:
        mark = locate_mark(root, loc, at_key=at_key)
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        return RoutingProblem(source, line, column, ".".join(str(p) for p in loc if p != "[key]"), message)

    if not isinstance(data, dict):
        raise RoutingConfigError([problem((), "expected a mapping with 'queues' (and usually 'agents')")])
    try:
        doc = _RoutingDocument.model_validate(data)
    except ValidationError as exc:
        raise RoutingConfigError([
            problem(err["loc"], _pydantic_message(err), at_key=err["type"] == "extra_forbidden")
            for err in exc.errors()
        ]) from None
    plan, problems = _build(doc, problem)
    if problems:
        raise RoutingConfigError(problems)
    return RoutingPlan(source=source, **plan)


def _build(doc: _RoutingDocument, problem) -> tuple[dict[str, Any], list[RoutingProblem]]:
    problems: list[RoutingProblem] = []
    known: frozenset[str] | None = None
    if doc.skills is not None:
        try:
            known = check_known_skills(doc.skills)
        except SkillError as exc:
            problems.append(problem(("skills",), str(exc)))
    queues: list[QueueConfig] = []
    for name, raw in doc.queues.items():
        try:
            steps = validate_steps(raw.steps, known)
        except StepsError as exc:
            loc = ("queues", name, "steps") + ((exc.index,) if exc.index is not None else ())
            problems.append(problem(loc, exc.reason))
            continue
        max_wait = None
        if raw.max_wait is not None:
            shape = raw.max_wait.shape_problem()
            if shape is not None:
                problems.append(problem(("queues", name, "max_wait"), shape))
                continue
            max_wait = raw.max_wait.to_max_wait()
        queues.append(QueueConfig(
            name=name, strategy=raw.strategy, steps=steps, weight=raw.weight,
            service_level_target=float(raw.service_level.target),
            service_level_seconds=float(raw.service_level.seconds),
            max_wait=max_wait, initial_handle_seconds=float(raw.initial_handle_seconds)))
    if not problems:
        try:
            checked_queue_configs(queues)  # overflow targets exist, no circles
        except RoutingError as exc:
            problems.append(problem(("queues",), str(exc)))
    agents: dict[str, AgentProfile] = {}
    for agent_id, raw_agent in doc.agents.items():
        here = ("agents", agent_id)
        unknown = [q for q in raw_agent.queues if q not in doc.queues]
        if unknown:
            problems.append(problem((*here, "queues"), f"unknown queue(s) {unknown} (known: {', '.join(doc.queues)})"))
        try:
            skills = check_skills(raw_agent.skills)
        except SkillError as exc:
            problems.append(problem((*here, "skills"), str(exc)))
            continue
        for skill in skills:
            if is_identity_skill(skill):
                problems.append(problem((*here, "skills", skill), f"skill names starting with '{IDENTITY_PREFIX}' are "
                                        "the engine's own (transfer to one agent)", at_key=True))
            elif known is not None and skill not in known:
                problems.append(problem((*here, "skills", skill), unknown_skill_reason(skill, known), at_key=True))
        agents[agent_id] = AgentProfile(
            frozenset(raw_agent.queues), skills,
            None if raw_agent.wrapup_seconds is None else float(raw_agent.wrapup_seconds), float(raw_agent.weight),
            raw_agent.team)
    plan = {
        "queues": tuple(queues), "agents": agents, "known_skills": known,
        "priority_aging_seconds": float(doc.priority_aging_seconds), "max_no_answers": doc.max_no_answers,
    }
    return plan, problems


def _pydantic_message(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"unknown key {str(err['loc'][-1])!r}"
    if kind == "missing":
        return "required field is missing"
    if kind == "enum":
        return f"expected one of: {err['ctx']['expected']}, got {err['input']!r}"
    if kind == "string_pattern_mismatch":
        return f"{err['input']!r} does not match {err['ctx']['pattern']}"
    return f"{err['msg']} (got {err['input']!r})" if "input" in err and not isinstance(err["input"], dict) \
        else err["msg"]

