"""The qa_evaluations table: an evaluation is stored and read back as it was scored (JSON columns
included), and listed newest first with its filters, on a real SQLite file."""

from __future__ import annotations

import pytest

from callcenter.qa.forms import Scored, parse_form
from callcenter.qa.store import QaStore, create_tables
from callcenter.storage import make_engine

FORM = parse_form("""\
title: Tiny
sections:
  - id: s
    title: S
    questions:
      - {id: greeted, text: Greeted, kind: yes_no}
      - {id: tone, text: Tone, kind: scale, max: 5, allow_na: true}
""", "tiny.yaml", "tiny")


@pytest.fixture
def clock():
    return [1_700_000_000.0]


@pytest.fixture
def store(tmp_path, clock):
    return QaStore(make_engine(f"sqlite:///{tmp_path / 'cc.db'}"), clock=lambda: clock[0])


def add(store: QaStore, call_id: str, agent_id: str, total: float = 80.0, **more) -> int:
    scored = Scored(total=total, sections={"s": total}, critical_failed=more.pop("critical_failed", []))
    return store.add(call_id=call_id, agent_id=agent_id, form=FORM, scored=scored,
                     answers={"greeted": True, "tone": "na"}, evaluator="alice", **more)


def test_an_evaluation_reads_back_as_stored(store, clock):
    scored = Scored(total=0.0, sections={"s": 50.0, "other": None}, critical_failed=["greeted"])
    evaluation_id = store.add(call_id="1700000000.42", agent_id="1001", queue="sales", team="blue", form=FORM,
                              scored=scored, answers={"greeted": False, "tone": 5}, evaluator="alice",
                              comment="Skipped the identity check.")
    assert store.get(evaluation_id) == {
        "id": evaluation_id, "call_id": "1700000000.42", "agent_id": "1001", "queue": "sales", "team": "blue",
        "form": "tiny", "form_fingerprint": FORM.fingerprint, "evaluator": "alice",
        "answers": {"greeted": False, "tone": 5}, "total": 0.0, "sections": {"s": 50.0, "other": None},
        "critical_failed": ["greeted"], "comment": "Skipped the identity check.", "created_at": clock[0],
    }
    assert store.get(evaluation_id + 1) is None


def test_optional_columns_may_be_empty(store):
    row = store.get(add(store, "c1", "1001"))
    assert (row["queue"], row["team"], row["comment"]) == (None, None, None)
    assert row["answers"] == {"greeted": True, "tone": "na"}


def test_lists_are_newest_first_and_filtered(store, clock):
    ids = {}
    for call_id, agent_id in [("c1", "1001"), ("c2", "1002"), ("c3", "1001"), ("c4", "1001")]:
        ids[call_id] = add(store, call_id, agent_id)
        clock[0] += 60
    start = 1_700_000_000.0
    assert [r["call_id"] for r in store.list()] == ["c4", "c3", "c2", "c1"]
    assert [r["call_id"] for r in store.list(agent_id="1001")] == ["c4", "c3", "c1"]
    assert [r["id"] for r in store.list(call_id="c2")] == [ids["c2"]]
    assert [r["call_id"] for r in store.list(since=start + 60, until=start + 180)] == ["c3", "c2"], \
        "since is inclusive, until exclusive"
    assert [r["call_id"] for r in store.list(agent_id="1001", since=start + 60)] == ["c4", "c3"]
    assert [r["call_id"] for r in store.list(limit=2)] == ["c4", "c3"]
    assert len(store.list(limit=None)) == 4


def test_evaluations_of_the_same_moment_keep_their_insertion_order(store):
    first, second = add(store, "c1", "1001"), add(store, "c1", "1001")
    assert [r["id"] for r in store.list(call_id="c1")] == [second, first]


def test_the_table_is_created_once_and_kept(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'cc.db'}")
    create_tables(engine)
    evaluation_id = add(QaStore(engine), "c1", "1001")
    create_tables(engine)
    assert QaStore(engine).get(evaluation_id)["call_id"] == "c1"
