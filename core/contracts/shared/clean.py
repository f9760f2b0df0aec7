"""The clean stage's contract: every task runs it as it is (it sees images, not labels)."""

from __future__ import annotations

from core.contract import PlotInfo, StageInfo

CONTRACT = StageInfo(
    name="clean",
    summary="Remove near-duplicates (faiss over embeddings) and flag dark, blurry or empty images",
    params=("data.cleaning.near_duplicate_cosine", "data.cleaning.remove_flagged", "data.quality.max_removed_fraction",
            "data.quality.max_conflicting_duplicates"),
    inputs={"images": "ingest.images", "manifest": "ingest.manifest", "embeddings": "embed.embeddings"},
    outs={"cleaned": "data/{project}/clean"},
    files={"manifest": "data/{project}/clean/manifest.csv", "rule": "data/{project}/clean/duplicate_rule.json"},
    reports={"report": "reports/{project}/clean/report.json",
             "similarity_png": "reports/{project}/clean/similarity.png"},
    metrics={"summary": "reports/{project}/clean/summary.json"},
    plots=(PlotInfo("similarity", "reports/{project}/clean/similarity.csv", x="share",
                    y=("nearest_neighbour", "copy_reencoded", "copy_resized", "copy_cropped", "threshold"),
                    title="What a duplicate is here: similarity of altered copies vs nearest other image"),),
)
