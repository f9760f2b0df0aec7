"""`autodl doctor`: hints from the sizes and classes ingest recorded, each naming the spec key to change."""

from __future__ import annotations

from pathlib import Path

from core.fsutil import write_csv
from core.spec import ProjectSpec
from ops.doctor import box_hints, hints, model_choice, summarise
from tests.conftest import MINIMAL_SPEC

CLASSES = ["nominal", "local_defect", "texture"]


def _spec(**overrides) -> ProjectSpec:
    raw = {"name": "fabric", "classes": CLASSES, "data": {"sources": [{"kind": "sklearn_digits"}]}, **overrides}
    return ProjectSpec.model_validate(raw, strict=False)


def _hints(spec: ProjectSpec, summary) -> list:
    """Doctor's hints for `spec` on data of `summary`'s sizes, about the model the train stage would train."""
    typical = summary.short_side[1]
    return hints(spec, summary, model_choice(spec, [(typical, typical)] * summary.images))


def _data(size: tuple[int, int], counts: tuple[int, ...]) -> tuple[list[tuple[int, int]], list[str]]:
    labels = [name for name, count in zip(CLASSES, counts, strict=True) for _ in range(count)]
    return [size] * len(labels), labels


def test_a_250_px_data_set_trained_at_128_px_gets_the_input_size_hint() -> None:
    summary = summarise(*_data((250, 250), (700, 300, 300)), CLASSES)
    assert summary.short_side == (250, 250, 250)
    found = {h.key: h.message for h in _hints(_spec(model={"input_size_px": 128}), summary)}
    assert set(found) == {"model.input_size_px"}
    assert found["model.input_size_px"].startswith(
        "the typical image's shorter side is 250 px: input_size_px 128 shrinks it 2.0x, so details under about 2 px "
        "vanish")
    assert "try input_size_px: 256" in found["model.input_size_px"]
    assert "train.hpo.space.input_size_px: {choices: [128, 256]}" in found["model.input_size_px"]


def test_a_shrink_within_one_and_a_half_times_or_an_enlargement_is_no_hint() -> None:
    for size in ((180, 190), (8, 8)):
        summary = summarise(*_data(size, (500, 400, 300)), CLASSES)
        assert _hints(_spec(model={"input_size_px": 128}), summary) == []


def test_the_typical_image_is_the_median_not_the_largest() -> None:
    sizes = [(100, 100)] * 85 + [(4000, 3000)] * 15  # a few huge photos among small crops
    summary = summarise(sizes, ["nominal"] * 40 + ["local_defect"] * 30 + ["texture"] * 30, CLASSES)
    assert summary.short_side[1] == 100
    assert summary.short_side[2] == 3000
    assert not [h for h in _hints(_spec(model={"input_size_px": 96}), summary) if h.key == "model.input_size_px"]


def test_a_rare_class_gets_the_balance_hint_unless_already_balanced() -> None:
    summary = summarise(*_data((64, 64), (1000, 120, 600)), CLASSES)
    [hint] = _hints(_spec(model={"input_size_px": 64}), summary)
    assert hint.key == "train.balance"
    assert hint.message.startswith("rare class(es): 'local_defect' 120 against 'nominal' 1,000: set train.balance")
    assert _hints(_spec(model={"input_size_px": 64}, train={"balance": "sampler"}), summary) == []


def test_few_images_and_no_pretrained_weights_get_the_pretrained_hint() -> None:
    summary = summarise(*_data((32, 32), (60, 50, 55)), CLASSES)
    scratch = _spec(model={"backbone": "resnet10t", "input_size_px": 32})  # pretrained: auto, none ship for it
    assert [h.key for h in _hints(scratch, summary)] == ["model.pretrained"]
    assert _hints(_spec(), summary) == []  # model: auto starts from the offline weights
    pretrained = _spec(model={"backbone": "tf_efficientnet_lite0", "pretrained": "efficientnet_lite0_imagenet",
                              "input_size_px": 32})
    assert _hints(pretrained, summary) == []


def test_the_cli_prints_the_summary_and_hints_or_says_to_ingest_first(repo: Path, write_spec, run_autodl) -> None:
    write_spec("alpha", MINIMAL_SPEC.format(name="alpha") + "model: {input_size_px: 32}\n")
    code, _, err = run_autodl("doctor", "specs/alpha.yaml")
    assert code == 1
    assert "data/alpha/ingest/manifest.csv is missing or empty: run `dvc repro alpha-ingest` first" in err
    rows = [{"path": f"images/{i}.png", "label": str(i % 3), "source": "s", "origin": "o", "group": "g",
             "sha256": "0", "width": 200, "height": 150, "mode": "RGB"} for i in range(300)]
    write_csv(repo / "data/alpha/ingest/manifest.csv", rows)
    code, out, _ = run_autodl("doctor", "specs/alpha.yaml")
    assert code == 0
    assert out.startswith("alpha: 300 images; median size 200x150 px; shorter side 150-150 px")
    assert "  per class: 0 100, 1 100, 2 100" in out
    assert "  hint [model.input_size_px]: the typical image's shorter side is 150 px: input_size_px 32 shrinks " \
           "it 4.7x" in out


def _detector(tiling: dict | None = None) -> ProjectSpec:
    return ProjectSpec.model_validate(
        {"name": "trees", "task": "detection", "classes": ["tree"],
         "data": {"sources": [{"kind": "coco", "annotations": "a.json"}]},
         "detection": {"input_size_px": 320, **({"tiling": tiling} if tiling is not None else {})}}, strict=False)


def test_small_boxes_in_large_images_get_the_tiling_hint_with_the_shrunk_size() -> None:
    sizes = {"images/a.png": (2300, 2500), "images/b.png": (2400, 2400)}
    boxes = [{"path": p, "x1": "100", "y1": "100", "x2": "125", "y2": "130"} for p in sizes for _ in range(20)]
    [hint] = box_hints(_detector().detection, sizes, boxes)
    assert hint.key == "detection.tiling"
    assert "the median box is 25 px on its shorter side" in hint.message
    assert "becomes 3.3 px" in hint.message  # 25 px x 320 / 2400
    assert box_hints(_detector({"overlap": 0.2}).detection, sizes, boxes) == [], "already tiled"
    large = [{**b, "x2": "400", "y2": "400"} for b in boxes]
    assert box_hints(_detector().detection, sizes, large) == [], "300 px boxes stay 40 px: no tiling needed"


def test_the_cli_shows_what_model_auto_will_train_and_how_to_pin_it(repo: Path, write_spec, run_autodl) -> None:
    write_spec("beta", MINIMAL_SPEC.format(name="beta"))  # no model section: model: auto
    rows = [{"path": f"images/{i}.png", "label": str(i % 3), "source": "s", "origin": "o", "group": "g",
             "sha256": "0", "width": 250, "height": 250, "mode": "L"} for i in range(300)]
    write_csv(repo / "data/beta/ingest/manifest.csv", rows)
    code, out, _ = run_autodl("doctor", "specs/beta.yaml")
    assert code == 0
    assert "  model: auto chooses backbone: tf_efficientnet_lite0" in out
    assert "  model: auto chooses input_size_px: 256: the median shorter side is 250 px" in out
    assert ("  to pin it: model: {backbone: tf_efficientnet_lite0, pretrained: efficientnet_lite0_imagenet, "
            "input_size_px: 256}") in out
    assert "hint [model.input_size_px]" not in out
