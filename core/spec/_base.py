"""Building blocks shared by every spec section: a strict base model and range types.

Range checks are written as one annotated type instead of pydantic's separate
`gt`/`le` constraints so an author sees the whole allowed interval at once
("must be > 0 and <= 1 (got 1.5)") rather than only the bound they crossed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import PydanticCustomError, core_schema


class SpecModel(BaseModel):
    """Base of every spec section: unknown keys are errors, values are never coerced, objects are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, use_attribute_docstrings=True)


@dataclass(frozen=True)
class Interval:
    """A closed/open numeric interval that validates and documents itself in the JSON Schema."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def describe(self) -> str:
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {_num(self.lo)}")
        if self.hi is not None:
            parts.append(f"{'<' if self.hi_open else '<='} {_num(self.hi)}")
        return " and ".join(parts)

    def contains(self, value: float) -> bool:
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return not (self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi))

    def _check(self, value: Any) -> Any:
        if not self.contains(value):
            raise PydanticCustomError(
                "out_of_range", "must be {interval} (got {got})", {"interval": self.describe(), "got": value}
            )
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> Any:
        json_schema = handler(schema)
        if self.lo is not None:
            json_schema["exclusiveMinimum" if self.lo_open else "minimum"] = self.lo
        if self.hi is not None:
            json_schema["exclusiveMaximum" if self.hi_open else "maximum"] = self.hi
        return json_schema


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


Fraction = Annotated[float, Interval(0.0, 1.0)]
"""A value in [0, 1]: probabilities, thresholds, accuracies."""

PositiveFraction = Annotated[float, Interval(0.0, 1.0, lo_open=True)]
"""A value in (0, 1]: budgets and split shares, where zero would mean 'nothing'."""

PositiveFloat = Annotated[float, Interval(0.0, lo_open=True)]
PositiveInt = Annotated[int, Interval(1)]
NonNegativeInt = Annotated[int, Interval(0)]

DNS_LABEL_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
DnsLabel = Annotated[str, Field(pattern=DNS_LABEL_PATTERN, min_length=1, max_length=63)]


@dataclass(frozen=True)
class _RepoRelative:
    """Lexical check that a path stays inside the repository (no absolute paths, no '..' escape)."""

    def _check(self, value: str) -> str:
        if not value or value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", value):
            raise PydanticCustomError("path_outside_repo", "must be a path relative to the repository root")
        depth = 0
        for part in re.split(r"[/\\]+", value):
            depth += -1 if part == ".." else (0 if part in ("", ".") else 1)
            if depth < 0:
                raise PydanticCustomError("path_outside_repo", "path leaves the repository (got {got})", {"got": value})
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))


RepoPath = Annotated[str, _RepoRelative()]
"""A path relative to the repository root that cannot leave it."""
