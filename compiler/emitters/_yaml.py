"""Deterministic YAML text: the caller decides key order, we never reorder or wrap lines.

ruamel.yaml decides how every scalar is written (quoting, literal blocks, number forms); the block structure
around them (indentation, dashes, nesting) is laid out here. ruamel's pure-Python emitter spends most of
`autodl compile` walking tens of thousands of nodes through its event machinery, yet a generated file holds few
distinct scalars: each is rendered by ruamel once and reused. The layout is ruamel's own for these settings
(mappings indented 2, sequences 4 with the dash at 2), and a document whose scalars ruamel would wrap or that
holds anything but dicts, lists and scalars is handed to ruamel whole, so the bytes are always ruamel's.
"""

from __future__ import annotations

import io
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.representer import SafeRepresenter


class _Representer(SafeRepresenter):
    """Multi-line strings (scripts, embedded manifests) as literal blocks a reviewer can read in a diff."""


def _string(representer: SafeRepresenter, value: str) -> Any:
    style = "|" if _is_literal(value) else None
    return representer.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _is_literal(value: object) -> bool:
    return isinstance(value, str) and "\n" in value and value.endswith("\n") and " \n" not in value


_Representer.add_representer(str, _string)


def _ruamel_dump(data: Any) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.Representer = _Representer
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.representer.ignore_aliases = lambda *args: True  # shared objects are written out, never as &anchors
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    return buffer.getvalue()


class _Unsupported(Exception):
    """The document holds something the layout here does not cover: ruamel writes it whole."""


_SCALARS = (str, int, float, bool, type(None))
_rendered: dict[tuple[type, object], tuple[str, tuple[str, ...]]] = {}


def _scalar(value: object) -> tuple[str, tuple[str, ...]]:
    """ruamel's text for a scalar: (what follows `key: `, the lines of a literal block below it, at indent 0)."""
    found = _rendered.get((type(value), value))
    if found is None:
        _render([value])
        found = _rendered[(type(value), value)]
    return found


def _render(values: list[object]) -> None:
    """Have ruamel write every new scalar of `values` in one document (one pass of its emitter, not one each)."""
    fresh = list(dict.fromkeys((type(v), v) for v in values if (type(v), v) not in _rendered))
    if not fresh:
        return
    lines = _ruamel_dump({f"k{i}": value for i, (_, value) in enumerate(fresh)}).splitlines()
    starts = [n for n, line in enumerate(lines) if line.startswith("k") and ": " in line[:12]] + [len(lines)]
    if len(starts) - 1 != len(fresh):
        raise _Unsupported("a scalar ruamel writes over several lines")
    for i, (key, begin, end) in enumerate(zip(fresh, starts, starts[1:], strict=False)):
        head = lines[begin].removeprefix(f"k{i}: ")
        literal = _is_literal(key[1]) and head == "|"
        if end - begin != 1 and not literal:
            raise _Unsupported("a scalar ruamel wraps, or a literal block with kept or stripped line ends")
        _rendered[key] = (head, tuple(line[2:] for line in lines[begin + 1:end]))


def _scalars(data: Any, found: list[object]) -> list[object]:
    if isinstance(data, dict):
        for key, value in data.items():
            found.append(key)
            _scalars(value, found)
    elif isinstance(data, list):
        for item in data:
            _scalars(item, found)
    elif isinstance(data, _SCALARS):
        found.append(data)
    return found


def _key(value: object) -> str:
    if not isinstance(value, str | int | bool) or _is_literal(value):
        raise _Unsupported("a key that is not a plain scalar")
    text, _ = _scalar(value)
    return text


def _block(lines: tuple[str, ...], indent: int) -> list[str]:
    return [" " * indent + line if line else "" for line in lines]


def _value_lines(prefix: str, value: object, child_indent: int) -> list[str]:
    """`prefix` (a key with its colon, or a dash) followed by `value`, whose block lines sit at `child_indent`."""
    if isinstance(value, _SCALARS):
        head, literal = _scalar(value)
        return [f"{prefix} {head}", *_block(literal, child_indent)]
    if isinstance(value, dict | list) and not value:
        return [f"{prefix} {'{}' if isinstance(value, dict) else '[]'}"]
    raise _Unsupported(type(value).__name__)


def _mapping(data: dict[Any, Any], indent: int) -> list[str]:
    lines: list[str] = []
    for key, value in data.items():
        prefix = " " * indent + _key(key) + ":"
        if isinstance(value, dict) and value:
            lines += [prefix, *_mapping(value, indent + 2)]
        elif isinstance(value, list) and value:
            lines += [prefix, *_sequence(value, indent + 2)]
        else:
            lines += _value_lines(prefix, value, indent + 2)
    return lines


def _sequence(items: list[Any], dash: int) -> list[str]:
    lines: list[str] = []
    for item in items:
        if isinstance(item, dict) and item:
            nested = _mapping(item, dash + 2)
        elif isinstance(item, list) and item:
            nested = _sequence(item, dash + 4)
        else:
            lines += _value_lines(" " * dash + "-", item, dash + 2)
            continue
        lines += [" " * dash + "- " + nested[0][dash + 2:], *nested[1:]]
    return lines


def dump_yaml(data: Any) -> str:
    try:
        _render(_scalars(data, []))
        if isinstance(data, dict) and data:
            return "\n".join(_mapping(data, 0)) + "\n"
        if isinstance(data, list) and data:
            return "\n".join(_sequence(data, 2)) + "\n"  # ruamel offsets a top-level sequence too
    except _Unsupported:
        pass
    return _ruamel_dump(data)


def sort_keys(data: Any) -> Any:
    """Recursively sort mapping keys (list order is meaning, so lists keep theirs)."""
    if isinstance(data, dict):
        return {key: sort_keys(data[key]) for key in sorted(data)}
    if isinstance(data, list):
        return [sort_keys(item) for item in data]
    return data
