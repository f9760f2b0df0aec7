"""Deterministic YAML text: the caller decides key order, we never reorder or wrap lines."""

from __future__ import annotations

import io
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.representer import SafeRepresenter


class _Representer(SafeRepresenter):
    """Multi-line strings (scripts, embedded manifests) as literal blocks a reviewer can read in a diff."""


def _string(representer: SafeRepresenter, value: str) -> Any:
    style = "|" if "\n" in value and value.endswith("\n") and " \n" not in value else None
    return representer.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Representer.add_representer(str, _string)


def dump_yaml(data: Any) -> str:
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


def sort_keys(data: Any) -> Any:
    """Recursively sort mapping keys (list order is meaning, so lists keep theirs)."""
    if isinstance(data, dict):
        return {key: sort_keys(data[key]) for key in sorted(data)}
    if isinstance(data, list):
        return [sort_keys(item) for item in data]
    return data
