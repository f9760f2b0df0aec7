"""`python -m serving --model_name <p> --model_dir <folder> [--model_dir <folder>] [--http_port 8080]`.

What the predictor image runs (KServe mounts the promoted bundle at
/mnt/models) and what `autodl serve` starts on localhost.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

MAX_BODY_MB = 8


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m serving", description=__doc__.splitlines()[0])
    parser.add_argument("--model_name", required=True)
    parser.add_argument("--model_dir", action="append", type=Path, required=True,
                        help="folder with model.onnx, preprocess.json and serving.json (repeat to search several)")
    parser.add_argument("--http_port", type=int, default=8080)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    parser.add_argument("--max_body_mb", type=float, default=MAX_BODY_MB)
    args, _ = parser.parse_known_args(argv)

    import kserve
    from kserve.model_server import app

    from serving.artifact import Artifact
    from serving.middleware import BodySizeLimit, VersionedPaths
    from serving.model import VisionModel

    abstain = os.environ.get("AUTODL_ABSTAIN_ON_OOD", "true").lower() != "false"
    artifact = Artifact.load(args.model_dir, threads=args.threads, abstain_on_ood=abstain)
    app.add_middleware(VersionedPaths, versions={args.model_name: artifact.version})
    app.add_middleware(BodySizeLimit, max_bytes=int(args.max_body_mb * 1024 * 1024))
    kserve.ModelServer(http_port=args.http_port, enable_grpc=False, workers=1).start(
        [VisionModel(args.model_name, artifact)])


if __name__ == "__main__":
    main()
