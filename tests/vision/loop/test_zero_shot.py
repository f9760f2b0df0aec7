"""The zero-shot annotator's plumbing, image to Label Studio pre-annotation and back, with a tiny randomly
initialised OWLv2 saved by the test itself (no weights are downloaded anywhere)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.spec.data import LabelStudioSource
from vision.data.imageio import PixelLimits
from vision.data.labelstudio import prediction, task
from vision.data.sources import RepoFiles, SourceStats
from vision.detection.formats import SourceProblems, iter_box_source
from vision.loop.zero_shot import ZeroShotDetector, ZeroShotUnavailable

CLASSES = ["car", "person"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny OWLv2 (one layer per tower, 32 px images) with a character-level CLIP tokenizer."""
    import torch
    from transformers import CLIPTokenizer, Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    folder = tmp_path_factory.mktemp("owlv2")
    vocab = {"<unk>": 0, "<|startoftext|>": 1, "<|endoftext|>": 2}  # OWL masks queries whose first id is 0
    for char in "abcdefghijklmnopqrstuvwxyz0123456789":
        vocab[char] = len(vocab)
        vocab[char + "</w>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), pad_token="<|endoftext|>",
                              unk_token="<unk>")
    config = Owlv2Config(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 64, "bos_token_id": 1, "eos_token_id": 2,
                     "pad_token_id": 2},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8}, projection_dim=32)
    torch.manual_seed(0)
    Owlv2ForObjectDetection(config).save_pretrained(folder)
    Owlv2Processor(image_processor=Owlv2ImageProcessor(size={"height": 32, "width": 32}),
                   tokenizer=tokenizer).save_pretrained(folder)
    return folder


def test_zero_shot_guesses_become_label_studio_pre_annotations(checkpoint: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    (tmp_path / "pool").mkdir()
    Image.fromarray(rng.integers(0, 255, (60, 90, 3), dtype=np.uint8)).save(tmp_path / "pool/frame.png")
    detector = ZeroShotDetector.load(checkpoint, CLASSES)
    guesses = detector.guesses(tmp_path / "pool/frame.png", threshold=0.0)
    assert guesses, "a threshold of 0 keeps every query's box"
    assert [g.score for g in guesses] == sorted((g.score for g in guesses), reverse=True)
    for guess in guesses:
        assert guess.label in CLASSES
        x1, y1, x2, y2 = guess.box
        assert 0 <= x1 < x2 <= 90
        assert 0 <= y1 < y2 <= 60
    queued = task("/data/local-files/?d=pool/frame.png", {"path": "pool/frame.png"},
                  [prediction(guesses, 90, 60, "owlv2")])
    for result in queued["predictions"][0]["result"]:
        value = result["value"]
        assert result["type"] == "rectanglelabels"
        assert 0 <= value["x"] <= value["x"] + value["width"] <= 100 + 1e-6
        assert 0 <= value["y"] <= value["y"] + value["height"] <= 100 + 1e-6
    (tmp_path / "export.json").write_text(json.dumps([{"id": 1, **queued}]))
    source = LabelStudioSource(kind="labelstudio", path="export.json", accept_predictions=True)
    [back] = iter_box_source(source, tmp_path, RepoFiles(tmp_path.resolve(), PixelLimits()), SourceStats(),
                             SourceProblems())
    assert [b.label for b in back.boxes] == [g.label for g in guesses]
    restored = [b.in_pixels(90, 60) for b in back.boxes]
    assert np.allclose(restored, [g.box for g in guesses], atol=1e-3)
    assert back.provenance.confirmed == "false"
    assert back.provenance.annotator == "model:owlv2"


def test_a_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ZeroShotUnavailable, match=r"does not exist.*nothing is downloaded"):
        ZeroShotDetector.load(tmp_path / "owlv2", CLASSES)
    (tmp_path / "half").mkdir()
    (tmp_path / "half/config.json").write_text("{}")
    with pytest.raises(ZeroShotUnavailable, match=r"preprocessor_config\.json or processor_config\.json"):
        ZeroShotDetector.load(tmp_path / "half", CLASSES)
