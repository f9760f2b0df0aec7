"""A real Label Studio on loopback for the loop's round-trip tests: its own sqlite data folder, local-files serving
rooted at the test's repository, a known legacy API token. `make test` installs it in `.venv-labelstudio` (it pins
Django and friends that the pipeline's environment must not share); AUTODL_LABEL_STUDIO names another binary."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
VERSION = "1.23.2"
TOKEN = "autodl-test-token-0123456789"
USER = "annotator@example.com"


def binary() -> Path:
    return Path(os.environ.get("AUTODL_LABEL_STUDIO", REPO_ROOT / ".venv-labelstudio" / "bin" / "label-studio"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LabelStudio:
    """Label Studio's REST API as the README's steps use it."""

    url: str

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = requests.request(method, self.url + path, headers={"Authorization": f"Token {TOKEN}"},
                                    timeout=60, **kwargs)
        assert response.status_code < 400, f"{method} {path}: {response.status_code} {response.text[:500]}"
        return response.json() if response.content and "json" in response.headers.get("content-type", "") else (
            response.content)

    def project(self, title: str, label_config: str) -> int:
        return int(self.call("POST", "/api/projects/", json={"title": title, "label_config": label_config})["id"])

    def tasks(self, project: int) -> list[dict[str, Any]]:
        found = self.call("GET", f"/api/tasks/?project={project}&page_size=1000")
        return found["tasks"] if isinstance(found, dict) else found

    def export(self, project: int, export_type: str = "JSON", all_tasks: bool = False) -> Any:
        suffix = "&download_all_tasks=true" if all_tasks else ""
        return self.call("GET", f"/api/projects/{project}/export?exportType={export_type}{suffix}")

    def snapshot_with_details(self, project: int) -> Any:
        """A snapshot export naming each annotator (email) and keeping the predictions as objects."""
        made = self.call("POST", f"/api/projects/{project}/exports/", json={
            "title": "round", "serialization_options": {"annotations__completed_by": {"only_id": False},
                                                        "predictions": {"only_id": False}}})
        return self.call("GET", f"/api/projects/{project}/exports/{made['id']}/download?exportType=JSON")


@contextmanager
def label_studio(document_root: Path, data_dir: Path, timeout_s: float = 240.0) -> Iterator[LabelStudio]:
    """Start Label Studio, wait until its API answers, stop it afterwards."""
    port = _free_port()
    env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
           "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
           "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(document_root),
           # the legacy token below authenticates API calls (1.23 otherwise wants JWT personal access tokens)
           "fflag__feature_develop__prompts__dia_1829_jwt_token_auth": "false",
           "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "", "COLLECT_ANALYTICS": "false"}
    log = (data_dir / "label-studio.log").open("w")
    process = subprocess.Popen([str(binary()), "start", "--no-browser", "--host", "127.0.0.1", "--port", str(port),
                                "--internal-host", "127.0.0.1", "--username", USER, "--password", "not-a-secret-1",
                                "--user-token", TOKEN], env=env, stdout=log, stderr=subprocess.STDOUT)
    server = LabelStudio(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            assert process.poll() is None, f"label-studio exited: {(data_dir / 'label-studio.log').read_text()[-2000:]}"
            try:
                server.call("GET", "/api/projects/")
                break
            except (requests.ConnectionError, AssertionError):
                assert time.monotonic() < deadline, "label-studio did not answer in time"
                time.sleep(1.0)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
