"""The project-spec language: pydantic models, one module per group of sections."""

from functools import cache
from typing import Any

from core.spec.project import ProjectSpec

__all__ = ["ProjectSpec", "project_json_schema"]


@cache
def project_json_schema() -> dict[str, Any]:
    """The spec's JSON Schema, built once per process (the schema and reference emitters both need it)."""
    return ProjectSpec.model_json_schema()
