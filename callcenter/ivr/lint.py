"""Checks over IVR flow files that go beyond what loading refuses, each finding with its position.

Loading (``flow.py``) refuses what the engine cannot run: bad YAML, bad fields, dangling targets.
The linter reports those too, and adds what loads but would go wrong on a call: nodes no caller can
reach, loops that never stop for the caller, queues the settings do not define, and prompts whose
sound files the provisioned Asterisk does not have. The checks read files (the flows, and the sound
directory of the Asterisk root) but change nothing and talk to nothing.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from callcenter.ivr.flow import (
    FLOW_SUFFIXES,
    Flow,
    FlowError,
    FlowProblem,
    GotoNode,
    InputNode,
    MenuNode,
    Node,
    QueueNode,
    SurveyNode,
    flow_file,
    load_flow,
    queues_named,
    unknown_queue_message,
    variables_read,
    variables_written,
)

Severity = Literal["error", "warning"]

# The formats Asterisk can play a prompt from, as file extensions (what `core show file formats`
# lists for the codecs the project uses); any one of them is enough.
SOUND_EXTENSIONS = ("gsm", "wav", "ulaw", "alaw", "sln", "g722")
SOUNDS_DIR = PurePosixPath("usr/share/asterisk/sounds")
# Asterisk looks in the channel language's folder first, then in the sounds folder itself.
SOUND_LANGUAGE = "en"
# As the kernel does (ELOOP): a chain of links this long is a loop, not a path.
_MAX_SYMLINKS = 40


@dataclass(frozen=True)
class Finding:
    severity: Severity
    file: str
    line: int | None  # 1-based; None when the finding is about the file (or the root) as a whole
    column: int | None
    field: str  # dotted path, e.g. nodes.welcome.options.1; "" for the whole file
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}:{self.column}"
        what = f"{self.field}: {self.message}" if self.field else self.message
        return f"{where}: {self.severity}: {what}"

    def as_dict(self) -> dict[str, str | int | None]:
        return asdict(self)


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)


# ------------------------------------------------------------------------------ entry points


def lint_paths(
    paths: Sequence[str | Path], *, queues: Collection[str] | None, asterisk_root: Path | None
) -> list[Finding]:
    """Lint flow files and directories of flow files (every ``*.yaml``/``*.yml`` in them).

    ``queues``: the configured queue names (None skips the queue check). ``asterisk_root``: the
    provisioned Asterisk; when it is absent (or None) the sound check is skipped, with one warning.
    """
    sounds = SoundLibrary.open(asterisk_root)
    findings: list[Finding] = []
    if sounds is None:
        findings.append(_sound_check_skipped(asterisk_root))
    for path in map(Path, paths):
        if path.is_dir():
            findings.extend(_lint_directory(path, queues=queues, sounds=sounds))
        else:
            findings.extend(lint_file(path, queues=queues, sounds=sounds))
    return findings


def lint_file(path: str | Path, *, queues: Collection[str] | None, sounds: SoundLibrary | None,
              neighbours: FlowDirectory | None = None) -> list[Finding]:
    """Everything the loader refuses in one file; if it loads, the checks of ``lint_flow`` too.
    Goto nodes are checked against the flows in the file's own directory (what the engine loads
    with it), or ``neighbours`` when given."""
    path = Path(path)
    try:
        # Loaded without known_queues on purpose: an unknown queue should not stop the other
        # checks from running; lint_flow reports it with the loader's own wording.
        flow = load_flow(path)
    except FlowError as exc:
        return [from_problem(p) for p in exc.problems]
    return lint_flow(flow, queues=queues, sounds=sounds, flows=neighbours or FlowDirectory(path.parent))


def lint_flow(flow: Flow, *, queues: Collection[str] | None, sounds: SoundLibrary | None,
              flows: FlowDirectory | None = None) -> list[Finding]:
    """The checks on a flow that loaded: reachability, input-less loops, queues, sound files, and
    (given the other flows) goto targets."""
    findings = [
        *_unreachable(flow),
        *_loops_without_input(flow),
        *_unset_variables(flow),
        *(_unknown_queues(flow, queues) if queues is not None else ()),
        *(_missing_sounds(flow, sounds) if sounds is not None else ()),
        *(_dangling_gotos(flow, flows) if flows is not None else ()),
        *(_missing_surveys(flow, flows) if flows is not None else ()),
    ]
    return sorted(findings, key=lambda f: (f.line or 0, f.column or 0))


class FlowDirectory:
    """The flows of one directory, loaded on demand, as goto nodes find them at run time."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._loaded: dict[str, Flow | None] = {}

    def get(self, name: str) -> Flow | None:
        """The flow, or None when no file holds it or it does not load (reported on its own)."""
        if name not in self._loaded:
            self._loaded[name] = None
            path = flow_file(self.directory, name)
            if path is not None:
                try:
                    self._loaded[name] = load_flow(path)
                except FlowError:
                    pass
        return self._loaded[name]

    def exists(self, name: str) -> bool:
        return flow_file(self.directory, name) is not None


def from_problem(problem: FlowProblem) -> Finding:
    return Finding("error", problem.source, problem.line, problem.column, problem.field, problem.message)


# ----------------------------------------------------------------------------------- checks


def _lint_directory(directory: Path, *, queues: Collection[str] | None,
                    sounds: SoundLibrary | None) -> list[Finding]:
    # The same selection and order as load_flows, so the linter checks what the engine will load.
    findings: list[Finding] = []
    seen: dict[str, Path] = {}
    neighbours = FlowDirectory(directory)
    for path in sorted(directory.iterdir()):
        if path.suffix not in FLOW_SUFFIXES or path.name.startswith(".") or not path.is_file():
            continue
        if path.stem in seen:
            findings.append(Finding("error", str(path), None, None, "",
                                    f"flow {path.stem!r} is defined twice (also in {seen[path.stem]})"))
            continue
        seen[path.stem] = path
        findings.extend(lint_file(path, queues=queues, sounds=sounds, neighbours=neighbours))
    return findings


def _unreachable(flow: Flow) -> Iterator[Finding]:
    reached = _reachable(flow)
    for name in flow.nodes:
        if name not in reached:
            yield _at(flow, "warning", f"nodes.{name}",
                      f"node {name!r} cannot be reached from the start node {flow.start!r}")


def _reachable(flow: Flow) -> set[str]:
    reached = {flow.start}
    todo = [flow.start]
    while todo:
        for _, target in flow.nodes[todo.pop()].targets():
            if target not in reached:
                reached.add(target)
                todo.append(target)
    return reached


def waits_for_input(node: Node) -> bool:
    """Whether the call stops at this node until the caller acts (or a timeout passes). Only menus
    and input nodes do; a play node ignores keys and moves on, and set, branch and schedule nodes
    take no time at all, so a loop of those spins without the caller."""
    return isinstance(node, MenuNode | InputNode | SurveyNode)


def _unset_variables(flow: Flow) -> Iterator[Finding]:
    """Variables read (in ${...} or a condition) that no node in the flow ever sets: at run time
    they read as "", which is almost always a typo in the name."""
    written = {name for node in flow.nodes.values() for name in variables_written(node)}
    for name, node in flow.nodes.items():
        for path, variable in variables_read(node):
            if variable not in written:
                yield _at(flow, "warning", ".".join(("nodes", name, *path)),
                          f"variable {variable!r} is never set in this flow (no set or input node "
                          "stores it), so it always reads as \"\"")


def _loops_without_input(flow: Flow) -> Iterator[Finding]:
    passing = {name for name, node in flow.nodes.items() if not waits_for_input(node)}
    edges = {name: [t for _, t in flow.nodes[name].targets() if t in passing] for name in passing}
    order = {name: i for i, name in enumerate(flow.nodes)}  # file order, for stable reports
    for component in _strongly_connected(sorted(passing, key=order.__getitem__), edges):
        first = min(component, key=order.__getitem__)
        if len(component) == 1 and first not in edges[first]:
            continue  # a single node that does not lead to itself is no loop
        cycle = _cycle_through(first, component, edges)
        yield _at(flow, "error", f"nodes.{first}",
                  f"loop {' -> '.join(cycle)} never waits for input (the call would go round it "
                  "until the step limit hangs up)")


def _strongly_connected(names: Sequence[str], edges: Mapping[str, Sequence[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative: a flow may have up to 1000 nodes, deeper than Python's
    recursion limit allows for a chain of them."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for root in names:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            name, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                elif child in on_stack:
                    low[name] = min(low[name], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[name])
            if low[name] == index[name]:
                component: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == name:
                        break
                components.append(component)
    return components


def _cycle_through(first: str, component: set[str], edges: Mapping[str, Sequence[str]]) -> list[str]:
    """A shortest way from ``first`` back to itself inside its component, as node names."""
    came_from: dict[str, str] = {}
    todo = deque([first])
    while todo:
        name = todo.popleft()
        for target in edges[name]:
            if target == first:
                path = [name]
                while path[-1] != first:
                    path.append(came_from[path[-1]])
                return [*reversed(path), first]
            if target in component and target not in came_from:
                came_from[target] = name
                todo.append(target)
    raise AssertionError(f"{first!r} is on no cycle")  # pragma: no cover - callers pass a cycle


def _unknown_queues(flow: Flow, queues: Collection[str]) -> Iterator[Finding]:
    for name, node in flow.nodes.items():
        for path, queue in queues_named(node):
            if queue not in queues:
                yield _at(flow, "error", ".".join(("nodes", name, *path)), unknown_queue_message(queue, queues))


def _dangling_gotos(flow: Flow, flows: FlowDirectory) -> Iterator[Finding]:
    """Goto nodes whose flow (or node in it) does not exist: at run time the caller would be sent
    to the fallback route instead."""
    for name, node in flow.nodes.items():
        if not isinstance(node, GotoNode):
            continue
        if not flows.exists(node.flow):
            yield _at(flow, "error", f"nodes.{name}.flow",
                      f"flow {node.flow!r} does not exist (no {node.flow}.yaml in {flows.directory})")
            continue
        target = flows.get(node.flow)
        if target is not None and node.node is not None and node.node not in target.nodes:
            yield _at(flow, "error", f"nodes.{name}.node", f"node {node.node!r} is not in flow {node.flow!r}")


def _missing_surveys(flow: Flow, flows: FlowDirectory) -> Iterator[Finding]:
    """Queue nodes whose survey flow does not exist: the caller would hear nothing after the call."""
    for name, node in flow.nodes.items():
        if isinstance(node, QueueNode) and node.survey is not None and not flows.exists(node.survey):
            yield _at(flow, "error", f"nodes.{name}.survey",
                      f"survey flow {node.survey!r} does not exist (no {node.survey}.yaml in {flows.directory})")


def _missing_sounds(flow: Flow, sounds: SoundLibrary) -> Iterator[Finding]:
    for name, node in flow.nodes.items():
        for path, sound in node.sounds():
            if not sounds.has(sound):
                yield _at(flow, "error", ".".join(("nodes", name, *path)),
                          f"sound {sound!r} is not in the provisioned Asterisk (no {sound}."
                          f"{{{','.join(SOUND_EXTENSIONS)}}} in {sounds.searched})")


def _at(flow: Flow, severity: Severity, field: str, message: str) -> Finding:
    line, column = flow.locate(field) or (None, None)
    return Finding(severity, flow.source, line, column, field, message)


def _sound_check_skipped(root: Path | None) -> Finding:
    where = str(root) if root is not None else "asterisk_root"
    return Finding("warning", where, None, None, "",
                   "sound check skipped: no provisioned Asterisk root here "
                   "(`callcenter asterisk install` builds it)")


# ------------------------------------------------------------------------------ sound files


class SoundLibrary:
    """The prompts a provisioned Asterisk root can play, looked up as Asterisk inside it would."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._known: dict[str, bool] = {}  # a flow repeats prompts; look each up once

    @classmethod
    def open(cls, root: Path | None) -> SoundLibrary | None:
        """The library of ``root``, or None when there is no Asterisk root (no sounds folder)."""
        if root is None:
            return None
        sounds_dir = resolve_in_root(root, SOUNDS_DIR)
        return cls(root) if sounds_dir is not None and sounds_dir.is_dir() else None

    @property
    def searched(self) -> str:
        return f"{self.root / SOUNDS_DIR / SOUND_LANGUAGE}"

    def has(self, sound: str) -> bool:
        if sound not in self._known:
            self._known[sound] = any(
                _is_file(resolve_in_root(self.root, folder / f"{sound}.{ext}"))
                for folder in (SOUNDS_DIR / SOUND_LANGUAGE, SOUNDS_DIR)
                for ext in SOUND_EXTENSIONS
            )
        return self._known[sound]


def resolve_in_root(root: Path, path: str | PurePosixPath) -> Path | None:
    """Where ``path``, as seen by a process chrooted at ``root``, is on this machine; None if it does
    not exist there.

    The root's links are written for inside it (sounds/en -> /etc/alternatives/asterisk-prompt-en ->
    /usr/share/...), so an absolute link target starts again at ``root``, and '..' stops at it,
    instead of leading into the host's own /etc or /usr.
    """
    todo = deque(part for part in PurePosixPath(path).parts if part != "/")
    resolved: list[str] = []
    links = 0
    while todo:
        part = todo.popleft()
        if part in ("", "."):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        here = root.joinpath(*resolved, part)
        if here.is_symlink():
            links += 1
            if links > _MAX_SYMLINKS:
                return None
            target = PurePosixPath(os.readlink(here))
            if target.is_absolute():
                resolved = []
            todo.extendleft(reversed([p for p in target.parts if p != "/"]))
            continue
        if not here.exists():
            return None
        resolved.append(part)
    return root.joinpath(*resolved)


def _is_file(path: Path | None) -> bool:
    return path is not None and path.is_file()
