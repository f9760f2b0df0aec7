"""A spec key's value validated into its type: how stages read the params they declare.

`params.yaml` holds plain YAML; a stage receives the subset its contract declares and reads each key through
`validated(key, raw)`, so it always works on the spec's own section models (`Quality`, `TrainSection`...)
or typed scalars, with their defaults and constraints, never on raw dictionaries.
"""

from __future__ import annotations

import types
import typing
from functools import cache
from typing import Annotated, Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from core.spec.project import ProjectSpec


def validated(key: str, raw: Any) -> Any:
    """`raw` (the YAML value at the dotted `key`) as the type the spec declares for that key; ValueError naming
    the key when params.yaml holds what no spec could (edited by hand instead of `autodl compile`)."""
    try:
        return _adapter(key).validate_python(raw, strict=False)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or key}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"params.yaml {key} is not valid ({problems}); run `autodl compile`") from None


@cache
def _adapter(key: str) -> TypeAdapter:
    model: type[BaseModel] | None = ProjectSpec
    annotation: Any = None
    for part in key.split("."):
        if model is None or part not in model.model_fields:
            raise KeyError(f"'{key}' is not a spec key")
        field = model.model_fields[part]
        annotation = Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation
        model = _model_in(field.annotation)
    return TypeAdapter(annotation)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The section model a field holds (through Optional), if any."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return next((m for a in typing.get_args(annotation) if (m := _model_in(a)) is not None), None)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
