"""The embed stage's contract: every task runs it as it is (it sees images, not labels)."""

from __future__ import annotations

from core.contract import StageInfo

CONTRACT = StageInfo(
    name="embed",
    summary="Embed every ingested image with an offline pretrained backbone (cached for clean and prune)",
    params=("data.embedding",),
    inputs={"images": "ingest.images", "manifest": "ingest.manifest", "quality": "validate.summary"},
    outs={"embeddings": "data/{project}/embed"},
)
