"""Read one spec file into plain Python data plus a map from field paths to line/column.

The file is composed into YAML nodes (YAML 1.2, libyaml's parser), which carry
the position of every key and value; everything a hostile or careless file can
do (duplicate keys, several documents, custom tags, alias bombs, huge files)
is turned into a Diagnostic here, before validation.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from compiler.errors import Diagnostic, SpecError, dotted

MAX_SPEC_BYTES = 1024 * 1024
MAX_NODES = 20_000
"""Upper bound on values after alias expansion; a real spec has a few hundred."""
MAX_DEPTH = 32

Path_ = tuple[str | int, ...]

PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in
                       ("map", "seq", "str", "int", "float", "bool", "null", "timestamp"))
MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass
class SourceMap:
    """Where each field path sits in the file: the key (or list item) and its value (0-based)."""

    file: str
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def position(self, path: Path_, *, of_key: bool = False) -> tuple[int, int]:
        """1-based (line, column) of the longest prefix of `path` that exists in the file."""
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            table = self.keys if (of_key and end == len(path)) else self.values
            if prefix in table:
                line, col = table[prefix]
                return line + 1, col + 1
        return 1, 1

    def diagnostic(self, path: Path_, message: str, hint: str | None = None, *, of_key: bool = False) -> Diagnostic:
        line, column = self.position(path, of_key=of_key)
        return Diagnostic(self.file, line, column, dotted(path), message, hint)


def load_yaml(path: Path, display_name: str) -> tuple[dict[str, Any], SourceMap]:
    """Parse `path`; raise SpecError for anything that is not one plain YAML mapping."""
    size = path.stat().st_size
    if size > MAX_SPEC_BYTES:
        raise _file_error(display_name, f"file is {size} bytes; specs are limited to {MAX_SPEC_BYTES} bytes")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise _file_error(display_name, f"file is not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise _file_error(display_name, f"cannot read file ({exc.strerror})") from None
    yaml = YAML(typ="safe")  # libyaml's parser (ruamel.yaml.clib); nodes keep line and column
    try:
        documents = [node for node in yaml.compose_all(text) if not _is_null(node)]
    except MarkedYAMLError as exc:
        raise _marked_error(display_name, exc, text) from None
    except YAMLError as exc:
        raise _file_error(display_name, f"invalid YAML: {exc}") from None
    if not documents:
        raise _file_error(display_name, "file is empty; a spec is a YAML mapping with at least name, classes and data")
    if len(documents) > 1:
        raise _file_error(display_name, "file holds several YAML documents ('---'); put one project in each file",
                          line=documents[1].start_mark.line + 1)
    root = documents[0]
    if not isinstance(root, MappingNode):
        kind = "list" if isinstance(root, SequenceNode) else "single value"
        raise _file_error(display_name, f"top level must be a mapping of fields (got a {kind})")
    source_map = SourceMap(display_name)
    source_map.values[()] = (0, 0)
    converter = _Converter(source_map, yaml.constructor)
    data = converter.convert(root, ())
    if converter.problems:
        raise SpecError(converter.problems)
    return data, source_map


class _Converter:
    """Turn composed YAML nodes into plain data, recording positions and bounding alias expansion.

    Working on nodes rather than constructed objects keeps every key's and
    value's mark, lets duplicate keys be reported where they occur, and makes
    an alias bomb cost a counter increment instead of memory.
    """

    def __init__(self, source_map: SourceMap, constructor: Any):
        self.source_map = source_map
        self.constructor = constructor
        self.nodes = 0
        self.problems: list[Diagnostic] = []

    def convert(self, node: Node, path: Path_) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES or len(path) > MAX_DEPTH:
            raise SpecError([self.source_map.diagnostic(
                path, f"too many values after expanding YAML aliases (limit {MAX_NODES} values, depth {MAX_DEPTH})",
                "remove the anchors/aliases ('&x' / '*x') that repeat data")])
        if node.tag not in PLAIN_TAGS:
            self.problems.append(self.source_map.diagnostic(path, f"YAML tag {node.tag} is not supported",
                                                            "remove the tag; specs use plain YAML values"))
            return None
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            return self._sequence(node, path)
        value = self.constructor.construct_object(node, deep=True)
        return value.isoformat() if isinstance(value, datetime.date) else value

    def _mapping(self, node: MappingNode, path: Path_) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key_pos = (key_node.start_mark.line, key_node.start_mark.column)
            key, problem = self._key(key_node)
            if key is None:
                merge = key_node.tag == MERGE_TAG
                message = ("YAML merge keys ('<<') are not supported" if merge
                           else f"keys must be strings (got {problem})")
                hint = "write the fields out" if merge else "quote the key"
                self.problems.append(Diagnostic(self.source_map.file, key_pos[0] + 1, key_pos[1] + 1, dotted(path),
                                                message, hint))
                continue
            child = (*path, key)
            if key in out:
                first = self.source_map.keys[child]
                self.problems.append(Diagnostic(self.source_map.file, key_pos[0] + 1, key_pos[1] + 1, dotted(child),
                                                f"duplicate key '{key}' (first defined on line {first[0] + 1})",
                                                "each field may appear once in a mapping; delete or merge them"))
                continue
            self.source_map.keys[child] = key_pos
            self.source_map.values[child] = (value_node.start_mark.line, value_node.start_mark.column)
            out[key] = self.convert(value_node, child)
        return out

    def _key(self, node: Node) -> tuple[str | None, str]:
        """(key, "") for a string key, else (None, what the key is instead)."""
        if not isinstance(node, ScalarNode):
            return None, "a mapping or list"
        if node.tag not in PLAIN_TAGS:
            return None, f"a value tagged {node.tag}"
        value = self.constructor.construct_object(node)
        return (value, "") if isinstance(value, str) else (None, repr(value))

    def _sequence(self, node: SequenceNode, path: Path_) -> list[Any]:
        out = []
        for index, item in enumerate(node.value):
            child = (*path, index)
            self.source_map.keys[child] = self.source_map.values[child] = (item.start_mark.line,
                                                                            item.start_mark.column)
            out.append(self.convert(item, child))
        return out


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _file_error(file: str, message: str, line: int = 1) -> SpecError:
    return SpecError([Diagnostic(file, line, 1, "", message)])


def _marked_error(file: str, exc: MarkedYAMLError, text: str) -> SpecError:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
    lines = text.splitlines()
    at = lines[line - 1][column - 1:column] if 0 < line <= len(lines) else ""
    if at == "\t" or (exc.problem and "'\\t'" in exc.problem):
        return SpecError([Diagnostic(file, line, column, "", "invalid YAML: a tab character where YAML expects "
                                     "indentation or a value", "YAML indents with spaces only: replace the tab with "
                                     "spaces")])
    return SpecError([Diagnostic(file, line, column, "", f"invalid YAML: {problem}")])
