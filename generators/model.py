"""The typed Project: what a valid project.yaml means.

Every model forbids unknown keys and is frozen. Values stay as the user wrote them; parsing
into shell words, times and sweep points happens in ``validate`` and the generators.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, field_validator, model_validator


def _scalar(value: Any) -> Any:
    """Accept a string, number or boolean as is (numbers keep how they were written)."""
    if isinstance(value, str | int | float | bool):
        return value
    raise ValueError("expected a string, number or boolean"
                     + (" (quote it; YAML read nothing here)" if value is None else ""))


Scalar = Annotated[str | int | float | bool, PlainValidator(_scalar)]
# Names become file and folder names (slurm/<cluster>/<job>.sbatch, sync/<name>.sh) and
# scheduler job names (<project>-<job>, and Slurm logs <project>-<job>_<array>_<task>.out), so
# they are bounded well below the 255 bytes a file name may have.
NAME_MAX = 64
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
PROJECT = r"^[a-z0-9][a-z0-9-]{0,63}$"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
INTERVAL = r"^[0-9]{1,6}[smh]$"
# Bounds of integers as the target CLIs parse them: Slurm reads counts into 32-bit integers
# (sbatch refuses --nodes=2147483648) and keeps tasks and CPUs per node in 16 bits (65534
# and 65535 are its "unset" and "infinite"); MaxArraySize is at most 4000001.
INT32 = 2**31 - 1
INT16 = 65533
MAX_ARRAY = 4_000_001


# Which control characters a string may hold, by where it sits in project.yaml ("*": any
# key, "#": any list index). Every key, and every string not listed here, is STRICT: names,
# paths, patterns, hosts, image references, options and the like take printable characters
# only. Prose and shell code may also hold newlines and tabs. VALUEs are data that reach the
# program through a quoting filter, byte-exact, so any character but NUL is carried.
STRICT, PROSE, CODE, VALUE = "strict", "prose", "code", "value"
TEXT_KINDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("description",), PROSE),
    (("*", "*", "description"), PROSE),
    (("jobs", "*", "command"), CODE),
    (("jobs", "*", "on_timeout", "run"), CODE),
    (("jobs", "*", "command", "#"), VALUE),
    (("jobs", "*", "sweep", "matrix", "*", "#"), VALUE),
    (("jobs", "*", "sweep", "list", "#", "*"), VALUE),
    (("jobs", "*", "config", "set", "*"), VALUE),
    (("env", "*"), VALUE),
    (("clusters", "*", "env", "*"), VALUE),
    (("jobs", "*", "env", "*"), VALUE),
)


def text_kind(loc: tuple[str | int, ...]) -> str:
    """The kind of text the string at ``loc`` is (see TEXT_KINDS).

    >>> text_kind(("jobs", "a", "command")), text_kind(("jobs", "a", "command", 0))
    ('code', 'value')
    >>> text_kind(("jobs", "a", "cluster")), text_kind(("description",))
    ('strict', 'prose')
    """
    for pattern, kind in TEXT_KINDS:
        if len(pattern) == len(loc) and all(
                p == part or (p == "*" and isinstance(part, str))
                or (p == "#" and isinstance(part, int))
                for p, part in zip(pattern, loc, strict=True)):
            return kind
    return STRICT


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _scalar_text(value: Any) -> str:
    """The text a scalar stands for in a script.

    >>> [_scalar_text(v) for v in ("a", 3, 0.1, True)]
    ['a', '3', '0.1', 'true']
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "text"):  # a number as written in project.yaml
        return str(value.text)
    return str(value) if isinstance(value, str | int) else repr(value)


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


class Rates(Model):
    """Prices used for PLAN.md's cost estimate."""

    node_hour: float | int = Field(0, ge=0, le=10**12, allow_inf_nan=False)
    gpu_hour: float | int = Field(0, ge=0, le=10**12, allow_inf_nan=False)
    unit: str = Field("credits", max_length=NAME_MAX)


class SlurmCluster(Model):
    kind: Literal["slurm"]
    account: str | None = None
    partition: str | None = None
    qos: str | None = None
    modules: list[str] = []
    conda: str | None = None
    env: dict[str, Scalar] = {}
    rates: Rates | None = None
    max_array_size: int = Field(1001, ge=1, le=MAX_ARRAY)
    login: str | None = None
    resources: Resources = Resources()
    sbatch: dict[str, Scalar] = {}
    description: str | None = None


NGC_PRIORITY = Literal["HIGH", "NORMAL", "LOW"]
NGC_PREEMPT = Literal["RESUMABLE", "RESTARTABLE", "RUNONCE"]


class NgcCluster(Model):
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
    env: dict[str, Scalar] = {}
    secrets: list[str] = []
    configs: str | None = None
    parallel: int = Field(8, ge=1, le=64)  # `ngc batch run` calls launch_all.sh makes at once
    rates: Rates | None = None
    description: str | None = None


class Image(Model):
    """A container image: rehosted from ``source`` to each of ``tags``."""

    source: str | None = None
    tags: list[str] = []
    dockerfile: Any = None
    description: str | None = None


class JobConfig(Model):
    """A config file per sweep point: ``base`` with the keys of ``set`` overridden."""

    base: str
    set_: dict[str, Scalar] = Field({}, alias="set")


class Sweep(Model):
    """Points of a sweep: the product of its sources (sequences x list x matrix)."""

    matrix: dict[str, list[Scalar]] | None = None
    points: list[dict[str, Scalar]] | None = Field(None, alias="list")
    sequences: str | None = None
    throttle: int | None = Field(None, ge=1, le=MAX_ARRAY)
    chunk: bool = True


class Job(Model):
    cluster: str
    command: Any
    description: str | None = None
    resources: Resources = Resources()
    sweep: Sweep | None = None
    after: list[str] = []
    env: dict[str, Scalar] = {}
    account: str | None = None
    partition: str | None = None
    qos: str | None = None
    launcher: Literal["none", "srun", "ray"] = "none"
    sbatch: dict[str, Scalar] = {}
    retries: int = Field(0, ge=0, le=100)
    escalate: list[Rung] = []
    on_timeout: OnTimeout | None = None
    stage_in: list[StageIn] = []
    stage_out: list[StageOut] = []
    image: str | None = None
    instance: str | None = None
    interactive: bool = False
    ports: list[int | str] = []
    labels: list[str] = []
    priority: NGC_PRIORITY | None = None
    preempt: NGC_PREEMPT | None = None
    total_runtime: str | int | None = None
    config: JobConfig | None = None

    @field_validator("command")
    @classmethod
    def _command(cls, v: Any) -> str | tuple[str, ...]:
        if isinstance(v, str) and v.strip():
            return v
        if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
            return tuple(v)
        raise ValueError("expected shell code (a non-empty string) or an argv list of strings")


STORAGE_KINDS = ("rclone", "ssh", "ftp", "local")


class Storage(Model):
    """A named place data moves to or from: an rclone remote, an ssh host, an FTP server, or a
    local folder. Exactly one of rclone, ssh, ftp and local is given."""

    rclone: str | None = Field(None, pattern=r"^[A-Za-z0-9_. -]*[A-Za-z0-9_.-]$")
    ssh: str | None = None
    ftp: str | None = None
    local: str | None = None
    path: str = ""
    user: str | None = None
    password: str | None = None
    port: int | None = Field(None, ge=1, le=65535)

    @model_validator(mode="after")
    def _one_kind(self) -> Storage:
        given = [k for k in STORAGE_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of rclone, ssh, ftp and local"
                             + (f" (got {', '.join(given)})" if given else ""))
        return self

    @property
    def kind(self) -> str:
        return next(k for k in STORAGE_KINDS if getattr(self, k) is not None)


class Sync(Model):
    """One transfer from a place to another, as a script in out/sync/."""

    from_: str = Field(alias="from")
    to: str
    mode: Literal["sync", "copy"] = "copy"
    include: list[str] = []
    exclude: list[str] = []
    every: str | None = Field(None, pattern=INTERVAL)
    retries: int = Field(3, ge=0, le=100)
    pack: Literal["tar"] | None = None
    delete: bool | None = None
    description: str | None = None


class Project(Model):
    project: str = Field(pattern=PROJECT)
    user: str | None = Field(None, pattern=PROJECT)
    secrets: list[str] = []
    env: dict[str, Scalar] = {}
    images: dict[str, Image] = {}
    clusters: dict[str, SlurmCluster | NgcCluster] = {}
    jobs: dict[str, Job] = {}
    storage: dict[str, Storage] = {}
    syncs: dict[str, Sync] = {}
    description: str | None = None


TOP_LEVEL = ("project", "user", "description", "secrets", "env", "images", "storage",
             "clusters", "jobs", "syncs", "dev")
NOT_YET = ("dev",)
KINDS_SUPPORTED = ("slurm", "ngc")
CLUSTER_MODELS: dict[str, type[Model]] = {"slurm": SlurmCluster, "ngc": NgcCluster}
KINDS_KNOWN = ("slurm", "ngc", "runai", "azureml")
