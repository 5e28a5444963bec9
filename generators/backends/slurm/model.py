"""What a Slurm cluster and a job on one may say in project.yaml."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from ...project.model import INTERVAL, MAX_ARRAY, NAME, Cluster, Model, Rates, Scalar

# Bounds of integers as the target CLIs parse them: Slurm reads counts into 32-bit integers
# (sbatch refuses --nodes=2147483648) and keeps tasks and CPUs per node in 16 bits (65534
# and 65535 are its "unset" and "infinite"); MaxArraySize is at most MAX_ARRAY.
INT32 = 2**31 - 1
INT16 = 65533
MAX_MEMORY = 2**40  # in any unit: beyond every machine, far below what Slurm cannot parse


def _memory(v: str | int | None) -> str | int | None:
    """Slurm's --mem: a number of megabytes, or a number with a unit K, M, G or T."""
    if isinstance(v, str) and not re.fullmatch(r"[0-9]{1,20}[KMGT]?", v):
        raise ValueError("memory is a number with an optional unit K, M, G or T (e.g. 32G)")
    if isinstance(v, int) and v < 0:
        raise ValueError("memory must not be negative")
    if v is not None and int(str(v).rstrip("KMGT")) > MAX_MEMORY:
        raise ValueError(f"memory {v} is more than Slurm can be asked for (at most "
                         f"{MAX_MEMORY} in any unit)")
    return v


class Resources(Model):
    """Scheduler resources of one job (or a cluster's defaults)."""

    nodes: int | None = Field(None, ge=1, le=INT32)
    ntasks_per_node: int | None = Field(None, ge=1, le=INT16)
    gpus: int | None = Field(None, ge=0, le=INT32)
    gpus_per_node: int | None = Field(None, ge=0, le=INT32)
    gpu_type: str | None = Field(None, pattern=NAME)
    cpus_per_task: int | None = Field(None, ge=1, le=INT16)
    mem: str | int | None = None
    time: str | int | None = None
    signal: str | None = None
    requeue: bool | None = None

    _mem = field_validator("mem")(classmethod(lambda cls, v: _memory(v)))


class Rung(Model):
    """One step of an escalation ladder: what a resubmission asks for beyond the job's own."""

    time: str | int | None = None
    mem: str | int | None = None
    partition: str | None = None
    qos: str | None = None
    gpus: int | None = Field(None, ge=0, le=INT32)
    gpus_per_node: int | None = Field(None, ge=0, le=INT32)
    cpus_per_task: int | None = Field(None, ge=1, le=INT16)

    _mem = field_validator("mem")(classmethod(lambda cls, v: _memory(v)))


class OnTimeout(Model):
    """What a job does when its time limit nears: Slurm signals it ``before`` seconds early."""

    run: str | None = None
    before: int = Field(120, ge=1, le=65535)
    requeue: bool = False


class StageIn(Model):
    """A sync run once on every node of the job before its command (e.g. data to local disk)."""

    sync: str


class StageOut(StageIn):
    """A sync run on every node while the job runs: every ``every`` (the sync's own interval
    when left out), once more when the command ends, and at the pre-timeout signal."""

    every: str | None = Field(None, pattern=INTERVAL)


class SlurmCluster(Cluster):
    kind: Literal["slurm"]
    account: str | None = None
    partition: str | None = None
    qos: str | None = None
    modules: list[str] = []
    conda: str | None = None
    rates: Rates | None = None
    max_array_size: int = Field(1001, ge=1, le=MAX_ARRAY)
    login: str | None = None
    resources: Resources = Resources()
    sbatch: dict[str, Scalar] = {}


class SlurmJob(Model):
    """The keys a job on a Slurm cluster may have besides the common ones."""

    resources: Resources = Resources()
    account: str | None = None
    partition: str | None = None
    qos: str | None = None
    launcher: Literal["none", "srun", "ray", "mpi", "torchrun"] = "none"
    sbatch: dict[str, Scalar] = {}
    escalate: list[Rung] = []
    on_timeout: OnTimeout | None = None
    stage_in: list[StageIn] = []
    stage_out: list[StageOut] = []
