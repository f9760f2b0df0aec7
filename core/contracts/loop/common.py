"""What every task's loop stages read and write: the loop's settings and the round's files."""

from __future__ import annotations

LOOP_PARAMS = ("seed", "classes", "active_learning", "data.embedding", "data.cleaning.static_frame_flow_px",
               "data.quality.min_size_px", "data.quality.max_image_pixels")
"""What every task's select stage reads: the loop's settings, and what pool images must pass as ingest does."""
LOOP_REPORTS = {"queue_png": "reports/{project}/select/queue.png"}
LOOP_FILES = {"tasks": "data/{project}/select/labelstudio_tasks.json", "scores": "data/{project}/select/scores.csv",
              "auto_labels": "data/{project}/select/auto_labels.json", "pool": "data/{project}/select/pool.csv"}
SELECT_INPUTS = {"images": "ingest.images", "manifest": "ingest.manifest", "embeddings": "embed.embeddings",
                 "duplicate_rule": "clean.rule", "deployable": "export.deployable",
                 "serving_state": "dependability.serving_state", "model": "train.model"}
SELECT_SUMMARY = ("Score the unlabelled pool with the deployable model and pick the round's label queue (uncertainty "
                  "and diversity): Label Studio tasks with pre-annotations, COCO/YOLO for CVAT, auto-labels apart")
ENSEMBLE_SUMMARY = ("Train the data loop's ensemble: members like the trained model (its searched settings included) "
                    "with seeds seed+1, seed+2, ...")


def ensemble_params(train_params: tuple[str, ...]) -> tuple[str, ...]:
    """An ensemble member is trained as the model was: the train stage's params and the ensemble's size."""
    return tuple(dict.fromkeys((*train_params, "active_learning.ensemble")))
