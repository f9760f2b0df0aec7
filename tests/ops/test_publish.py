"""`autodl publish`: the promoted bundle lands, byte for byte, at the storageUri its InferenceService names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from ruamel.yaml import YAML

from core.content import digest_of, tree_digest
from tests.conftest import REPO_ROOT
from tests.stages.test_promote import _outputs as write_stage_outputs
from tests.stages.test_promote import _promote as run_promote


def _promoted(root: Path, storage_uri: str) -> str:
    """Promote project `tiny` with the given serving.storage_uri; returns the storageUri it now serves from."""
    write_stage_outputs(root, passed=True, ood_state=b"\x93NUMPY fitted state")
    with (root / "params.yaml").open("w") as handle:
        YAML(typ="safe", pure=True).dump({"tiny": {"serving": {"storage_uri": storage_uri}}}, handle)
    run_promote(root)
    return YAML(typ="safe").load((root / "k8s/tiny/promoted.yaml").read_text())["storage_uri"]


def _publish(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", "--root", str(root), "publish", *args],
                          cwd=REPO_ROOT, capture_output=True, text=True, check=False)


def _objects(bucket: str, prefix: str) -> dict[str, bytes]:
    s3 = boto3.client("s3")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"][len(prefix) + 1:]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def test_the_bundle_is_published_to_its_content_address_once(tmp_path: Path, s3_bucket: str) -> None:
    uri = _promoted(tmp_path, f"s3://{s3_bucket}/autodl")
    prefix = uri.removeprefix(f"s3://{s3_bucket}/")
    service = YAML(typ="safe").load((tmp_path / "k8s/tiny/base/inferenceservice.yaml").read_text())
    assert service["spec"]["predictor"]["model"]["storageUri"] == uri

    done = _publish(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "uploaded 4 file(s)" in done.stdout
    stored = _objects(s3_bucket, prefix)
    assert sorted(stored) == ["model.onnx", "ood_state/mean.npy", "preprocess.json", "serving.json"]
    # What KServe's storage initializer downloads is exactly the promoted bundle: same content address.
    assert f"sha256-{digest_of(stored.items())}" == uri.rsplit("/", 1)[1]
    assert digest_of(stored.items()) == tree_digest(tmp_path / "models/tiny/release")

    again = _publish(tmp_path)  # a rerun (a retried merge job) reads, compares and uploads nothing
    assert again.returncode == 0, again.stderr
    assert "uploaded 0 file(s); 4 already there" in again.stdout


def test_a_different_file_at_the_address_is_refused_not_overwritten(tmp_path: Path, s3_bucket: str) -> None:
    uri = _promoted(tmp_path, f"s3://{s3_bucket}/autodl")
    key = f"{uri.removeprefix(f's3://{s3_bucket}/')}/model.onnx"
    boto3.client("s3").put_object(Bucket=s3_bucket, Key=key, Body=b"someone else's model")
    done = _publish(tmp_path)
    assert done.returncode == 1
    assert "model.onnx exists with different bytes" in done.stderr
    assert "Traceback" not in done.stderr
    assert boto3.client("s3").get_object(Bucket=s3_bucket, Key=key)["Body"].read() == b"someone else's model"


def test_a_bundle_that_is_not_the_merged_one_is_not_published(tmp_path: Path, s3_bucket: str) -> None:
    _promoted(tmp_path, f"s3://{s3_bucket}/autodl")
    (tmp_path / "models/tiny/release/model.onnx").write_bytes(b"a model from another run")
    done = _publish(tmp_path)
    assert done.returncode == 1
    assert "but k8s/tiny/promoted.yaml names" in done.stderr
    assert "dvc checkout" in done.stderr
    assert _objects(s3_bucket, "autodl") == {}  # nothing sent


def test_dry_run_lists_without_uploading(tmp_path: Path, s3_bucket: str) -> None:
    _promoted(tmp_path, f"s3://{s3_bucket}/autodl")
    done = _publish(tmp_path, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "would upload 4 file(s)" in done.stdout
    assert _objects(s3_bucket, "autodl") == {}


def test_a_local_storage_uri_gets_a_plain_folder(tmp_path: Path) -> None:
    """A record whose address is a mounted folder (the spec accepts only URLs; fsspec writes either)."""
    repo, store = tmp_path / "repo", tmp_path / "store"
    repo.mkdir()
    record = repo / "k8s/tiny/promoted.yaml"
    address = _promoted(repo, "s3://models/autodl")
    uri = str(store / address.rsplit("/", 1)[1])
    record.write_text(record.read_text().replace(address, uri))
    done = _publish(repo)
    assert done.returncode == 0, done.stderr
    assert tree_digest(Path(uri)) == tree_digest(repo / "models/tiny/release")


@pytest.mark.parametrize("promoted", [False, True])
def test_nothing_promoted_is_nothing_to_publish_unless_asked_for(repo: Path, promoted: bool) -> None:
    write_stage_outputs(repo, passed=True)
    if promoted:
        run_promote(repo)
        (repo / "models/tiny/release").rename(repo / "models/tiny/elsewhere")
    done = _publish(repo)
    if promoted:
        assert done.returncode == 1
        assert "models/tiny/release is missing: run `dvc pull`" in done.stderr
    else:
        assert done.returncode == 0, done.stderr
        assert "nothing to publish" in done.stdout
        assert _publish(repo, "specs/tiny.yaml").returncode == 1  # asked for by name: an error
