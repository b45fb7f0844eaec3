"""Flow texts, names and file helpers shared by the IVR tests. Line numbers in FLOW are asserted
by the tests: line 3 is 'welcome', 8 'sales', 9 'bye'."""

from collections.abc import Collection
from pathlib import Path

import pytest

from callcenter.config import PROJECT_DIR
from callcenter.ivr.flow import FlowError, load_flow

MAIN = PROJECT_DIR / "ivr_flows" / "main.yaml"
QUEUES = {"sales", "support"}
MENU_PROMPTS = ("hello", "for", "digits/1", "for", "digits/2")

FLOW = """\
start: welcome
nodes:
  welcome:
    type: menu
    prompts: [hello, digits/1]
    options: {"1": sales, "2": bye}
    default: sales
  sales: {type: queue, queue: sales}
  bye: {type: hangup, prompts: [vm-goodbye]}
"""


def write(directory: Path, text: str, name: str = "main") -> Path:
    """``text`` as the flow file ``<name>.yaml`` in ``directory``."""
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path


def load_error(directory: Path, text: str, *, known_queues: Collection[str] | None = None) -> list[str]:
    """The problems loading ``text`` as main.yaml reports, one per line, with the path as 'main.yaml'."""
    path = write(directory, text)
    with pytest.raises(FlowError) as exc:
        load_flow(path, known_queues=known_queues)
    return str(exc.value).replace(str(path), "main.yaml").splitlines()
