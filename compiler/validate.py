"""Validate plain spec data against ProjectSpec and report errors at their line and column.

pydantic finds every type and range error in one pass; this module rewrites
each into a Diagnostic a spec author can act on (plain message, did-you-mean
hint, position of the offending key or value), then runs the cross-field checks.
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ValidationError

from compiler.errors import Diagnostic, SpecError
from compiler.yaml_source import SourceMap
from core.spec import ProjectSpec

TYPE_NAMES = {
    "int_type": "an integer", "int_from_float": "an integer", "float_type": "a number",
    "string_type": "a string", "bool_type": "true or false", "list_type": "a list",
    "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
    "none_required": "null",
}


def validate_spec(data: dict[str, Any], source_map: SourceMap) -> ProjectSpec:
    """Return the validated spec or raise SpecError with every problem found in the file."""
    try:
        return ProjectSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_joined([_diagnostic(error, data, source_map) for error in exc.errors()])) from None


def _joined(found: list[Diagnostic]) -> list[Diagnostic]:
    """One diagnostic per place: a value that fails every member of a union (`input_size_px`: a number in range,
    or `auto`) gets one message naming what each member wanted, not one error per member."""
    merged: dict[tuple[str, int, int], Diagnostic] = {}
    for diagnostic in found:
        key = (diagnostic.path, diagnostic.line, diagnostic.column)
        if key not in merged:
            merged[key] = diagnostic
            continue
        first = merged[key]
        wanted = diagnostic.message.split(" (got ")[0].removeprefix("must be ")
        merged[key] = replace(first, message=f"{first.message}, or {wanted}", hint=first.hint or diagnostic.hint)
    return list(merged.values())


def _diagnostic(error: Any, data: dict[str, Any], source_map: SourceMap) -> Diagnostic:
    path = data_path(error["loc"], data)
    kind, ctx, got = error["type"], error.get("ctx") or {}, error.get("input")
    if path[-1:] == ("[key]",):  # the mapping key itself is invalid (e.g. an unknown HPO parameter)
        choices = [c.strip("'") for c in _split_choices(ctx.get("expected", ""))]
        return source_map.diagnostic(path[:-1], f"unknown key {got!r}; allowed: {', '.join(choices)}",
                                     _did_you_mean(str(got), choices), of_key=True)
    if kind == "extra_forbidden":
        allowed = fields_at(path[:-1])
        return source_map.diagnostic(path, f"unknown field '{path[-1]}'", _did_you_mean(str(path[-1]), allowed),
                                     of_key=True)
    if kind == "missing":
        return source_map.diagnostic(path, "required field is missing", f"add '{path[-1]}:' here", of_key=True)
    if kind == "literal_error":
        choices = _split_choices(ctx.get("expected", ""))
        return source_map.diagnostic(path, f"must be one of {', '.join(choices)} (got {got!r})",
                                     _did_you_mean(str(got), [c.strip("'") for c in choices]))
    if kind == "union_tag_invalid":
        tags = [t.strip("'") for t in _split_choices(ctx.get("expected_tags", ""))]
        return source_map.diagnostic((*path, "kind"), f"unknown kind {ctx.get('tag')!r}; expected one of "
                                     f"{', '.join(tags)}", _did_you_mean(str(ctx.get("tag")), tags))
    if kind == "union_tag_not_found":
        return source_map.diagnostic(path, "needs a 'kind' field", "for example 'kind: image_folder'")
    if kind in TYPE_NAMES:
        return source_map.diagnostic(path, f"must be {TYPE_NAMES[kind]} (got {_show(got)})", _type_hint(kind, got))
    if kind in ("too_short", "too_long"):
        bound = ctx.get("min_length") if kind == "too_short" else ctx.get("max_length")
        return source_map.diagnostic(path, f"needs at {'least' if kind == 'too_short' else 'most'} {bound} "
                                     f"item{'s' if bound != 1 else ''} (got {ctx.get('actual_length')})")
    if kind == "string_pattern_mismatch":
        return source_map.diagnostic(path, f"invalid value {got!r}", _pattern_hint(path))
    return source_map.diagnostic(path, _plain(error["msg"], got))


def data_path(loc: tuple[Any, ...], data: Any) -> tuple[str | int, ...]:
    """Map pydantic's error location onto the path in the file (dropping discriminator tags)."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part not in node and node.get("kind") == part:
            continue  # pydantic names the chosen union member by its tag; the file has no such level
        if isinstance(part, str) and node is not None and not isinstance(node, dict | list):
            continue  # a member of a scalar's union (`int | Literal["auto"]`): the file has no such level
        path.append(part)
        node = node.get(part) if isinstance(node, dict) else (
            node[part] if isinstance(node, list) and isinstance(part, int) and part < len(node) else None)
    return tuple(path)


def fields_at(path: tuple[str | int, ...], model: type[BaseModel] = ProjectSpec) -> list[str]:
    """Field names allowed at `path` (used for did-you-mean on unknown keys)."""
    annotation: Any = model
    for part in path:
        annotation = _unwrap(annotation, part)
        if annotation is None:
            return []
    members = [m for m in _members(annotation) if isinstance(m, type) and issubclass(m, BaseModel)]
    return sorted({name for m in members for name in m.model_fields})


def _unwrap(annotation: Any, part: str | int) -> Any:
    for member in _members(annotation):
        if isinstance(part, int) and typing.get_origin(member) is list:
            return typing.get_args(member)[0]
        if isinstance(part, str) and typing.get_origin(member) is dict:
            return typing.get_args(member)[1]
        if isinstance(member, type) and issubclass(member, BaseModel) and part in member.model_fields:
            return member.model_fields[part].annotation
    return None


def _members(annotation: Any) -> list[Any]:
    """Flatten Annotated/Optional/Union wrappers into the concrete types they allow."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _members(arg)]
    return [annotation]


def _did_you_mean(word: str, candidates: list[str]) -> str | None:
    close = difflib.get_close_matches(word, candidates, n=2, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
    return f"allowed: {', '.join(candidates)}" if candidates else None


def _split_choices(expected: str) -> list[str]:
    return [c.strip() for c in expected.replace(" or ", ", ").split(",") if c.strip()]


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _type_hint(kind: str, got: Any) -> str | None:
    if isinstance(got, str) and kind in ("int_type", "float_type", "bool_type"):
        return "remove the quotes so YAML reads a number/boolean, not a string"
    if kind == "int_from_float":
        return "use a whole number"
    return None


def _pattern_hint(path: tuple[str | int, ...]) -> str:
    if path == ("name",):
        return "lower-case letters, digits and '-', starting with a letter (a DNS label; it names k8s objects)"
    if path and path[0] == "classes":
        return "letters, digits, '_', '.', '-', starting with a letter or digit (class names are folder names)"
    if path[-1:] == ("storage_uri",):
        return "a URI such as s3://bucket/prefix, gs://..., pvc://... or https://..."
    return "lower-case letters, digits and '-', starting with a letter"


def _plain(message: str, got: Any) -> str:
    """pydantic's message, lower-cased to read as part of a diagnostic line."""
    text = message[0].lower() + message[1:] if message else "invalid value"
    text = text.removeprefix("value error, ")
    return text if "(got" in text or got is None else f"{text} (got {_show(got)})"
