"""The typed Project: what a valid project.yaml means.

Every model forbids unknown keys and is frozen. Values stay as the user wrote them; parsing
into shell words, times and sweep points happens in ``validate`` and the generators.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, field_validator, model_validator


def _scalar(value: Any) -> Any:
    """Accept a string, number or boolean as is (numbers keep how they were written)."""
    if isinstance(value, str | int | float | bool):
        return value
    raise ValueError("expected a string, number or boolean"
                     + (" (quote it; YAML read nothing here)" if value is None else ""))


Scalar = Annotated[str | int | float | bool, PlainValidator(_scalar)]
# Names become file and folder names (<kind>/<cluster>/<job>.<ext>, sync/<name>.sh) and
# scheduler job names (<project>-<job>, and log files named after them), so they are bounded
# well below the 255 bytes a file name may have.
NAME_MAX = 64
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
PROJECT = r"^[a-z0-9][a-z0-9-]{0,63}$"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
INTERVAL = r"^[0-9]{1,6}[smh]$"
# The most points a scheduler's array can hold: a bound for a sweep's throttle.
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
    (("jobs", "*", "command", "#"), VALUE),
    (("jobs", "*", "sweep", "matrix", "*", "#"), VALUE),
    (("jobs", "*", "sweep", "list", "#", "*"), VALUE),
    (("env", "*"), VALUE),
    (("clusters", "*", "env", "*"), VALUE),
    (("jobs", "*", "env", "*"), VALUE),
    (("images", "*", "dockerfile", "env", "*"), VALUE),
    (("images", "*", "dockerfile", "entrypoint", "#"), VALUE),
)


def text_kind(loc: tuple[str | int, ...],
              kinds: tuple[tuple[tuple[str, ...], str], ...] = TEXT_KINDS) -> str:
    """The kind of text the string at ``loc`` is (see TEXT_KINDS; cluster kinds add theirs).

    >>> text_kind(("jobs", "a", "command")), text_kind(("jobs", "a", "command", 0))
    ('code', 'value')
    >>> text_kind(("jobs", "a", "cluster")), text_kind(("description",))
    ('strict', 'prose')
    """
    for pattern, kind in kinds:
        if len(pattern) == len(loc) and all(
                p == part or (p == "*" and isinstance(part, str))
                or (p == "#" and isinstance(part, int))
                for p, part in zip(pattern, loc, strict=True)):
            return kind
    return STRICT


def seconds(every: str) -> int:
    """Seconds of an interval such as ``15m`` (see INTERVAL).

    >>> [seconds(t) for t in ("30s", "15m", "2h")]
    [30, 900, 7200]
    """
    return int(every[:-1]) * {"s": 1, "m": 60, "h": 3600}[every[-1]]


class Model(BaseModel):
    # defer_build: a model's validator is built when it first validates, so the models of
    # kinds a project does not use cost nothing.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)


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


class Rates(Model):
    """Prices used for PLAN.md's cost estimate."""

    node_hour: float | int = Field(0, ge=0, le=10**12, allow_inf_nan=False)
    gpu_hour: float | int = Field(0, ge=0, le=10**12, allow_inf_nan=False)
    unit: str = Field("credits", max_length=NAME_MAX)


class Cluster(Model):
    """What every cluster has, whatever its kind; each kind's model adds its own keys."""

    kind: str
    env: dict[str, Scalar] = {}
    description: str | None = None


class ImageCopy(Model):
    """A file or folder of the project copied into an image."""

    from_: str = Field(alias="from")
    to: str


class ImageBuild(Model):
    """How an image is built: the Dockerfile jobpack writes for it."""

    from_: str = Field(alias="from")
    apt: list[str] = []
    pip: list[str] = []
    requirements: str | None = None
    copy_: list[ImageCopy] = Field([], alias="copy")
    env: dict[str, Scalar] = {}
    workdir: str | None = None
    entrypoint: list[str] | None = None
    user: str | int | None = None
    run_helper: bool = False
    platform: str | None = None
    ports: list[int] = []


class Image(Model):
    """A container image: rehosted from ``source``, or built from ``dockerfile``, and pushed
    to each of ``tags``."""

    source: str | None = None
    tags: list[str] = []
    dockerfile: ImageBuild | None = None
    description: str | None = None


class Sweep(Model):
    """Points of a sweep: the product of its sources (sequences x list x matrix)."""

    matrix: dict[str, list[Scalar]] | None = None
    points: list[dict[str, Scalar]] | None = Field(None, alias="list")
    sequences: str | None = None
    throttle: int | None = Field(None, ge=1, le=MAX_ARRAY)
    chunk: bool = True


class Job(Model):
    """The keys every job has, whatever the kind of its cluster. The keys of that kind are
    validated by the kind's own model and kept in ``options`` (set by the validator, never
    read from the file)."""

    cluster: str
    command: Any
    description: str | None = None
    sweep: Sweep | None = None
    after: list[str] = []
    env: dict[str, Scalar] = {}
    retries: int = Field(0, ge=0, le=100)
    options: Any = Field(None, exclude=True)

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
    clusters: dict[str, Cluster] = {}
    jobs: dict[str, Job] = {}
    storage: dict[str, Storage] = {}
    syncs: dict[str, Sync] = {}
    description: str | None = None


TOP_LEVEL = ("project", "user", "description", "secrets", "env", "images", "storage",
             "clusters", "jobs", "syncs")
