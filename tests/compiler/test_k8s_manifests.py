"""The Kubernetes manifests `autodl compile` writes: valid against the real CRD schemas, restricted, and
wired to what the promote stage recorded."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import jsonpatch
import jsonschema
import kubernetes_validate
import pytest
from ruamel.yaml import YAML

from compiler.compile import read_promoted, render
from compiler.errors import SpecError
from compiler.ir import PromotedModel
from compiler.load import load_spec
from tests.conftest import GOLDEN, shared_schemas

KUBERNETES_VERSION = "1.30"
CRDS = {("serving.kserve.io", "InferenceService"): "kserve-inferenceservices-crd.yaml",
        ("serving.kserve.io", "ServingRuntime"): "kserve-servingruntimes-crd.yaml",
        ("argoproj.io", "Application"): "argocd-application-crd.yaml",
        ("kubeflow.org", "PyTorchJob"): "kubeflow-pytorchjobs-crd.yaml"}
ARGO_SCHEMA = "argo-workflows-jsonschema.json"
MODEL = PromotedModel("s3://models/autodl/full/sha256-0123abcd", "sha256:0123abcd")


@functools.cache
def _crd_schema(folder: Path, file: str, version: str) -> dict[str, Any]:
    crd = YAML(typ="safe", pure=True).load((folder / file).read_text(encoding="utf-8"))
    return next(v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"] if v["name"] == version)


@functools.cache
def _argo_validator(folder: Path) -> jsonschema.protocols.Validator:
    schema = json.loads((folder / ARGO_SCHEMA).read_text(encoding="utf-8"))
    workflow = {"$ref": "#/definitions/io.argoproj.workflow.v1alpha1.Workflow", "definitions": schema["definitions"]}
    return jsonschema.Draft202012Validator(workflow)


def validate(document: dict[str, Any]) -> None:
    """Against the CRD's own openAPIV3Schema for custom kinds, Argo's published JSON schema for Workflows (and
    each manifest its resource templates create), kubernetes-validate for core kinds."""
    group, _, version = document["apiVersion"].rpartition("/")
    if (group, document["kind"]) == ("argoproj.io", "Workflow"):
        _argo_validator(shared_schemas()).validate(document)
        for template in document["spec"]["templates"]:
            if "resource" in template:
                validate(YAML(typ="safe", pure=True).load(template["resource"]["manifest"]))
        return
    file = CRDS.get((group, document["kind"]))
    if file is None:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        return
    jsonschema.Draft7Validator(_crd_schema(shared_schemas(), file, version)).validate(document)


def _manifests(files: dict[str, str]) -> dict[str, dict[str, Any]]:
    yaml = YAML(typ="safe", pure=True)
    return {path: yaml.load(text) for path, text in files.items() if path.startswith("k8s/")}


def _render(case: str, promoted: dict[str, PromotedModel] | None = None) -> dict[str, str]:
    specs = sorted((GOLDEN / case / "specs").glob("*.yaml"))
    return render([load_spec(path, GOLDEN / case) for path in specs], promoted)


@pytest.mark.parametrize("case", ["minimal", "full", "multi-source", "cascade"])
def test_every_object_is_valid_against_the_real_schemas(case: str) -> None:
    shared_schemas()
    manifests = _manifests(_render(case, {"full": MODEL, "digit-pair": MODEL}))
    objects = [doc for path, doc in manifests.items() if doc["kind"] != "Kustomization"]
    assert {doc["kind"] for doc in objects} >= {"ServingRuntime", "ServiceAccount"}
    for document in objects:
        validate(document)


def test_a_promoted_model_is_served_by_content_address_with_the_spec_s_scaling() -> None:
    manifests = _manifests(_render("full", {"full": MODEL}))
    service = manifests["k8s/full/base/inferenceservice.yaml"]
    predictor = service["spec"]["predictor"]
    assert predictor["model"]["storageUri"] == MODEL.storage_uri
    assert service["metadata"]["annotations"]["autodl.dev/model-digest"] == MODEL.digest
    assert predictor["model"]["runtime"] == "full-onnx"
    assert predictor["model"]["modelFormat"] == {"name": "onnx"}
    assert (predictor["minReplicas"], predictor["maxReplicas"], predictor["canaryTrafficPercent"]) == (1, 4, 10)
    assert predictor["nodeSelector"] == {"kubernetes.io/arch": "amd64"}
    assert "inferenceservice.yaml" in manifests["k8s/full/base/kustomization.yaml"]["resources"]
    application = manifests["k8s/argocd/full.yaml"]
    assert application["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert application["spec"]["source"]["path"] == "k8s/full/overlays/production"


def test_staging_takes_new_models_at_once_and_may_scale_to_zero() -> None:
    manifests = _manifests(_render("full", {"full": MODEL}))
    overlay = manifests["k8s/full/overlays/staging/kustomization.yaml"]
    assert overlay["namespace"] == "vision-staging"
    assert manifests["k8s/full/overlays/production/kustomization.yaml"]["namespace"] == "vision"
    (patch,) = overlay["patches"]
    staged = jsonpatch.apply_patch(manifests["k8s/full/base/inferenceservice.yaml"], json.loads(patch["patch"]))
    assert staged["spec"]["predictor"]["minReplicas"] == 0
    assert "canaryTrafficPercent" not in staged["spec"]["predictor"]
    shared_schemas()
    validate(staged)


def test_without_a_promoted_model_nothing_is_served_yet() -> None:
    manifests = _manifests(_render("full"))
    assert "k8s/full/base/inferenceservice.yaml" not in manifests
    assert manifests["k8s/full/base/kustomization.yaml"]["resources"] == ["serviceaccount.yaml",
                                                                          "servingruntime.yaml"]


def test_the_model_server_runs_restricted_and_holds_no_secret() -> None:
    files = _render("full", {"full": MODEL})
    manifests = _manifests(files)
    runtime = manifests["k8s/full/base/servingruntime.yaml"]["spec"]["containers"][0]
    model = manifests["k8s/full/base/inferenceservice.yaml"]["spec"]["predictor"]["model"]
    for context in (runtime["securityContext"], model["securityContext"]):
        assert context["runAsNonRoot"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}
    assert runtime["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert runtime["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert runtime["resources"]["requests"] == runtime["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    assert all(doc["kind"] != "Secret" for doc in manifests.values())
    assert not any(word in text.lower() for text in files.values() for word in ("password", "secretaccesskey",
                                                                                "aws_secret"))


def test_kustomizations_list_only_files_that_exist() -> None:
    files = _render("full", {"full": MODEL})
    manifests = _manifests(files)
    for path, document in manifests.items():
        if document["kind"] == "Kustomization":
            folder = Path(path).parent
            for resource in document["resources"]:
                target = os.path.normpath((folder / resource).as_posix())
                assert target in files or f"{target}/kustomization.yaml" in files, (path, resource)


def test_a_gpu_target_schedules_on_gpu_nodes(tmp_path: Path) -> None:
    text = (GOLDEN / "full" / "specs" / "full.yaml").read_text().replace("hardware: cpu-x86", "hardware: nvidia-t4")
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "full.yaml").write_text(text)
    manifests = _manifests(render([load_spec(tmp_path / "specs" / "full.yaml", tmp_path)], {"full": MODEL}))
    predictor = manifests["k8s/full/base/inferenceservice.yaml"]["spec"]["predictor"]
    assert predictor["model"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert predictor["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    validate(manifests["k8s/full/base/inferenceservice.yaml"])


def test_a_broken_promotion_record_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "k8s" / "digits").mkdir(parents=True)
    (tmp_path / "k8s" / "digits" / "promoted.yaml").write_text("storage_uri: s3://m/digits/x\n")
    with pytest.raises(SpecError, match="digest"):
        read_promoted(tmp_path, "digits")
    assert read_promoted(tmp_path, "other") is None


def test_the_cluster_pipeline_is_the_dvc_graph_with_training_on_a_pytorchjob() -> None:
    from compiler.plan import plan

    loaded = load_spec(GOLDEN / "full" / "specs" / "full.yaml", GOLDEN / "full")
    pipeline = plan(loaded.spec, loaded.path)
    manifests = _manifests(_render("full"))
    workflow = manifests["k8s/full/pipeline/workflow.yaml"]
    tasks = {t["name"]: set(t.get("dependencies", [])) for t in workflow["spec"]["templates"][0]["dag"]["tasks"]}
    expected = {s.name: {u.name for u in pipeline.upstream_of(s)} for s in pipeline.stages}
    expected["hpo"], expected["train"] = set(expected["train"]), expected["train"] | {"hpo"}  # search, then train
    assert tasks == expected
    scripts = {t["name"]: t["container"]["command"][-1] for t in workflow["spec"]["templates"] if "container" in t}
    assert scripts["evaluate"] == "dvc repro --pull --single-item full-evaluate\ndvc push --run-cache full-evaluate\n"

    job = manifests["k8s/full/pipeline/train-pytorchjob.yaml"]
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert (replicas["Master"]["replicas"], replicas["Worker"]["replicas"]) == (1, 3)
    worker = replicas["Worker"]["template"]["spec"]["containers"][0]
    train = next(s for s in pipeline.stages if s.name == "train")
    assert worker["command"][-1].endswith(train.cmd + "\n")  # the dvc.yaml command, input paths included
    hpo = manifests["k8s/full/pipeline/hpo-job.yaml"]
    assert (hpo["spec"]["parallelism"], hpo["spec"]["completionMode"]) == (4, "Indexed")
    (env,) = hpo["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == {"name": "AUTODL_OPTUNA_STORAGE", "valueFrom": {"secretKeyRef": {"name": "full-optuna-db",
                                                                                   "key": "url"}}}


def test_the_argo_schema_check_rejects_a_broken_workflow() -> None:
    shared_schemas()
    workflow = _manifests(_render("full"))["k8s/full/pipeline/workflow.yaml"]
    workflow["spec"]["templates"][1]["container"]["resources"] = "4 cpus"
    with pytest.raises(jsonschema.ValidationError):
        validate(workflow)


def test_capture_reaches_the_server_only_when_the_spec_turns_it_on(tmp_path: Path) -> None:
    """serving.capture is opt-in end to end: the ServingRuntime and `autodl serve` pass `--capture` only when the
    spec sets it, with the spec's limits; without it the server is started exactly as before."""
    from cli.main import serve_command
    from compiler.emitters.k8s import serving_runtime
    from core.spec import ProjectSpec

    base = {"name": "cars", "classes": ["a", "b"], "data": {"sources": [{"kind": "sklearn_digits"}]}}
    off = ProjectSpec.model_validate(base, strict=False)
    on = ProjectSpec.model_validate({**base, "serving": {"capture": {"destination": "s3://fleet/cars",
                                                                     "max_per_minute": 5}}}, strict=False)
    args_off = serving_runtime(off)["spec"]["containers"][0]["args"]
    args_on = serving_runtime(on)["spec"]["containers"][0]["args"]
    assert not any(a.startswith("--capture") for a in args_off)
    [capture] = [a for a in args_on if a.startswith("--capture=")]
    settings = json.loads(capture.removeprefix("--capture="))
    assert settings["destination"] == "s3://fleet/cars"
    assert settings["max_per_minute"] == 5
    for folder in ("models/cars/export", "models/cars/dependability"):
        (tmp_path / folder).mkdir(parents=True)
    assert "--capture" not in serve_command(tmp_path, "cars", 8080, serving={"capture": None})
    command = serve_command(tmp_path, "cars", 8080, serving={"capture": on.serving.capture.model_dump_json()})
    assert json.loads(command[command.index("--capture") + 1])["destination"] == "s3://fleet/cars"


def test_a_promoted_cascade_is_one_inference_service_serving_its_release() -> None:
    """A cascade's release (both models and what joins them) is served by one predictor, one content address."""
    shared_schemas()
    manifests = _manifests(_render("cascade", {"digit-pair": MODEL}))
    services = {path: doc for path, doc in manifests.items() if doc["kind"] == "InferenceService"}
    assert list(services) == ["k8s/digit-pair/base/inferenceservice.yaml"]
    model = services["k8s/digit-pair/base/inferenceservice.yaml"]["spec"]["predictor"]["model"]
    assert model["storageUri"] == MODEL.storage_uri
    assert model["runtime"] == "digit-pair-onnx"
    assert not any(path.startswith("k8s/digit-pair/pipeline/train") for path in manifests), "a cascade trains nothing"
    validate(services["k8s/digit-pair/base/inferenceservice.yaml"])
