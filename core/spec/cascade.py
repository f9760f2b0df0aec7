"""A cascade: a detector of coarse classes and a classifier of the fine classes of what it finds, judged and
served as one model (a primary detector with a secondary classifier on its crops)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from core.spec._base import SpecModel
from core.spec.data import ProjectName

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class CascadeSection(SpecModel):
    """The two projects a cascade joins; their own specs train, compress and gate each model."""

    detector: ProjectName
    """A detection project (its spec in specs/): finds the objects, named by its coarse classes."""
    classifier: ProjectName
    """A classification project trained on crops of the detector's boxes (a `crops` source of the detector, or of
    the project the detector's `project` source reads): names each found object by one of the cascade's
    `classes`."""
    baseline: ProjectName | None = None
    """A detection project of the fine classes themselves, measured on the cascade's test images beside it (the
    single-stage detector a cascade has to beat); its split must agree (the detector reads it with a `project`
    source). null: the cascade is measured alone."""
    padding: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1
    """Share of a detected box's width (height) added on each side before the classifier sees it: the padding of
    the classifier's crops source (compile checks they are equal)."""
