"""What a dev node may say in project.yaml: ``dev.<name>``, an interactive allocation on a
Slurm cluster with a fast scratch folder backed up to the shared file system."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from ...project.model import INTERVAL, NAME, Model, Scalar

# An ssh host as the user's machine knows it (a Host of their ssh config, a name or an
# address, optionally user@): it is written into ssh_config and a ProxyCommand, so it is a
# plain word that cannot start with '-'.
HOST = r"^([A-Za-z0-9_][A-Za-z0-9_.-]{0,63}@)?[A-Za-z0-9_][A-Za-z0-9_.:-]{0,252}$"
ALIAS = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"
# Slurm's --time: minutes, or [days-]hours:minutes[:seconds] and its shorter forms.
TIME = r"^([0-9]{1,7}|([0-9]{1,4}-)?[0-9]{1,4}(:[0-9]{1,2}){0,2})$"
MAX_MEMORY = 2**40


def _memory(v: str | int | None) -> str | int | None:
    if isinstance(v, str) and not re.fullmatch(r"[0-9]{1,20}[KMGT]?", v):
        raise ValueError("memory is a number with an optional unit K, M, G or T (e.g. 32G)")
    if isinstance(v, int) and not 0 <= v <= MAX_MEMORY:
        raise ValueError(f"memory must be between 0 and {MAX_MEMORY}")
    if isinstance(v, str) and int(v.rstrip("KMGT")) > MAX_MEMORY:
        raise ValueError(f"memory {v} is more than Slurm can be asked for")
    return v


class DevResources(Model):
    """What the allocation asks for (the cluster's partition when none is given)."""

    partition: str | None = Field(None, pattern=NAME)
    gpus: int | None = Field(None, ge=0, le=2**31 - 1)
    cpus: int | None = Field(None, ge=1, le=65533)
    mem: str | int | None = None
    time: str | int | None = None

    _mem = field_validator("mem")(classmethod(lambda cls, v: _memory(v)))

    @field_validator("time")
    @classmethod
    def _time(cls, v: str | int | None) -> str | int | None:
        if isinstance(v, int) and not 1 <= v <= 10**7:
            raise ValueError("a time limit in minutes is between 1 and 10000000")
        if isinstance(v, str) and not re.fullmatch(TIME, v):
            raise ValueError("a time limit is minutes, or [days-]hours:minutes[:seconds] "
                             "(e.g. 8:00:00 or 2-00:00:00)")
        return v


class DevNode(Model):
    """One dev node: its allocation, the ssh alias that reaches it, scratch and backups."""

    cluster: str
    resources: DevResources = DevResources()
    node: str | None = Field(None, pattern=NAME)
    login: str | None = None
    alias: str | None = None
    scratch: str = "/scratch/${USER}/work"
    backup: str
    every: str | None = Field("30m", pattern=INTERVAL)
    keep: int = Field(3, ge=1, le=1000)
    env: dict[str, Scalar] = {}
    description: str | None = None

    @field_validator("login")
    @classmethod
    def _login(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(HOST, v):
            raise ValueError(f"{v!r} is not an ssh host: a Host of your ssh config, a name or "
                             "an address, optionally user@, not starting with '-'")
        return v

    @field_validator("alias")
    @classmethod
    def _alias(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(ALIAS, v):
            raise ValueError(f"{v!r} is not an ssh Host name: at most 64 letters, digits, "
                             "'_', '.' and '-', not starting with '-' or '.'")
        return v
