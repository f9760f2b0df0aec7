"""Shared fixtures: a throw-away repository with the project's code and a spec or two."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cli.main import main as autodl

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_SCHEMA_PROBE = "kserve-inferenceservices-crd.yaml"
GOLDEN = Path(__file__).parent / "golden"

MINIMAL_SPEC = """\
name: {name}
classes: ["0", "1", "2"]
data:
  sources:
    - kind: sklearn_digits
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An empty project repository: just a specs/ folder."""
    (tmp_path / "specs").mkdir()
    return tmp_path


@pytest.fixture
def write_spec(repo: Path) -> Callable[[str, str], Path]:
    def write(name: str, text: str) -> Path:
        path = repo / "specs" / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def run_autodl(repo: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run the real CLI in-process against `repo`; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = autodl(["--root", str(repo), *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.email=ci@autodl.test", "-c", "user.name=autodl-ci", *args],
                          cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout


TINY_CLASSES = ["0", "1", "7"]


@pytest.fixture(scope="session")
def tiny_digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 real digits of three classes, ingested and split: `ingest/` and `split.csv` under the returned root."""
    from dataclasses import asdict

    from core.fsutil import write_csv
    from core.spec.data import SklearnDigitsSource, Split
    from stages.ingest import MANIFEST_FIELDS, ingest
    from stages.split import assign_splits
    from vision.data.sources import iter_source

    root = tmp_path_factory.mktemp("digits")
    items = [i for i in iter_source(SklearnDigitsSource(kind="sklearn_digits", max_images_per_class=40), root)
             if i.label in TINY_CLASSES]
    result = ingest(items, TINY_CLASSES, (8, 8), root / "ingest")
    write_csv(root / "ingest/manifest.csv", [asdict(r) for r in result.records], MANIFEST_FIELDS)
    assignment = assign_splits([r.label for r in result.records], Split(), seed=0)
    lines = ["path,label,split"] + [f"{r.path},{r.label},{s}" for r, s in zip(result.records, assignment,
                                                                               strict=True)]
    (root / "split.csv").write_text("\n".join(lines) + "\n")
    return root


def tiny_split_data(root: Path, size_px: int, names: tuple[str, ...] = ("train", "val", "test")) -> tuple:
    """The `tiny_digits` splits named, loaded at `size_px`: what the vision and stage tests train on."""
    from vision.data.dataset import load_split

    return tuple(load_split(root / "ingest", root / "split.csv", name, TINY_CLASSES, size_px) for name in names)


def tiny_resnet(train, val, size_px: int, epochs: int):
    """A ResNet-10t trained on the tiny digits (seed 0, batch 16): the model the compression and
    dependability tests start from."""
    from core.spec.training import TrainSection
    from vision.training.fit import fit
    from vision.training.model import ModelConfig, build_model

    model = build_model(ModelConfig("resnet10t", TINY_CLASSES, size_px))
    return fit(model, train, val, TrainSection(epochs=epochs, batch_size=16), seed=0, progress=False).model


def shared_schemas() -> Path:
    """The reference schemas from other projects: $AUTODL_SHARED_SCHEMAS, else ../shared/schemas beside the
    repository. Missing is a failure in CI and a skip, saying where to put them, elsewhere."""
    import os

    folder = Path(os.environ.get("AUTODL_SHARED_SCHEMAS", REPO_ROOT.parent / "shared" / "schemas"))
    if not (folder / SHARED_SCHEMA_PROBE).is_file():
        message = (f"the reference schemas (KServe, Argo CD CRDs, Open Inference Protocol) are not at {folder}: "
                   "put the shared/ folder beside the repository or set AUTODL_SHARED_SCHEMAS")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return folder


def free_port() -> int:
    """A TCP port on loopback nobody listens on right now, for a server a test starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible server (moto's server mode) on loopback: the storage a cluster would use."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new empty bucket on the loopback S3 server, with the environment every S3 client reads pointed at it."""
    import uuid

    import boto3

    for name, value in {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "autodl-test",
                        "AWS_SECRET_ACCESS_KEY": "autodl-test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    bucket = f"autodl-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return bucket


TINY_TRAIN_SPEC = """\
name: tiny
seed: 0
classes: ["0", "1", "7"]
data:
  sources:
    - kind: sklearn_digits
{model}augment: {{}}  # no augmentation: training and search, not robustness, are tested with it
train:
  epochs: {epochs}
  batch_size: 16
{extra}"""


TINY_MODEL = "model:\n  backbone: resnet10t\n  input_size_px: 16\n"


def train_stage_repo(root: Path, tiny_digits: Path, epochs: int = 6, extra: str = "", model: str = TINY_MODEL
                     ) -> Path:
    """A repository where project `tiny`'s train stage can run: its spec compiled and its inputs (120 real
    digits, ingested and split) where dvc.yaml says the stage reads them. `model`: the spec's model section
    ("" for `model: auto`)."""
    (root / "specs").mkdir(parents=True)
    (root / "specs" / "tiny.yaml").write_text(TINY_TRAIN_SPEC.format(epochs=epochs, extra=extra, model=model))
    assert autodl(["--root", str(root), "compile"]) == 0
    shutil.copytree(tiny_digits / "ingest", root / "data/tiny/ingest")
    (root / "data/tiny/prune").mkdir(parents=True)
    shutil.copyfile(tiny_digits / "split.csv", root / "data/tiny/prune/split.csv")
    return root


def _postgres_binaries() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return candidates[-1].parent if candidates else None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server on loopback for the test session (Debian's postgresql package, which `make
    test` installs when it is missing); yields an SQLAlchemy URL with trust authentication."""
    import os

    binaries = _postgres_binaries()
    if binaries is None:
        message = "PostgreSQL is not installed (Debian: apt-get install postgresql; `make test` does it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="autodl-postgres-"))  # under /tmp: reachable by the server's account
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: use the package's own account
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    data = folder / "data"
    subprocess.run([*as_user, str(binaries / "initdb"), "-D", str(data), "--auth=trust", "-U", "autodl",
                    "--no-sync"], check=True, capture_output=True)
    options = f"-h 127.0.0.1 -p {port} -k {folder} -F"
    subprocess.run([*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                    str(folder / "server.log"), "-w", "start"], check=True, capture_output=True)
    yield f"postgresql+psycopg2://autodl@127.0.0.1:{port}/postgres"
    subprocess.run([*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
                   check=False, capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


SCREENSHOTS: list[Path] = []


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the browser tests leave their screenshots: $AUTODL_SCREENSHOT_DIR (CI uploads it) or a fresh
    temporary folder; the run's summary names it."""
    import os

    folder = Path(os.environ.get("AUTODL_SCREENSHOT_DIR") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    SCREENSHOTS.append(folder)
    return folder


@pytest.fixture
def offline_browser(screenshot_dir: Path) -> Iterator[object]:
    """A real headless Chromium with networking off (tests/browser.py), one per test: Playwright's sync API
    holds an asyncio loop open in this thread while it runs, which other tests' `asyncio.run` would refuse."""
    import os

    from tests.browser import OfflineBrowser, chromium_missing

    if (message := chromium_missing()) is not None:
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    browser = OfflineBrowser(screenshot_dir)
    yield browser
    browser.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for folder in SCREENSHOTS:
        shots = sorted(folder.glob("*.png"))
        if shots:
            terminalreporter.write_line(f"browser screenshots ({len(shots)}): {folder}")
