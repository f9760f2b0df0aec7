"""Model server overhead: KServe over HTTP on loopback against a bare ONNX Runtime loop, side by side.

Serves the default spec's deployable model (run `make demo` first) with the real
server, then for a bounded time: (1) a bare loop on this process that decodes,
preprocesses, runs the same artifact and scores OOD on one image at a time; (2) N
concurrent keep-alive HTTP clients sending one encoded image per V2 request, for each server worker
count. Prints p50/p99 latency and throughput of all, side by side, and the targets: p99 <= bare p99 + 5 ms
and throughput >= 70% of bare. For a detection spec (specs/digits-on-photos.yaml) both sides include decoding,
NMS and mapping the boxes back to the image's pixels.
Usage: python benchmarks/serving.py [--spec specs/digits.yaml] [--clients 1 4] [--workers 1 2] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import time
from pathlib import Path

from _digits import REPO
from _servers import model_server


def _percentile(values: list[float], q: float) -> float:
    """The q-quantile (0 < q < 1) by statistics' inclusive method."""
    if len(values) < 2:
        return values[0]
    return float(statistics.quantiles(values, n=100, method="inclusive")[round(100 * q) - 1])


def bare_loop(artifact, images: list[bytes], seconds: float) -> list[float]:
    latencies, started, i = [], time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        begin = time.perf_counter()
        image, size = artifact.decode(images[i % len(images)])
        tensor = artifact.normalise(image[None])
        if artifact.detection is not None:  # a detector: decoding, NMS and box mapping are part of the answer
            artifact.detect(tensor, [size])
        else:
            artifact.predict(tensor)
        latencies.append((time.perf_counter() - begin) * 1000)
        i += 1
    return latencies


async def http_floor(url: str, clients: int, seconds: float) -> list[float]:
    """The same clients and server answering `GET /v2/health/live`: what HTTP alone costs per request, the floor
    under any inference request."""
    import aiohttp

    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < deadline:
            begin = time.perf_counter()
            async with session.get(f"{url}/v2/health/live") as response:
                response.raise_for_status()
                await response.read()
            latencies.append((time.perf_counter() - begin) * 1000)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return latencies


async def http_clients(url: str, name: str, images: list[bytes], clients: int, seconds: float) -> list[float]:
    """N keep-alive clients, each sending its next request when the last answer arrives. aiohttp rather than
    httpx: its client costs about a millisecond less per request, which otherwise counts as server latency."""
    import aiohttp

    bodies = [json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                      "data": [base64.b64encode(image).decode()]}]}).encode() for image in images]
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    headers = {"Content-Type": "application/json"}

    async def client(session: aiohttp.ClientSession, offset: int) -> None:
        i = offset
        while time.perf_counter() < deadline:
            begin = time.perf_counter()
            async with session.post(f"{url}/v2/models/{name}/infer", data=bodies[i % len(bodies)],
                                    headers=headers) as response:
                response.raise_for_status()
                await response.read()
            latencies.append((time.perf_counter() - begin) * 1000)
            i += clients

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        await asyncio.gather(*(client(session, k) for k in range(clients)))
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=REPO / "specs" / "digits.yaml")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="server processes to measure (each a full copy of the model)")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()

    from cli.main import model_folders
    from compiler.load import load_spec
    from runtime.artifact import Artifact

    name = load_spec(args.spec, REPO).spec.name
    folders = model_folders(REPO, name)
    if not all(f.is_dir() for f in folders):
        raise SystemExit(f"{folders} missing: run `make demo` first")
    images = [p.read_bytes() for p in sorted((REPO / "data" / name / "ingest" / "images").rglob("*.png"))[:200]]
    artifact = Artifact.load(folders, threads=1)
    bare = bare_loop(artifact, images, args.seconds)
    rows = [("bare ONNX Runtime loop, 1 thread", bare)]
    for workers in args.workers:
        with model_server(name, folders, workers) as url:
            asyncio.run(http_clients(url, name, images, max(args.clients), 2.0))  # warm-up
            rows += [(f"server, {workers} worker(s), {clients} client(s)",
                      asyncio.run(http_clients(url, name, images, clients, args.seconds))) for clients in args.clients]
            if workers == args.workers[0]:
                rows.append((f"HTTP alone (GET live), {workers} worker(s)",
                             asyncio.run(http_floor(url, 1, args.seconds / 2))))
    _print_table(name, "x".join(map(str, artifact.input_hw()[::-1])), args.seconds, rows)


def _print_table(name: str, input_size: str, seconds: float, rows: list[tuple[str, list[float]]]) -> None:
    bare = rows[0][1]
    print(f"{name}: one encoded image per request (model input {input_size} px), {seconds:.0f} s each, server and "
          "clients on this machine; targets: p99 <= bare p99 + 5 ms, throughput >= 70% of bare")
    print(f"{'':<38} {'requests':>9} {'per s':>8} {'p50 ms':>8} {'p99 ms':>8}  {'p99 gap':>16}  {'throughput':>15}")
    for label, values in rows:
        duration = seconds / 2 if label.startswith("HTTP alone") else seconds
        line = (f"{label:<38} {len(values):>9} {len(values) / duration:>8.1f} {statistics.median(values):>8.2f} "
                f"{_percentile(values, 0.99):>8.2f}")
        if values is not bare and not label.startswith("HTTP alone"):
            gap, ratio = _percentile(values, 0.99) - _percentile(bare, 0.99), len(values) / len(bare)
            line += (f"  {gap:>+8.2f} ms {'met' if gap <= 5 else 'MISSED':>6}  {100 * ratio:>6.0f}% "
                     f"{'met' if ratio >= 0.7 else 'MISSED':>7}")
        print(line)


if __name__ == "__main__":
    main()
