"""`k8s/<p>/pipeline/`: the same stage graph run on a cluster by engines that already exist.

- `workflow.yaml`: an Argo Workflow whose DAG is the DVC stage graph. Each step runs in the project image
  `dvc repro --pull --single-item <stage>` (pulling what it reads from the DVC remote) and then `dvc push
  --run-cache <stage>`, so the next step, and later a laptop's `dvc repro --pull`, find its outputs and
  its run-cache entry without computing anything again.
- `train-pytorchjob.yaml`: the train step as a Kubeflow PyTorchJob (master + `cluster.train_workers`);
  the train stage runs Lightning DDP from the environment the operator sets (WORLD_SIZE, RANK, ...).
  The workflow creates it through a resource template and waits for the master to finish.
- `hpo-job.yaml` (with `train.hpo`): N optuna workers (a Job with parallelism N) filling one study whose
  database URL comes from a Secret, never inline; the train step then finds the study complete.

Not part of the kustomize tree Argo CD syncs: a run is submitted (`argo submit`), not reconciled.
"""

from __future__ import annotations

from typing import Any

from compiler.emitters import EmitContext, header
from compiler.emitters._yaml import dump_yaml
from compiler.emitters.k8s import container_security, labels
from compiler.ir import Pipeline, Stage
from core.profiles import PIPELINE_LIGHT_RESOURCES, PROFILES, HardwareProfile
from core.spec import ProjectSpec

HEAVY_STAGES = frozenset({"embed", "train", "ensemble", "compress", "export", "dependability", "select"})
STUDY_URL_ENV = "AUTODL_OPTUNA_STORAGE"
"""Environment variable the train stage and the HPO workers read the shared study's database URL from."""


def _labels(spec: ProjectSpec, component: str) -> dict[str, str]:
    return {**labels(spec), "app.kubernetes.io/component": component}


def service_account_name(spec: ProjectSpec) -> str:
    return spec.cluster.service_account or f"{spec.name}-pipeline"


def study_secret_name(spec: ProjectSpec) -> str:
    return spec.cluster.hpo_storage_secret or f"{spec.name}-optuna"


def _resources(profile: HardwareProfile, stage: str) -> dict[str, Any]:
    amounts = dict(profile.pipeline_resources if stage in HEAVY_STAGES else PIPELINE_LIGHT_RESOURCES)
    return {"requests": amounts, "limits": amounts}


def _study_env(spec: ProjectSpec) -> list[dict[str, Any]]:
    if spec.train.hpo is None:
        return []
    return [{"name": STUDY_URL_ENV, "valueFrom": {"secretKeyRef": {"name": study_secret_name(spec), "key": "url"}}}]


def _security() -> dict[str, Any]:
    """The model server's restricted container settings, but a writable root: DVC writes the workspace."""
    return {k: v for k, v in container_security().items() if k != "readOnlyRootFilesystem"}


def _reproduce(stage: Stage) -> str:
    return f"dvc repro --pull --single-item {stage.id}\ndvc push --run-cache {stage.id}\n"


def _pull_inputs(pipeline: Pipeline, stage: Stage) -> str:
    upstream = " ".join(s.id for s in pipeline.upstream_of(stage))
    return f"dvc pull {upstream}\n" if upstream else ""


def _pod(spec: ProjectSpec, stage: Stage, container: str, image: str, script: str) -> dict[str, Any]:
    profile = PROFILES[spec.target.hardware]
    env = _study_env(spec) if stage.name == "train" else []
    pod: dict[str, Any] = {
        "serviceAccountName": service_account_name(spec),
        "restartPolicy": "Never",
        "containers": [{"name": container, "image": image, "command": ["sh", "-ec", script],
                        **({"env": env} if env else {}),
                        "resources": _resources(profile, stage.name), "securityContext": _security()}],
    }
    if stage.name in HEAVY_STAGES:
        pod["nodeSelector"] = dict(profile.pipeline_node_selector)
        if profile.pipeline_tolerations:
            pod["tolerations"] = [dict(t) for t in profile.pipeline_tolerations]
    return pod


def pytorch_job(spec: ProjectSpec, pipeline: Pipeline, image: str) -> dict[str, Any]:
    """The train stage on `train_workers + 1` pods. The master runs it under DVC (and pushes the result);
    workers pull the same inputs and run the stage command, joining the master's process group."""
    train = next(s for s in pipeline.stages if s.name == "train")
    replicas = {"Master": {"replicas": 1, "restartPolicy": "Never",
                           "template": {"metadata": {"labels": _labels(spec, "train")},
                                        "spec": _pod(spec, train, "pytorch", image, _reproduce(train))}}}
    if spec.cluster.train_workers:
        worker_script = _pull_inputs(pipeline, train) + f"{train.cmd}\n"
        replicas["Worker"] = {"replicas": spec.cluster.train_workers, "restartPolicy": "Never",
                              "template": {"metadata": {"labels": _labels(spec, "train")},
                                           "spec": _pod(spec, train, "pytorch", image, worker_script)}}
    return {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
            "metadata": {"generateName": f"{spec.name}-train-", "namespace": spec.cluster.namespace,
                         "labels": _labels(spec, "train")},
            "spec": {"runPolicy": {"cleanPodPolicy": "None", "backoffLimit": 0},
                     "pytorchReplicaSpecs": replicas}}


def hpo_job(spec: ProjectSpec, pipeline: Pipeline, image: str) -> dict[str, Any]:
    """`cluster.hpo_workers` optuna workers sharing the study in the database the Secret names; an Indexed Job,
    so each pod's JOB_COMPLETION_INDEX gives its sampler a seed of its own."""
    train = next(s for s in pipeline.stages if s.name == "train")
    workers = spec.cluster.hpo_workers
    arguments = train.cmd.partition(" --project ")[2]  # the train stage's project and input paths
    script = _pull_inputs(pipeline, train) + f"python -m stages.hpo_worker --project {arguments}\n"
    pod = _pod(spec, train, "optuna", image, script)  # the train stage's pod: the study URL from the Secret
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"generateName": f"{spec.name}-hpo-", "namespace": spec.cluster.namespace,
                         "labels": _labels(spec, "hpo")},
            "spec": {"parallelism": workers, "completions": workers, "completionMode": "Indexed",
                     "backoffLimit": workers,
                     "template": {"metadata": {"labels": _labels(spec, "hpo")}, "spec": pod}}}


def _resource_template(name: str, manifest: dict[str, Any], success: str, failure: str) -> dict[str, Any]:
    return {"name": name, "resource": {"action": "create", "setOwnerReference": True, "successCondition": success,
                                       "failureCondition": failure, "manifest": dump_yaml(manifest)}}


def workflow(spec: ProjectSpec, pipeline: Pipeline) -> dict[str, Any]:
    """An Argo Workflow whose DAG mirrors the DVC stage graph (dependencies from what each stage reads)."""
    image = "{{workflow.parameters.image}}"
    templates: list[dict[str, Any]] = []
    tasks: list[dict[str, Any]] = []
    hpo = spec.train.hpo is not None
    for stage in pipeline.stages:
        depends = [s.name for s in pipeline.upstream_of(stage)]
        if stage.name == "train":
            templates.append(_resource_template("train", pytorch_job(spec, pipeline, image),
                                                "status.replicaStatuses.Master.succeeded > 0",
                                                "status.replicaStatuses.Master.failed > 0"))
            if hpo:
                templates.append(_resource_template("hpo", hpo_job(spec, pipeline, image),
                                                    f"status.succeeded == {spec.cluster.hpo_workers}",
                                                    "status.failed > 0"))
                tasks.append({"name": "hpo", "template": "hpo", **({"dependencies": depends} if depends else {})})
                depends = [*depends, "hpo"]
        else:
            pod = _pod(spec, stage, "main", image, _reproduce(stage))
            container = pod.pop("containers")[0]
            container.pop("name")
            templates.append({"name": stage.name, "container": container, "metadata": {
                "labels": _labels(spec, stage.name)}, **{k: v for k, v in pod.items()
                                                         if k in ("nodeSelector", "tolerations")}})
        tasks.append({"name": stage.name, "template": stage.name, **({"dependencies": depends} if depends else {})})
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "metadata": {"generateName": f"{spec.name}-pipeline-", "namespace": spec.cluster.namespace,
                     "labels": _labels(spec, "pipeline")},
        "spec": {
            "entrypoint": "pipeline",
            "serviceAccountName": service_account_name(spec),
            "arguments": {"parameters": [{"name": "image", "value": spec.cluster.image}]},
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 1000},
            "templates": [{"name": "pipeline", "dag": {"tasks": tasks}}, *templates],
        },
    }


class ClusterPipelineEmitter:
    """Per project, the cluster form of its pipeline: Argo Workflow, PyTorchJob and (with HPO) the optuna Job."""

    name = "cluster"

    def emit(self, ctx: EmitContext) -> dict[str, str]:
        files: dict[str, str] = {}
        for item, pipeline in zip(ctx.specs, ctx.pipelines, strict=True):
            spec, banner = item.spec, header("#", [item.path])
            folder = f"k8s/{spec.name}/pipeline"
            documents = {f"{folder}/workflow.yaml": workflow(spec, pipeline)}
            if any(stage.name == "train" for stage in pipeline.stages):  # a cascade trains nothing of its own
                documents[f"{folder}/train-pytorchjob.yaml"] = pytorch_job(spec, pipeline, spec.cluster.image)
            if spec.train.hpo is not None:
                documents[f"{folder}/hpo-job.yaml"] = hpo_job(spec, pipeline, spec.cluster.image)
            files.update({path: banner + dump_yaml(document) for path, document in documents.items()})
        return files
