"""The outputs of a cascade's two projects (and its baseline) its stages read."""

from __future__ import annotations

from core.contract import ProjectInput

DETECTOR_RELEASE = ProjectInput("cascade.detector", "detection", "promote.release")
"""The detector as its own gate passed it and its promote bundled it: the file a cascade serves."""
CLASSIFIER_RELEASE = ProjectInput("cascade.classifier", "classification", "promote.release")
DETECTOR_VERDICT = ProjectInput("cascade.detector", "detection", "gate.verdict")
CLASSIFIER_VERDICT = ProjectInput("cascade.classifier", "classification", "gate.verdict")
