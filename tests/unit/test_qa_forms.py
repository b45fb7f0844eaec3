"""Evaluation forms: loading the YAML files (errors name file, line and field), the fingerprint of a
form version, and the scoring of one evaluation (weights, N/A, critical questions, refused answers)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from callcenter.qa.forms import (
    AnswerError,
    FormError,
    load_form,
    load_forms,
    parse_form,
    score,
)

PROJECT = Path(__file__).resolve().parents[2]

SMALL = """\
title: Small form
sections:
  - id: handling
    title: Handling
    weight: 3
    questions:
      - id: greeted
        text: Greeted the caller
        kind: yes_no
        weight: 3
      - id: listened
        text: Listened
        kind: scale
        max: 4
  - id: compliance
    title: Compliance
    questions:
      - id: disclosure
        text: Read the disclosure
        kind: yes_no
        allow_na: true
      - id: verified
        text: Verified identity
        kind: yes_no
        allow_na: true
        critical: true
"""


def small_form():
    return parse_form(SMALL, "qa_forms/small.yaml", "small")


def all_yes(form) -> dict:
    return {q.id: True if q.kind == "yes_no" else q.max for q in form.questions}


# ---------------------------------------------------------------------------- loading
def test_the_shipped_default_form_loads_and_scores_full_marks():
    forms = load_forms(PROJECT / "qa_forms")
    form = forms["default"]
    assert form.name == "default" and form.title
    assert len({q.id for q in form.questions}) == len(form.questions) >= 10
    assert any(q.critical for q in form.questions) and any(q.kind == "scale" for q in form.questions)
    assert score(form, all_yes(form)).total == 100.0


def test_a_form_file_reads_with_its_stem_as_name(tmp_path):
    (tmp_path / "inbound-sales.yaml").write_text(SMALL)
    form = load_form(tmp_path / "inbound-sales.yaml")
    assert form.name == "inbound-sales"
    assert [s.id for s in form.sections] == ["handling", "compliance"]
    assert form.sections[1].weight == 1.0 and form.sections[0].questions[1].max == 4
    assert form.sections[1].questions[1].critical and not form.sections[0].questions[0].allow_na


def broken(replace: str, by: str) -> str:
    assert replace in SMALL
    return SMALL.replace(replace, by, 1)


@pytest.mark.parametrize("text, expected", [
    (broken("        weight: 3\n", "        weight: 0\n"),
     "qa_forms/x.yaml:10: sections.0.questions.0.weight: must be greater than 0"),
    (broken("    weight: 3\n", "    weight: -1\n"), "qa_forms/x.yaml:5: sections.0.weight: must be greater than 0"),
    (broken("        max: 4\n", "        max: 4\n        colour: red\n"),
     "qa_forms/x.yaml:15: sections.0.questions.1.colour: unknown key 'colour'"),
    (broken("sections:\n", "owner:\n  team: blue\nsections:\n"), "qa_forms/x.yaml:2: owner: unknown key 'owner'"),
    (broken("        max: 4\n", "        max: 11\n"),
     "qa_forms/x.yaml:14: sections.0.questions.1.max: must be at most 10"),
    (broken("        max: 4\n", ""),
     "qa_forms/x.yaml:11: sections.0.questions.1.max: a scale question needs max (2..10)"),
    (broken("        weight: 3\n", "        max: 3\n"),
     "qa_forms/x.yaml:10: sections.0.questions.0.max: only scale questions have max"),
    (broken("kind: yes_no\n        weight: 3", "kind: boolean\n        weight: 3"),
     "qa_forms/x.yaml:9: sections.0.questions.0.kind: must be one of 'yes_no' or 'scale'"),
    (broken("allow_na: true\n        critical", "allow_na: yes please\n        critical"),
     "qa_forms/x.yaml:25: sections.1.questions.1.allow_na: must be true or false"),
    (broken("id: verified", "id: greeted"),
     "qa_forms/x.yaml:22: sections.1.questions.1.id: question id 'greeted' is used twice"),
    (broken("id: compliance", "id: handling"),
     "qa_forms/x.yaml:15: sections.1.id: section id 'handling' is used twice"),
    (broken("id: listened", "id: Listened!"), "qa_forms/x.yaml:11: sections.0.questions.1.id: must start with a lower"),
    (broken("title: Small form\n", ""), "qa_forms/x.yaml:1: title: required"),
    (broken("    title: Compliance\n", "    title: Compliance\n    title: Again\n"),
     "qa_forms/x.yaml:17: duplicate key 'title'"),
    ("title: [unclosed\n", "qa_forms/x.yaml:2: invalid YAML"),
    ("- just a list\n", "qa_forms/x.yaml:1: a form is a mapping with title and sections"),
    ("title: Empty\nsections: []\n", "qa_forms/x.yaml:2: sections: must not be empty"),
])
def test_form_errors_name_the_file_line_and_field(text, expected):
    with pytest.raises(FormError) as caught:
        parse_form(text, "qa_forms/x.yaml", "x")
    assert str(caught.value).startswith(expected), str(caught.value)


def test_every_problem_of_every_file_is_listed(tmp_path):
    (tmp_path / "good.yaml").write_text(SMALL)
    (tmp_path / "one.yaml").write_text(broken("    weight: 3\n", "    weight: 0\n"))
    two = broken("        max: 4\n", "        max: 1\n").replace("title: Small", "titel: S")
    (tmp_path / "two.yaml").write_text(two)
    (tmp_path / "notes.txt").write_text("not a form")
    with pytest.raises(FormError) as caught:
        load_forms(tmp_path)
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path / 'one.yaml'}:5: sections.0.weight: must be greater than 0",
        f"{tmp_path / 'two.yaml'}:1: title: required",
        f"{tmp_path / 'two.yaml'}:1: titel: unknown key 'titel'",
        f"{tmp_path / 'two.yaml'}:14: sections.0.questions.1.max: must be at least 2",
    ]


def test_a_file_name_that_cannot_be_a_form_name_is_refused(tmp_path):
    (tmp_path / "My Form.yaml").write_text(SMALL)
    with pytest.raises(FormError, match="My Form.yaml: 'My Form' cannot name a form"):
        load_form(tmp_path / "My Form.yaml")
    with pytest.raises(FormError, match="cannot read the form"):
        load_form(tmp_path / "missing.yaml")


def test_the_fingerprint_follows_the_content_not_the_layout():
    form = small_form()
    # pinned: stored evaluations name the form version by it, so the way it is computed must not drift
    assert form.fingerprint == "73859a2a3e134a72"
    relaid = "# a comment\n" + SMALL.replace("    weight: 3\n", "    weight: 3.0   # heavier\n")
    assert parse_form(relaid, "other.yaml", "small").fingerprint == form.fingerprint
    reweighted = broken("        weight: 3\n", "        weight: 2\n")
    assert parse_form(reweighted, "x", "small").fingerprint != form.fingerprint
    assert parse_form(SMALL, "x", "renamed").fingerprint != form.fingerprint


# ---------------------------------------------------------------------------- scoring
def test_sections_are_weighted_means_of_questions_and_the_total_of_sections():
    scored = score(small_form(), {"greeted": True, "listened": 2, "disclosure": False, "verified": True})
    # handling: (3*1 + 1*2/4) / 4 = 87.5; compliance: (0 + 1) / 2 = 50; total: (3*87.5 + 50) / 4 = 78.125
    assert scored.sections == {"handling": 87.5, "compliance": 50.0}
    assert scored.total == 78.1 and scored.critical_failed == []


def test_na_answers_are_left_out_and_an_all_na_section_does_not_count():
    form = small_form()
    one_na = score(form, {"greeted": True, "listened": 2, "disclosure": "na", "verified": True})
    assert one_na.sections["compliance"] == 100.0 and one_na.total == 90.6  # (3*87.5 + 100) / 4 = 90.625
    all_na = score(form, {"greeted": True, "listened": 2, "disclosure": "na", "verified": "na"})
    assert all_na.sections == {"handling": 87.5, "compliance": None}
    assert all_na.total == 87.5


def test_a_failed_critical_question_fails_the_whole_evaluation():
    scored = score(small_form(), {"greeted": True, "listened": 4, "disclosure": True, "verified": False})
    assert scored.total == 0.0 and scored.critical_failed == ["verified"]
    assert scored.sections == {"handling": 100.0, "compliance": 50.0}, "sections still show what went right"
    critical_scale = parse_form(broken("        max: 4\n", "        max: 4\n        critical: true\n"), "x", "x")
    zero = score(critical_scale, {"greeted": True, "listened": 0, "disclosure": True, "verified": True})
    assert zero.total == 0.0 and zero.critical_failed == ["listened"]
    assert score(critical_scale, {"greeted": True, "listened": 1, "disclosure": True, "verified": "na"}).total > 0


def test_percentages_round_half_up():
    text = textwrap.dedent("""\
        title: Rounding
        sections:
          - id: s
            title: S
            questions:
              - {id: small, text: Small, kind: yes_no, weight: 1}
              - {id: big, text: Big, kind: yes_no, weight: 15}
        """)
    scored = score(parse_form(text, "x", "x"), {"small": True, "big": False})  # 1/16 = 6.25 %
    assert scored.total == 6.3 and scored.sections == {"s": 6.3}


@pytest.mark.parametrize("change, question_id, message", [
    ({"colour": True}, "colour", "form 'small' has no such question"),
    ({"greeted": None}, "greeted", "answer true (yes) or false (no), not None"),
    ({"greeted": 1}, "greeted", "answer true (yes) or false (no), not 1"),
    ({"greeted": "yes"}, "greeted", "answer true (yes) or false (no), not 'yes'"),
    ({"greeted": "na"}, "greeted", "cannot be answered N/A"),
    ({"listened": True}, "listened", "answer a whole number from 0 to 4, not True"),
    ({"listened": 5}, "listened", "answer a whole number from 0 to 4, not 5"),
    ({"listened": -1}, "listened", "answer a whole number from 0 to 4, not -1"),
    ({"listened": 2.0}, "listened", "answer a whole number from 0 to 4, not 2.0"),
    ({"listened": "2"}, "listened", "answer a whole number from 0 to 4, not '2'"),
    ({"disclosure": "n/a"}, "disclosure", "answer true (yes) or false (no) or \"na\", not 'n/a'"),
])
def test_wrong_answers_are_refused_naming_the_question(change, question_id, message):
    answers = {**all_yes(small_form()), **change}
    with pytest.raises(AnswerError) as caught:
        score(small_form(), answers)
    assert (caught.value.question_id, caught.value.message) == (question_id, message)


def test_every_question_must_be_answered():
    answers = all_yes(small_form())
    del answers["disclosure"]
    with pytest.raises(AnswerError) as caught:
        score(small_form(), answers)
    assert (caught.value.question_id, caught.value.message) == ("disclosure", "not answered")
    assert str(caught.value) == "disclosure: not answered"


def test_answers_that_score_nothing_are_refused():
    all_na = textwrap.dedent("""\
        title: Optional
        sections:
          - id: s
            title: S
            questions:
              - {id: only, text: Only, kind: yes_no, allow_na: true}
        """)
    with pytest.raises(AnswerError) as caught:
        score(parse_form(all_na, "x", "x"), {"only": "na"})
    assert caught.value.question_id is None and "nothing to score" in caught.value.message
    with pytest.raises(AnswerError, match="answers must map question ids"):
        score(small_form(), [("greeted", True)])
