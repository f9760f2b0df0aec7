"""synthesize: build the embedded detection data set (vision.detection.demo) as COCO, before ingest reads it
through the spec's `coco` source like any user's data."""

from __future__ import annotations

from core.fsutil import atomic_directory
from core.spec.data import DigitsOnPhotos
from stages.runtime import StageContext, StageFailure, run_stage
from vision.detection.demo import write_dataset


def main(ctx: StageContext) -> None:
    settings: DigitsOnPhotos = ctx.spec("data.synthesize")
    with atomic_directory(ctx.output("dataset")) as out:
        try:
            boxes = write_dataset(settings, ctx.spec("seed"), out, ctx.spec("classes"))
        except ValueError as exc:
            raise StageFailure(str(exc)) from None
    pool = f", {settings.pool_images} unlabelled pool images in pool/" if settings.pool_images else ""
    print(f"synthesize: {settings.images} images with {boxes} digit boxes ({settings.kind}){pool} in "
          f"{ctx.output('dataset')}")


if __name__ == "__main__":
    from core.contracts.detection.synthesize import CONTRACT

    run_stage(CONTRACT, main)
