"""The `cluster` section: how the same pipeline runs on Kubernetes when one machine is not enough.

Nothing here changes what a stage computes, so no DVC stage reads these keys: editing them re-renders
`k8s/<p>/pipeline/` and re-runs nothing.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from core.spec._base import DnsLabel, Interval, SpecModel


class ClusterSection(SpecModel):
    """Argo Workflows runs the stages, the Kubeflow Training Operator runs `train` with DDP, optuna workers
    share a PostgreSQL study; every step moves data through the DVC remote."""

    namespace: DnsLabel = "autodl-pipelines"
    """Namespace the workflow, the PyTorchJob and the HPO Job run in."""
    image: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9./_:@-]*$")] = "autodl-pipeline:0.1.0"
    """The project image: this repository at the commit being run, with the `pipeline` extra installed."""
    service_account: DnsLabel | None = None
    """Service account of every step (it carries the DVC remote's credentials); default `<project>-pipeline`."""
    train_workers: Annotated[int, Interval(0, 512)] = 1
    """PyTorchJob workers beside the master: Lightning DDP runs on `train_workers + 1` processes."""
    hpo_workers: Annotated[int, Interval(1, 256)] = 2
    """Parallel optuna worker pods sharing one study (with `train.hpo`)."""
    hpo_storage_secret: DnsLabel | None = None
    """Secret whose key `url` holds the study's database URL (postgresql://...); default `<project>-optuna`."""
