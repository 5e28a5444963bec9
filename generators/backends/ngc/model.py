"""What an NGC cluster and a job on one may say in project.yaml."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ...project.model import Cluster, Model, Rates, Scalar

NGC_PRIORITY = Literal["HIGH", "NORMAL", "LOW"]
NGC_PREEMPT = Literal["RESUMABLE", "RESTARTABLE", "RUNONCE"]


class NgcCluster(Cluster):
    """An NGC ACE reached with ``ngc batch``: defaults of every job launched there."""

    kind: Literal["ngc"]
    org: str | None = None
    team: str | None = None
    ace: str | None = None
    instance: str | None = None
    escalate: list[str] = []
    workspaces: dict[str, str] = {}
    datasets: dict[str, str] = {}
    result: str = "/result"
    priority: NGC_PRIORITY | None = None
    preempt: NGC_PREEMPT | None = None
    total_runtime: str | int | None = None
    labels: list[str] = []
    secrets: list[str] = []
    configs: str | None = None
    parallel: int = Field(8, ge=1, le=64)  # launches in flight at once in launch_all.sh
    rates: Rates | None = None


class JobConfig(Model):
    """A config file per sweep point: ``base`` with the keys of ``set`` overridden."""

    base: str
    set_: dict[str, Scalar] = Field({}, alias="set")


class NgcJob(Model):
    """The keys a job on an NGC cluster may have besides the common ones."""

    image: str | None = None
    instance: str | None = None
    interactive: bool = False
    ports: list[int | str] = []
    labels: list[str] = []
    priority: NGC_PRIORITY | None = None
    preempt: NGC_PREEMPT | None = None
    total_runtime: str | int | None = None
    config: JobConfig | None = None
