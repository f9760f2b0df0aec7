"""`autodl compile` and `autodl compile --check` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
from ruamel.yaml import YAML

from tests.conftest import MINIMAL_SPEC, REPO_ROOT


def test_compile_writes_every_generated_file_and_is_idempotent(repo: Path, write_spec, run_autodl) -> None:
    write_spec("alpha", MINIMAL_SPEC.format(name="alpha"))
    code, out, _ = run_autodl("compile")
    assert code == 0
    generated = (".dvc/offline-plots.html", "data/.gitignore", "docs/spec-reference.md", "dvc.yaml",
                 "k8s/alpha/base/kustomization.yaml",
                 "k8s/alpha/base/serviceaccount.yaml", "k8s/alpha/base/servingruntime.yaml",
                 "k8s/alpha/overlays/production/kustomization.yaml", "k8s/alpha/overlays/staging/kustomization.yaml",
                 "k8s/alpha/pipeline/train-pytorchjob.yaml", "k8s/alpha/pipeline/workflow.yaml",
                 "models/.gitignore", "params.yaml", "reports/.gitignore", "schemas/project-spec.schema.json")
    assert out.strip() == f"autodl: wrote {', '.join(generated)}"
    first = {p: (repo / p).read_bytes() for p in generated}
    code, out, _ = run_autodl("compile")
    assert code == 0
    assert out.strip() == "autodl: generated files are up to date"
    assert {p: (repo / p).read_bytes() for p in first} == first
    assert not list(repo.rglob("*.tmp")), "temporary files left behind"


def test_git_ignores_every_output_dvc_caches_whatever_dvc_writes(repo: Path, write_spec, run_autodl) -> None:
    """The ignore rules come from the IR, not from DVC's per-run edits (which a failed repro rolls back)."""
    write_spec("alpha", MINIMAL_SPEC.format(name="alpha"))
    assert run_autodl("compile")[0] == 0
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    dvc_yaml = YAML(typ="safe").load((repo / "dvc.yaml").read_text())
    cached = [out if isinstance(out, str) else next(iter(out)) for stage in dvc_yaml["stages"].values()
              for out in stage.get("outs", []) if isinstance(out, str) or next(iter(out.values())).get("cache", True)]
    assert len(cached) >= 10
    for output in cached:
        (repo / output).mkdir(parents=True, exist_ok=True)
        (repo / output / "file.bin").write_bytes(b"x")
    (repo / "reports/alpha/gate").mkdir(parents=True)
    (repo / "reports/alpha/gate/verdict.json").write_text("{}")
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=repo, check=True,
                            capture_output=True, text=True).stdout
    assert not [line for line in status.splitlines() if line[3:].startswith(("data/alpha", "models/alpha"))], status
    assert "reports/alpha/validate/data_docs/file.bin" not in status
    assert "reports/alpha/gate/verdict.json" in status  # metrics and reports stay in git, for pull requests
    assert "reports/.gitignore" in status  # the rules themselves are committed


def test_check_fails_with_a_diff_on_drift_and_passes_when_current(repo: Path, write_spec, run_autodl) -> None:
    spec = write_spec("alpha", MINIMAL_SPEC.format(name="alpha"))
    code, out, err = run_autodl("compile", "--check")
    assert code == 1
    assert "--- /dev/null" in out
    assert "+++ params.yaml (from specs)" in out
    assert "out of date" in err
    assert not (repo / "params.yaml").exists(), "--check must not write"

    run_autodl("compile")
    assert run_autodl("compile", "--check")[0] == 0

    spec.write_text(spec.read_text() + "train: {epochs: 3}\n")
    code, out, err = run_autodl("compile", "--check")
    assert code == 1
    assert "-    epochs: 15" in out
    assert "+    epochs: 3" in out
    assert "params.yaml" in err
    assert "dvc.yaml" not in err  # only the file that really changed is reported


def test_hand_edit_of_a_generated_file_is_caught(repo: Path, write_spec, run_autodl) -> None:
    write_spec("alpha", MINIMAL_SPEC.format(name="alpha"))
    run_autodl("compile")
    dvc_yaml = repo / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text().replace("python -m stages.train", "python -m stages.train --fast"))
    code, out, _ = run_autodl("compile", "--check")
    assert code == 1
    assert "+    cmd: python -m stages.train --project alpha" in out


def test_repository_generated_files_are_current() -> None:
    """The committed params.yaml/dvc.yaml/schema match specs/ (what the PR workflow enforces)."""
    done = subprocess.run([sys.executable, "-m", "cli.main", "compile", "--check"], cwd=REPO_ROOT,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_schema_validates_the_default_spec_and_rejects_unknown_keys() -> None:
    schema = json.loads((REPO_ROOT / "schemas/project-spec.schema.json").read_text())
    spec = YAML(typ="safe").load((REPO_ROOT / "specs/digits.yaml").read_text())
    jsonschema.Draft202012Validator(schema).validate(spec)
    spec["train"]["epocs"] = 3
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(spec))
    assert any("epocs" in e.message for e in errors)


def test_compiler_imports_no_ml_framework(repo: Path, write_spec) -> None:
    """Compiling must stay fast enough for every pull request: no torch, lightning, timm or DVC."""
    write_spec("alpha", MINIMAL_SPEC.format(name="alpha"))
    probe = ("import sys; from cli.main import main; code = main(['--root', sys.argv[1], 'compile']); "
             "heavy = {'torch', 'lightning', 'timm', 'dvc', 'sklearn', 'numpy'} & set(sys.modules); "
             "print(sorted(heavy)); raise SystemExit(code)")
    done = subprocess.run([sys.executable, "-c", probe, str(repo)], capture_output=True, text=True, check=False,
                          cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
