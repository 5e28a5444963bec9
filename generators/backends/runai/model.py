"""What a Run:ai cluster and a job on one may say in project.yaml."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ...project.model import Cluster, Model

PULL_POLICY = Literal["Always", "IfNotPresent", "Never"]
# A GPU request: whole devices (an integer), a portion of one (0 < x < 1), or an amount of
# GPU memory ("10G"); the rules tell which and check it.
Gpu = int | float | str
# At most this many of anything a CPU core or backoff count could be: far beyond any node.
MAX_COUNT = 100_000


class Nfs(Model):
    """An NFS export mounted into every workload: ``--nfs path=,server=,mountpath=``."""

    server: str
    path: str
    mount: str
    read_only: bool = False


class Pvc(Model):
    """An existing persistent volume claim: ``--existing-pvc claimname=,path=``."""

    claim: str
    mount: str


class RunaiCluster(Cluster):
    """A Run:ai project reached with the ``runai`` CLI (v2): defaults of every workload."""

    kind: Literal["runai"]
    project: str
    # The prefix of every workload name; the top-level ``user`` when not given here.
    user: str | None = None
    image_pull_policy: PULL_POLICY | None = None
    node_pools: list[str] = []
    nfs: list[Nfs] = []
    pvc: list[Pvc] = []
    gpu: Gpu | None = None
    cpu: int | float | None = None
    memory: str | None = None
    backoff_limit: int | None = Field(None, ge=0, le=MAX_COUNT)


class RunaiJob(Model):
    """The keys a job on a Run:ai cluster may have besides the common ones."""

    workload: Literal["training", "workspace"] = "training"
    image: str | None = None
    image_pull_policy: PULL_POLICY | None = None
    node_pools: list[str] | None = None
    gpu: Gpu | None = None
    cpu: int | float | None = None
    memory: str | None = None
    backoff_limit: int | None = Field(None, ge=0, le=MAX_COUNT)
    preemptible: bool = False
    working_dir: str | None = None
    ports: list[int | str] = []
    jupyter: bool = False
