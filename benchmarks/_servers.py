"""The real model server started for a benchmark: `python -m serving` on a free loopback port, stopped after."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from _digits import REPO


@contextmanager
def model_server(name: str, folders: list[Path], workers: int) -> Iterator[str]:
    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen([sys.executable, "-m", "serving", "--model_name", name, "--http_port", str(port),
                                   "--threads", "1", "--workers", str(workers),
                                   *(a for f in folders for a in ("--model_dir", str(f)))],
                                  cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=30)
