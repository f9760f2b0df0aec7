"""The project-spec language: pydantic models, one module per group of sections."""

from compiler.spec.project import ProjectSpec

__all__ = ["ProjectSpec"]
