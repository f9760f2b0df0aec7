"""`python -m serving --model_name <p> --model_dir <folder> [--model_dir <folder>] [--host H] [--http_port P]`.

What the predictor image runs (KServe mounts the promoted bundle at /mnt/models; the
ServingRuntime passes --host 0.0.0.0) and what `autodl serve` starts on 127.0.0.1.
"""

from __future__ import annotations

import os

# One BLAS thread per process, set before numpy loads: a request's matrix products are small, and a BLAS
# thread pool only competes with the event loop and ONNX Runtime for the same cores.
for _variable in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

from runtime.images import DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIDE_PX  # noqa: E402

MAX_BODY_MB = 8


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m serving", description=__doc__.splitlines()[0])
    parser.add_argument("--model_name", required=True)
    parser.add_argument("--model_dir", action="append", type=Path, required=True,
                        help="folder with model.onnx, preprocess.json and serving.json (repeat to search several)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--http_port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("AUTODL_SERVER_WORKERS", "1")),
                        help="server processes, each with its own copy of the model")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")),
                        help="ONNX Runtime threads per inference")
    parser.add_argument("--inference_threads", type=int, default=1,
                        help="requests decoded and inferred at once per process, off the event loop")
    parser.add_argument("--max_body_mb", type=float, default=MAX_BODY_MB)
    parser.add_argument("--max_image_pixels", type=int, default=DEFAULT_MAX_PIXELS)
    parser.add_argument("--max_image_side_px", type=int, default=DEFAULT_MAX_SIDE_PX)
    parser.add_argument("--capture", default=None,
                        help="the spec's serving.capture as JSON: keep abstained and low-margin requests (opt-in)")
    return parser.parse_known_args(argv)[0]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import uvicorn

    from serving.app import CONFIG_ENV, ServingConfig

    config = ServingConfig(
        model_name=args.model_name, model_dirs=tuple(str(d.resolve()) for d in args.model_dir), host=args.host,
        port=args.http_port, workers=args.workers, threads=args.threads, inference_threads=args.inference_threads,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024), max_image_pixels=args.max_image_pixels,
        max_image_side_px=args.max_image_side_px, capture=args.capture,
        abstain_on_ood=os.environ.get("AUTODL_ABSTAIN_ON_OOD", "true").lower() != "false")
    os.environ[CONFIG_ENV] = config.to_env()  # every worker process builds its app from it
    uvicorn.run("serving.app:create_app", factory=True, host=config.host, port=config.port, workers=config.workers,
                log_config=None, timeout_keep_alive=65, access_log=False)


if __name__ == "__main__":
    main()
