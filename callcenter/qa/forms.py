"""Evaluation forms and the scoring of one evaluation.

A form is a YAML file in ``qa_forms/`` (its name is the file's stem): sections of weighted
questions, each answered yes/no or on a 0..max scale, some allowing N/A, some critical (a "no" or
a 0 on a critical question fails the whole evaluation). Everything here is pure except
:func:`load_form` and :func:`load_forms`, which read the files; errors name file, line and field.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from callcenter.yaml_source import SourceProblem, SourceProblems, YamlSourceError, compose_yaml, locate_mark

FORM_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"  # also a path segment of /api/qa/forms/{name}
ITEM_ID = r"^[a-z][a-z0-9_]{0,39}$"        # section and question ids: answer keys, data-testid parts
NA = "na"                                  # the answer "not applicable"

Loc = tuple[str | int, ...]
ItemId = Annotated[StrictStr, Field(pattern=ITEM_ID)]
Text = Annotated[StrictStr, Field(min_length=1, max_length=500)]
Weight = Annotated[StrictFloat, Field(gt=0, allow_inf_nan=False)]


class _RuleBroken(ValueError):
    """A rule across fields, raised from a model validator; ``problems`` are (path inside the
    model, message), so the error can point at the line of the field at fault."""

    def __init__(self, problems: Sequence[tuple[Loc, str]]):
        self.problems = list(problems)
        super().__init__("; ".join(message for _, message in self.problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Question(_Strict):
    id: ItemId
    text: Text
    weight: Weight = 1.0
    kind: Literal["yes_no", "scale"]
    max: Annotated[StrictInt, Field(ge=2, le=10)] | None = None  # scale questions: answers 0..max
    allow_na: StrictBool = False
    critical: StrictBool = False  # "no" (or 0) fails the whole evaluation

    @model_validator(mode="after")
    def _max_belongs_to_scales(self) -> Question:
        if self.kind == "scale" and self.max is None:
            raise _RuleBroken([(("max",), "a scale question needs max (2..10)")])
        if self.kind == "yes_no" and self.max is not None:
            raise _RuleBroken([(("max",), "only scale questions have max")])
        return self


class Section(_Strict):
    id: ItemId
    title: Text
    weight: Weight = 1.0
    questions: Annotated[list[Question], Field(min_length=1)]


class FormFile(_Strict):
    """What a form file holds (its name comes from the file name)."""

    title: Text
    description: Annotated[StrictStr, Field(max_length=2000)] | None = None
    sections: Annotated[list[Section], Field(min_length=1)]

    @model_validator(mode="after")
    def _ids_are_unique(self) -> FormFile:
        # answers are keyed by question id alone, so question ids are unique in the whole form
        problems: list[tuple[Loc, str]] = []
        section_ids: set[str] = set()
        question_ids: set[str] = set()
        for s, section in enumerate(self.sections):
            if section.id in section_ids:
                problems.append((("sections", s, "id"), f"section id {section.id!r} is used twice"))
            section_ids.add(section.id)
            for q, question in enumerate(section.questions):
                if question.id in question_ids:
                    problems.append((("sections", s, "questions", q, "id"),
                                     f"question id {question.id!r} is used twice"))
                question_ids.add(question.id)
        if problems:
            raise _RuleBroken(problems)
        return self


class Form(FormFile):
    name: Annotated[StrictStr, Field(pattern=FORM_NAME)]

    @property
    def questions(self) -> list[Question]:
        return [question for section in self.sections for question in section.questions]

    @property
    def fingerprint(self) -> str:
        """Which version of the form this is: a stored evaluation keeps it, so a later edit of the
        file does not pass for the form that scored it. Comments and layout do not count."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"),
                               ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------- loading
FormProblem = SourceProblem  # QA forms report the line only (column None)


class FormError(SourceProblems):
    """A form file is not valid; every problem names the file, line and field."""


def load_forms(directory: str | Path) -> dict[str, Form]:
    """Every ``*.yaml`` form in ``directory`` by name; FormError lists the problems of all files."""
    forms: dict[str, Form] = {}
    problems: list[FormProblem] = []
    for path in sorted(Path(directory).glob("*.yaml")):
        try:
            form = load_form(path)
        except FormError as exc:
            problems.extend(exc.problems)
        else:
            forms[form.name] = form
    if problems:
        raise FormError(problems)
    return forms


def load_form(path: str | Path) -> Form:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FormError([FormProblem(str(path), None, None, "", f"cannot read the form: {exc}")]) from None
    return parse_form(text, str(path), path.stem)


def parse_form(text: str, source: str, name: str) -> Form:
    """The form ``name`` from YAML ``text``; ``source`` (the file) is what errors name."""
    try:
        root, data = compose_yaml(text)
    except YamlSourceError as exc:
        raise FormError([FormProblem(source, exc.mark.line + 1 if exc.mark else None, None, "", exc.reason)]) from None

    def problem(loc: Loc, message: str, *, at_key: bool = False) -> FormProblem:
        mark = locate_mark(root, loc, at_key=at_key)
        return FormProblem(source, mark.line + 1 if mark else None, None, ".".join(str(p) for p in loc), message)

    if not isinstance(data, dict):
        raise FormError([problem((), "a form is a mapping with title and sections")])
    try:
        content = FormFile.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            broken = err.get("ctx", {}).get("error")
            if isinstance(broken, _RuleBroken):
                problems.extend(problem(loc + inner, message) for inner, message in broken.problems)
            else:
                problems.append(problem(loc, _message(err), at_key=err["type"] == "extra_forbidden"))
        raise FormError(sorted(problems, key=lambda p: p.line or 0)) from None
    try:
        return Form(name=name, **dict(content))
    except ValidationError:
        raise FormError([FormProblem(source, None, None, "", f"{name!r} cannot name a form (it is the file name): use "
                                                       "lower-case letters, digits, '_' and '-'")]) from None


def _message(err: Mapping[str, Any]) -> str:
    """pydantic's error as a person editing the file wants it."""
    kind, ctx = err["type"], err.get("ctx", {})
    messages = {
        "missing": "required",
        "extra_forbidden": f"unknown key {str(err['loc'][-1])!r}",
        "greater_than": f"must be greater than {ctx.get('gt', 0):g}",
        "greater_than_equal": f"must be at least {ctx.get('ge')}",
        "less_than_equal": f"must be at most {ctx.get('le')}",
        "literal_error": f"must be one of {ctx.get('expected')}",
        "string_pattern_mismatch": "must start with a lower-case letter, then lower-case letters, digits or '_' "
                                   "(at most 40)",
        "string_too_short": "must not be empty",
        "string_too_long": f"must be at most {ctx.get('max_length')} characters",
        "too_short": "must not be empty",
        "bool_type": "must be true or false",
        "int_type": "must be a whole number",
        "float_type": "must be a number",
        "finite_number": "must be a finite number",
        "string_type": "must be text",
        "list_type": "must be a list",
        "model_type": "must be a mapping",
        "model_attributes_type": "must be a mapping",
    }
    return messages.get(kind, err["msg"])


# ---------------------------------------------------------------------------- scoring
class AnswerError(ValueError):
    """An answer that cannot be scored; ``question_id`` is None when it is about the answers as a
    whole."""

    def __init__(self, question_id: str | None, message: str):
        self.question_id = question_id
        self.message = message
        super().__init__(f"{question_id}: {message}" if question_id else message)


@dataclass(frozen=True)
class Scored:
    total: float                       # percent, 1 decimal; 0.0 when a critical question failed
    sections: dict[str, float | None]  # section id -> percent (1 decimal); None: every answer N/A
    critical_failed: list[str] = field(default_factory=list)  # critical questions answered no / 0


def score(form: Form, answers: Mapping[str, object]) -> Scored:
    """The score of ``answers`` (question id -> True/False, 0..max, or "na") on ``form``.

    A question's fraction is 1/0 for yes/no and value/max for a scale; a section is the weighted
    mean of its answered (not N/A) questions, the total the weighted mean of sections with at least
    one answer. Raises AnswerError for an unknown, missing or ill-typed answer.
    """
    if not isinstance(answers, Mapping):
        raise AnswerError(None, "answers must map question ids to answers")
    known = {question.id for question in form.questions}
    for question_id in answers:
        if question_id not in known:
            raise AnswerError(str(question_id), f"form {form.name!r} has no such question")
    section_fractions: dict[str, float | None] = {}
    critical_failed: list[str] = []
    for section in form.sections:
        weighted = weights = 0.0
        for question in section.questions:
            fraction = _fraction(question, answers)
            if fraction is None:
                continue
            if question.critical and fraction == 0:
                critical_failed.append(question.id)
            weighted += question.weight * fraction
            weights += question.weight
        section_fractions[section.id] = weighted / weights if weights else None
    included = [(section.weight, section_fractions[section.id]) for section in form.sections
                if section_fractions[section.id] is not None]
    if not included:
        raise AnswerError(None, "every question is answered N/A: there is nothing to score")
    total = sum(weight * fraction for weight, fraction in included) / sum(weight for weight, _ in included)
    return Scored(total=0.0 if critical_failed else one_decimal(total * 100),
                  sections={sid: None if f is None else one_decimal(f * 100) for sid, f in section_fractions.items()},
                  critical_failed=critical_failed)


def _fraction(question: Question, answers: Mapping[str, object]) -> float | None:
    """The answer as 0..1, None for N/A."""
    if question.id not in answers:
        raise AnswerError(question.id, "not answered")
    answer = answers[question.id]
    if isinstance(answer, str) and answer == NA:
        if not question.allow_na:
            raise AnswerError(question.id, "cannot be answered N/A")
        return None
    or_na = ' or "na"' if question.allow_na else ""
    if question.kind == "yes_no":
        if not isinstance(answer, bool):
            raise AnswerError(question.id, f"answer true (yes) or false (no){or_na}, not {answer!r}")
        return 1.0 if answer else 0.0
    # bool is an int in Python: true must not pass for 1 on a scale
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer <= question.max:
        raise AnswerError(question.id, f"answer a whole number from 0 to {question.max}{or_na}, not {answer!r}")
    return answer / question.max


def one_decimal(value: float) -> float:
    """Rounded to 1 decimal half up, as people round (Python's round() makes 6.25 into 6.2)."""
    return float(Decimal(repr(value)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))
