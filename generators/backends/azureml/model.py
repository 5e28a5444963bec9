"""What an Azure ML cluster (a workspace) and a job on one may say in project.yaml."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ...project.model import Cluster, Model, Rates, Scalar

# Nodes and processes as Azure ML's command job takes them (resources.instance_count,
# distribution.process_count_per_instance): bounds far above any real cluster.
MAX_NODES = 10_000
MAX_PROCESSES = 1_024
# limits.timeout is seconds in a 32-bit integer.
MAX_TIMEOUT = 2**31 - 1

INPUT_TYPES = Literal["uri_folder", "uri_file"]
INPUT_MODES = Literal["ro_mount", "download", "direct", "eval_mount", "eval_download"]
OUTPUT_MODES = Literal["rw_mount", "upload"]


class AmlResources(Model):
    """Nodes and GPUs of one job; Azure ML's instance type (VM size) of its nodes."""

    nodes: int = Field(1, ge=1, le=MAX_NODES)
    gpus_per_node: int | None = Field(None, ge=0, le=MAX_PROCESSES)
    instance_type: str | None = None


class DataInput(Model):
    """A folder or file the job reads: a datastore path (``STORE:path``), an ``azureml://``
    URI, a blob URL or a data asset; mounted read-only by default."""

    path: str
    type: INPUT_TYPES = "uri_folder"
    mode: INPUT_MODES = "ro_mount"


class DataOutput(Model):
    """A folder the job writes: a datastore path or ``azureml://`` URI (Azure ML's default
    place of the job's outputs when left out); mounted read-write by default."""

    path: str | None = None
    type: INPUT_TYPES = "uri_folder"
    mode: OUTPUT_MODES = "rw_mount"


class AzuremlCluster(Cluster):
    """An Azure ML workspace reached with ``az ml``: defaults of every job created there."""

    kind: Literal["azureml"]
    subscription: str | None = None
    resource_group: str
    workspace: str
    compute: str | None = None
    instance_type: str | None = None
    experiment: str | None = None
    # Short names for the workspace's datastores: an input path ``vig:data/x`` reads
    # azureml://datastores/<datastores[vig]>/paths/data/x.
    datastores: dict[str, str] = {}
    shm_size: str | None = None
    rates: Rates | None = None


class AzuremlJob(Model):
    """The keys a job on an Azure ML cluster may have besides the common ones."""

    image: str | None = None
    resources: AmlResources = AmlResources()
    launcher: Literal["none", "mpi", "torchrun"] = "none"
    processes_per_node: int | None = Field(None, ge=1, le=MAX_PROCESSES)
    compute: str | None = None
    code: str | None = None
    inputs: dict[str, DataInput] = {}
    outputs: dict[str, DataOutput] = {}
    timeout: str | int | None = None
    shm_size: str | None = None
    tags: dict[str, Scalar] = {}
