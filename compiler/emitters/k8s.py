"""`k8s/`: what Argo CD applies to serve each project with KServe.

Per project, `k8s/<p>/base/` holds the ServingRuntime (our ONNX Runtime model
server image), the predictor's ServiceAccount (storage credentials are bound
to it in the cluster, never written here) and, once a model has been promoted,
the InferenceService pointing at it; `overlays/staging` and
`overlays/production` set the namespace and scale. `k8s/argocd/<p>.yaml` is
the Argo CD Application that syncs the production overlay. Resources,
node selectors and tolerations come from the target hardware profile.
"""

from __future__ import annotations

import json
from typing import Any

from compiler.emitters import EmitContext, header
from compiler.emitters._yaml import dump_yaml
from compiler.ir import PromotedModel
from core.profiles import PROFILES
from core.spec import ProjectSpec

HTTP_PORT = 8080
MANAGED_BY = {"app.kubernetes.io/managed-by": "autodl"}


def labels(spec: ProjectSpec) -> dict[str, str]:
    return {"app.kubernetes.io/name": spec.name, "app.kubernetes.io/part-of": "autodl", **MANAGED_BY}


def container_security() -> dict[str, Any]:
    """The restricted Pod Security Standard for the model server container."""
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def _probe(path: str, period: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": HTTP_PORT}, "periodSeconds": period, "timeoutSeconds": 2,
            "failureThreshold": 3}


def service_account_name(spec: ProjectSpec) -> str:
    return spec.serving.service_account or f"{spec.name}-predictor"


def serving_runtime(spec: ProjectSpec) -> dict[str, Any]:
    profile = PROFILES[spec.target.hardware]
    resources = dict(profile.resources)
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": {"name": f"{spec.name}-onnx", "labels": labels(spec)},
        "spec": {
            "supportedModelFormats": [{"name": "onnx", "version": "1", "autoSelect": False}],
            "protocolVersions": ["v1", "v2"],
            "containers": [{
                "name": "kserve-container",
                "image": spec.serving.predictor_image,
                # The pod must listen on its own address for the kubelet's probes and the Service.
                "args": ["--model_name={{.Name}}", "--model_dir=/mnt/models", "--host=0.0.0.0",
                         f"--http_port={HTTP_PORT}", f"--max_image_pixels={spec.serving.max_image_pixels}",
                         f"--max_image_side_px={spec.serving.max_image_side_px}",
                         *([f"--capture={spec.serving.capture.model_dump_json()}"] if spec.serving.capture else [])],
                "env": [{"name": "OMP_NUM_THREADS", "value": resources["cpu"]},
                        {"name": "AUTODL_EXECUTION_PROVIDER", "value": profile.execution_provider},
                        {"name": "AUTODL_ABSTAIN_ON_OOD", "value": str(spec.serving.abstain_on_ood).lower()}],
                "ports": [{"containerPort": HTTP_PORT, "name": "http", "protocol": "TCP"}],
                "resources": {"requests": resources, "limits": resources},
                "securityContext": container_security(),
                "livenessProbe": _probe("/v2/health/live", 10),
                "readinessProbe": _probe("/v2/health/ready", 5),
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # read-only root: scratch here
            }],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
            **({"nodeSelector": dict(profile.node_selector)} if profile.node_selector else {}),
            **({"tolerations": [dict(t) for t in profile.tolerations]} if profile.tolerations else {}),
        },
    }


def inference_service(spec: ProjectSpec, model: PromotedModel) -> dict[str, Any]:
    profile = PROFILES[spec.target.hardware]
    serving = spec.serving
    predictor: dict[str, Any] = {
        "minReplicas": serving.min_replicas,
        "maxReplicas": serving.max_replicas,
        **({"canaryTrafficPercent": serving.canary_percent} if serving.canary_percent else {}),
        "serviceAccountName": service_account_name(spec),
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        **({"nodeSelector": dict(profile.node_selector)} if profile.node_selector else {}),
        **({"tolerations": [dict(t) for t in profile.tolerations]} if profile.tolerations else {}),
        "model": {
            "modelFormat": {"name": "onnx"},
            "runtime": f"{spec.name}-onnx",
            "protocolVersion": "v2",
            "storageUri": model.storage_uri,
            "resources": {"requests": dict(profile.resources), "limits": dict(profile.resources)},
            "securityContext": container_security(),
        },
    }
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": spec.name, "labels": labels(spec),
                     "annotations": {"autodl.dev/model-digest": model.digest,
                                     "autodl.dev/target": spec.target.hardware}},
        "spec": {"predictor": predictor},
    }


def service_account(spec: ProjectSpec) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": service_account_name(spec), "labels": labels(spec)},
            "automountServiceAccountToken": False}


def application(spec: ProjectSpec) -> dict[str, Any]:
    """The Argo CD Application that keeps the production overlay in sync with the branch."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": f"{spec.name}-production", "namespace": "argocd", "labels": labels(spec),
                     "finalizers": ["resources-finalizer.argocd.argoproj.io"]},
        "spec": {
            "project": "default",
            "source": {"repoURL": spec.serving.gitops_repo, "targetRevision": spec.serving.gitops_revision,
                       "path": f"k8s/{spec.name}/overlays/production"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": spec.serving.namespace},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True},
                           "syncOptions": ["CreateNamespace=true"]},
        },
    }


def _base_kustomization(spec: ProjectSpec, promoted: bool) -> dict[str, Any]:
    resources = ["serviceaccount.yaml", "servingruntime.yaml"] + (["inferenceservice.yaml"] if promoted else [])
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": resources,
            "labels": [{"pairs": dict(MANAGED_BY), "includeSelectors": False}]}


def _overlay(spec: ProjectSpec, environment: str, promoted: bool) -> dict[str, Any]:
    namespace = spec.serving.namespace if environment == "production" else f"{spec.serving.namespace}-staging"
    overlay: dict[str, Any] = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                               "namespace": namespace, "resources": ["../../base"],
                               "labels": [{"pairs": {"autodl.dev/environment": environment},
                                           "includeSelectors": False}]}
    if environment == "staging" and promoted:
        # staging takes every new model at once and may scale to zero: no canary, no idle replicas
        operations = [{"op": "replace", "path": "/spec/predictor/minReplicas", "value": 0},
                      *([{"op": "remove", "path": "/spec/predictor/canaryTrafficPercent"}]
                        if spec.serving.canary_percent else [])]
        overlay["patches"] = [{"target": {"kind": "InferenceService", "name": spec.name},
                               "patch": json.dumps(operations)}]  # a JSON 6902 patch, as kustomize takes it
    return overlay


class KubernetesEmitter:
    """One folder of Kubernetes manifests per project, plus its Argo CD Application when a repo is set."""

    name = "k8s"

    def emit(self, ctx: EmitContext) -> dict[str, str]:
        files: dict[str, str] = {}
        for item in ctx.specs:
            spec, model = item.spec, ctx.promoted.get(item.spec.name)
            banner = header("#", [item.path] + ([f"k8s/{spec.name}/promoted.yaml"] if model else []))
            base = f"k8s/{spec.name}/base"
            documents = {f"{base}/serviceaccount.yaml": service_account(spec),
                         f"{base}/servingruntime.yaml": serving_runtime(spec),
                         f"{base}/kustomization.yaml": _base_kustomization(spec, model is not None)}
            if model is not None:
                documents[f"{base}/inferenceservice.yaml"] = inference_service(spec, model)
            for environment in ("staging", "production"):
                documents[f"k8s/{spec.name}/overlays/{environment}/kustomization.yaml"] = _overlay(
                    spec, environment, model is not None)
            if spec.serving.gitops_repo:
                documents[f"k8s/argocd/{spec.name}.yaml"] = application(spec)
            files.update({path: banner + dump_yaml(document) for path, document in documents.items()})
        return files
