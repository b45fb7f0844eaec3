"""Hot reload of IVR flows (FlowLibrary) on a real directory: edits swap in, bad edits are refused
while the previous version keeps serving, calls keep the version they started with."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from callcenter.ivr.flow import FlowError
from callcenter.ivr.library import FlowLibrary

FLOW = """start: welcome
nodes:
  welcome: {type: menu, prompts: [hello], options: {"1": sales, "2": support}, default: support}
  sales: {type: queue, queue: sales}
  support: {type: queue, queue: support}
"""


def write(path: Path, text: str) -> None:
    """Write and move the modification time on, as an editor saving a second later would."""
    path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def library(tmp_path: Path) -> FlowLibrary:
    write(tmp_path / "main.yaml", FLOW)
    return FlowLibrary(tmp_path, known_queues=lambda: {"sales", "support"}, clock=lambda: 100.0)


def target(library: FlowLibrary, key: str) -> str:
    return library.get("main").nodes["welcome"].options[key]


def test_an_edited_flow_is_swapped_in_and_a_call_in_progress_keeps_its_version(library, tmp_path):
    in_progress = library.get("main")
    write(tmp_path / "main.yaml", FLOW.replace('"2": support', '"2": sales'))
    changes = library.refresh()
    assert [c.as_dict() for c in changes] == [
        {"kind": "loaded", "flow": "main", "source": str(tmp_path / "main.yaml"), "problems": []}]
    assert target(library, "2") == "sales"
    assert in_progress.nodes["welcome"].options["2"] == "support"
    assert library.refresh() == []  # nothing changed since


def test_an_invalid_edit_is_refused_and_the_last_good_version_keeps_serving(library, tmp_path):
    write(tmp_path / "main.yaml", FLOW.replace("queue: sales", "queue: billing"))
    (change,) = library.refresh()
    assert change.kind == "rejected" and change.flow == "main"
    assert change.problems == (f"{tmp_path / 'main.yaml'}:4:31: nodes.sales.queue: queue 'billing' is not "
                               "a configured queue (known: sales, support)",)
    assert target(library, "1") == "sales", "the previous version still serves"
    assert library.status() == [{"flow": "main", "source": str(tmp_path / "main.yaml"), "loaded_at": 100.0,
                                 "error": change.problems[0]}]

    write(tmp_path / "main.yaml", FLOW.replace("hello", "beep"))
    assert [c.kind for c in library.refresh()] == ["loaded"]
    assert library.status()[0]["error"] is None and library.get("main").nodes["welcome"].prompts == ("beep",)


def test_new_and_removed_files_come_and_go(library, tmp_path):
    write(tmp_path / "after_hours.yaml", "start: bye\nnodes:\n  bye: {type: hangup}\n")
    write(tmp_path / "notes.txt", "not a flow")
    assert [(c.kind, c.flow) for c in library.refresh()] == [("loaded", "after_hours")]
    (tmp_path / "after_hours.yaml").unlink()
    assert [(c.kind, c.flow) for c in library.refresh()] == [("removed", "after_hours")]
    assert library.get("after_hours") is None and [s["flow"] for s in library.status()] == ["main"]


def test_a_second_file_for_the_same_flow_is_refused(library, tmp_path):
    write(tmp_path / "main.yml", FLOW.replace('"2": support', '"2": sales'))
    (change,) = library.refresh()
    assert change.kind == "rejected"
    assert "flow 'main' is already defined by" in change.problems[0]
    assert target(library, "2") == "support"


def test_the_engine_never_starts_on_a_broken_flow(tmp_path):
    write(tmp_path / "main.yaml", FLOW.replace("type: menu", "type: men"))
    with pytest.raises(FlowError, match="unknown node type 'men'"):
        FlowLibrary(tmp_path, known_queues=lambda: {"sales", "support"})
