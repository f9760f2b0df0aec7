"""Read one spec file into plain Python data plus a map from field paths to line/column.

ruamel.yaml keeps positions for every key and item; everything a hostile or
careless file can do (duplicate keys, several documents, custom tags, alias
bombs, huge files) is turned into a Diagnostic here, before validation.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from compiler.errors import Diagnostic, SpecError, dotted

MAX_SPEC_BYTES = 1024 * 1024
MAX_NODES = 20_000
"""Upper bound on values after alias expansion; a real spec has a few hundred."""
MAX_DEPTH = 32

Path_ = tuple[str | int, ...]


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
    yaml = YAML(typ="rt", pure=True)
    yaml.allow_duplicate_keys = False
    try:
        documents = list(yaml.load_all(text))
    except MarkedYAMLError as exc:
        raise _marked_error(display_name, exc) from None
    except YAMLError as exc:
        raise _file_error(display_name, f"invalid YAML: {exc}") from None
    documents = [d for d in documents if d is not None]
    if not documents:
        raise _file_error(display_name, "file is empty; a spec is a YAML mapping with at least name, classes and data")
    if len(documents) > 1:
        raise _file_error(display_name, "file holds several YAML documents ('---'); put one project in each file",
                          line=_second_document_line(text))
    root = documents[0]
    if not isinstance(root, CommentedMap):
        kind = {"CommentedSeq": "list"}.get(type(root).__name__, type(root).__name__)
        raise _file_error(display_name, f"top level must be a mapping of fields (got a {kind})")
    source_map = SourceMap(display_name)
    source_map.values[()] = (0, 0)
    converter = _Converter(source_map)
    data = converter.convert(root, ())
    if converter.problems:
        raise SpecError(converter.problems)
    return data, source_map


class _Converter:
    """Turn ruamel's round-trip nodes into plain data, recording positions and bounding expansion."""

    def __init__(self, source_map: SourceMap):
        self.source_map = source_map
        self.nodes = 0
        self.problems: list[Diagnostic] = []

    def convert(self, node: Any, path: Path_) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES or len(path) > MAX_DEPTH:
            raise SpecError([self.source_map.diagnostic(path, "too many values after expanding YAML aliases"
                                                        f" (limit {MAX_NODES} values, depth {MAX_DEPTH})",
                                                        "remove the anchors/aliases ('&x' / '*x') that repeat data")])
        tag = getattr(getattr(node, "tag", None), "value", None)
        if isinstance(node, TaggedScalar) and tag == "tag:yaml.org,2002:str":
            return str(node.value)
        if tag is not None and (isinstance(node, TaggedScalar) or not tag.startswith("tag:yaml.org,2002:")):
            self.problems.append(self.source_map.diagnostic(path, f"YAML tag {tag} is not supported",
                                                            "remove the tag; specs use plain YAML values"))
            return None
        if isinstance(node, CommentedMap):
            return self._mapping(node, path)
        if isinstance(node, CommentedSeq):
            return self._sequence(node, path)
        return self._scalar(node, path)

    def _mapping(self, node: CommentedMap, path: Path_) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in node:
            if not isinstance(key, str):
                line, col = node.lc.key(key)
                self.problems.append(Diagnostic(self.source_map.file, line + 1, col + 1, dotted(path),
                                                f"keys must be strings (got {key!r})", "quote the key"))
                continue
            child = (*path, key)
            self.source_map.keys[child] = node.lc.key(key)
            self.source_map.values[child] = node.lc.value(key)
            out[key] = self.convert(node[key], child)
        return out

    def _sequence(self, node: CommentedSeq, path: Path_) -> list[Any]:
        out = []
        for index, item in enumerate(node):
            child = (*path, index)
            self.source_map.keys[child] = self.source_map.values[child] = node.lc.item(index)
            out.append(self.convert(item, child))
        return out

    def _scalar(self, node: Any, path: Path_) -> Any:
        if node is None or isinstance(node, bool):
            return node
        if isinstance(node, int):
            return int(node)
        if isinstance(node, float):
            return float(node)
        if isinstance(node, str):
            return str(node)
        if isinstance(node, datetime.date):
            return node.isoformat()
        self.problems.append(self.source_map.diagnostic(path, f"unsupported YAML value {type(node).__name__}",
                                                        "use plain strings, numbers, booleans, lists and mappings"))
        return None


def _file_error(file: str, message: str, line: int = 1) -> SpecError:
    return SpecError([Diagnostic(file, line, 1, "", message)])


def _second_document_line(text: str) -> int:
    """1-based line of the separator that starts the second document."""
    seen_content = False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("---"):
            if seen_content:
                return number
            continue
        seen_content = seen_content or (bool(line.strip()) and not line.lstrip().startswith("#"))
    return 1


def _marked_error(file: str, exc: MarkedYAMLError) -> SpecError:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
    hint = None
    if "duplicate key" in problem:
        hint = "each field may appear once in a mapping; delete or merge the repeated key"
        problem = problem.split("\n")[0]
    return SpecError([Diagnostic(file, line, column, "", f"invalid YAML: {problem}", hint)])
