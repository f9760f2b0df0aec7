"""Every spec field is documented, and the generated reference shows all of them."""

from __future__ import annotations

from typing import Any

from compiler.emitters.reference import render_reference
from core.spec import ProjectSpec

SCHEMA = ProjectSpec.model_json_schema()


def _undocumented(model: dict[str, Any], where: str) -> list[str]:
    missing = []
    for name, prop in model.get("properties", {}).items():
        ref = prop.get("$ref") or next((o["$ref"] for o in prop.get("anyOf", []) if "$ref" in o), None)
        described = "description" in prop or (ref and "description" in SCHEMA["$defs"][ref.rsplit("/", 1)[-1]])
        if not described:
            missing.append(f"{where}.{name}")
    return missing


def test_every_field_has_a_description() -> None:
    missing = _undocumented(SCHEMA, "ProjectSpec")
    for name, model in SCHEMA["$defs"].items():
        missing += _undocumented(model, name)
    assert not missing, f"add a docstring under these fields: {missing}"


def test_reference_lists_every_leaf_field_in_well_formed_tables() -> None:
    text = render_reference(SCHEMA)
    for path in ("name", "data.pruning.budget", "train.hpo.space", "serving.canary_percent",
                 "dependability.robustness.severities", "data.sources[].max_images_per_class"):
        assert f"| `{path}` |" in text, path
    table_rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(table_rows) > 90
    for row in table_rows:
        assert row.count(" | ") - row.count("\\| ") == 3, row
