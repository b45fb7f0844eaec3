"""YAML files that report where things are: loading with positions, duplicate keys refused,
and a field path (as pydantic reports it) mapped back to a line and column. Shared by every
loader whose errors must name file, line and field (IVR flows, routing rules, campaigns, QA
forms), and the one shape those errors take (SourceProblem, SourceProblems)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

Loc = Sequence[str | int]


@dataclass(frozen=True)
class SourceProblem:
    """One problem in a file: where (line and column when known), which field, what is wrong."""

    source: str
    line: int | None
    column: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        if self.line is not None and self.column is not None:
            where += f":{self.column}"
        return f"{where}: {self.field + ': ' if self.field else ''}{self.message}"


class SourceProblems(ValueError):
    """A file was refused; ``problems`` lists every reason, one per line of the message."""

    def __init__(self, problems: Sequence[SourceProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class YamlSourceError(ValueError):
    """Invalid YAML, or a duplicate key; ``mark`` says where (None if unknown)."""

    def __init__(self, mark: yaml.Mark | None, reason: str) -> None:
        self.mark = mark
        self.reason = reason
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        super().__init__(where + reason)


class SafeDateLoader(yaml.SafeLoader):
    """SafeLoader whose impossible dates (2026-13-01: YAML reads the shape as a date) are YAML
    errors with a position, instead of a bare ValueError out of the constructor."""

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value!r} is not a valid date ({exc})", node.start_mark) from None


SafeDateLoader.add_constructor("tag:yaml.org,2002:timestamp", SafeDateLoader.construct_yaml_timestamp)


def compose_yaml(text: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (for positions) and the plain data of one YAML document."""
    loader = SafeDateLoader(text)
    try:
        root = loader.get_single_node()
        if root is not None:
            # PyYAML silently keeps the last of two equal keys: a second entry with the same name
            # would replace the first without a word, so refuse it (before merge keys are expanded).
            dup = first_duplicate_key(root)
            if dup is not None:
                raise YamlSourceError(dup.start_mark, f"duplicate key {dup.value!r}")
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        raise YamlSourceError(exc.problem_mark or exc.context_mark,
                              f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise YamlSourceError(None, f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    return root, data


def first_duplicate_key(root: yaml.Node) -> yaml.ScalarNode | None:
    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:  # aliases share nodes, and may even form cycles
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value != "<<":
                    if key.value in keys:
                        return key
                    keys.add(key.value)
                stack.extend((key, value))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return None


def list_index(part: str | int) -> int | None:
    """A list index in a field path: pydantic gives ints, ``targets()`` paths give digit strings."""
    if isinstance(part, int):
        return part if part >= 0 else None
    return int(part) if part.isdigit() else None


def locate_mark(root: yaml.Node | None, loc: Loc, *, at_key: bool = False) -> yaml.Mark | None:
    """The position of ``loc`` in the file, or of the deepest part of it that exists there
    (a missing field points at the mapping it is missing from)."""
    if root is None:
        return None
    node, key_node = root, None
    for part in loc:
        if part == "[key]":
            return key_node.start_mark if key_node is not None else node.start_mark
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)
                          and k.value == str(part)), None)
            if match is None:
                break
            key_node, node = match
        elif isinstance(node, yaml.SequenceNode) and (index := list_index(part)) is not None \
                and index < len(node.value):
            key_node, node = None, node.value[index]
        else:
            break
    else:
        if at_key and key_node is not None:
            return key_node.start_mark
    return node.start_mark
