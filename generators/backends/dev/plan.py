"""Dev nodes: ``dev/<name>/`` with allocate.sh, ssh_config, init-scratch.sh, backup.sh,
auto-backup.sh, status.sh, release.sh and env.sh, all from one context."""

from __future__ import annotations

from typing import Any

from ...plan import FileSpec, Group, file_header, plain_context, runtime_file
from ...project import model as m
from ...project.checker import Loaded
from ...shell import Safe, parse_text, shquote, var_refs, word_ref
from .model import DevNode
from .rules import login_of

SCRIPTS = ("allocate.sh", "init-scratch.sh", "backup.sh", "auto-backup.sh", "status.sh",
           "release.sh")
# Seconds before the time limit at which the allocation's steps get USR1 (a final backup).
SIGNAL_BEFORE = 600


def nodes(loaded: Loaded) -> dict[str, DevNode]:
    return dict(loaded.sections.get("dev") or {})


def _text(value: m.Scalar) -> str:
    return m._scalar_text(value)


def _word(text: str) -> Safe:
    """One shell word of a path or value: ${NAME} expands at run time, the rest is literal."""
    return word_ref(parse_text(text)[0])


def state_dir(loaded: Loaded, name: str) -> str:
    """Where allocate.sh writes the node, relative to the home folder on the login node."""
    return f".jobpack/dev/{loaded.project.project}/{name}"


def job_name(project: str, name: str) -> str:
    """The allocation's Slurm job name: a ':' no batch job name of a project has (those are
    PROJECT-NAME, with neither holding a ':'), so a batch job is never taken for it."""
    return f"jobpack-dev:{project}:{name}"


def marker(project: str, name: str) -> str:
    """What the allocation carries as its Slurm comment and its tmux session as an option:
    only an allocation or session that carries it is reused or ended."""
    return f"jobpack-dev:{project}/{name}"


def session_name(project: str, name: str) -> str:
    """The tmux session: tmux allows neither '.' nor ':' in its names, so the dev node's name
    is spelled with '_' escapes ('_' as '_u', '.' as '_d'); a project name has no '_', so the
    first '_' after the prefix ends it and no two dev nodes share a session."""
    return f"jobpack-dev_{project}_" + name.replace("_", "_u").replace(".", "_d")


def salloc_args(loaded: Loaded, node: DevNode, job_name: str) -> list[Safe]:
    """The allocation's options (its node list is added by allocate.sh)."""
    cluster = loaded.project.clusters[node.cluster]
    res = node.resources
    out = [shquote(f"--job-name={job_name}")]
    partition = res.partition or getattr(cluster, "partition", None)
    account = getattr(cluster, "account", None)
    qos = getattr(cluster, "qos", None)
    for flag, value in (("partition", partition), ("account", account), ("qos", qos)):
        if value is not None:
            out.append(Safe(shquote(f"--{flag}=") + _word(str(value))))
    for flag, num in (("gpus", res.gpus), ("cpus-per-task", res.cpus), ("mem", res.mem),
                      ("time", res.time)):
        if num is not None:
            out.append(shquote(f"--{flag}={_text(num)}"))
    # Also without a time: the partition's default limit ends the allocation just the same.
    out.append(shquote(f"--signal=USR1@{SIGNAL_BEFORE}"))
    return out


def context(loaded: Loaded, name: str, node: DevNode) -> dict[str, Any]:
    proj = loaded.project
    job = job_name(proj.project, name)
    login = login_of(loaded, node)
    cluster = proj.clusters[node.cluster]
    account = str(getattr(cluster, "account", None) or "")
    secrets = [s for s in proj.secrets if s in var_refs(account)]
    return plain_context({
        "header": file_header(loaded.source.file), "name": name, "project": proj.project,
        "description": node.description, "cluster": node.cluster,
        "alias": node.alias or name, "login": login, "job_name": job,
        "ssh_user": login.split("@", 1)[0] if "@" in login else "",
        "marker": marker(proj.project, name), "session": session_name(proj.project, name),
        "state": state_dir(loaded, name), "node": shquote(node.node or ""),
        "salloc": [*salloc_args(loaded, node, job),
                   shquote(f"--comment={marker(proj.project, name)}")],
        "scratch": _word(node.scratch), "backup": _word(node.backup),
        "scratch_text": node.scratch, "backup_text": node.backup,
        "prefix": shquote(f"{proj.project}-{name}-"),
        "prefix_text": f"{proj.project}-{name}-",
        "every": m.seconds(node.every) if node.every else 0,
        "every_text": node.every or "", "keep": node.keep,
        "env": [(k, _word(_text(v)) if isinstance(v, str) else shquote(_text(v)))
                for k, v in node.env.items()],
        "env_text": [(k, _text(v)) for k, v in node.env.items()], "secrets": [],
        "allocate_secrets": secrets})


def plan(loaded: Loaded) -> list[Group]:
    out = []
    for name, node in nodes(loaded).items():
        folder = f"dev/{name}"
        ctx = context(loaded, name, node)
        # Only allocate.sh passes the cluster's account to Slurm: the scripts that run on
        # the node read no secret.
        files = [FileSpec(f"{folder}/{s}", f"dev/{s}.j2",
                          {**ctx, "secrets": ctx["allocate_secrets"]} if s == "allocate.sh"
                          else ctx, executable=True, lint="shellcheck") for s in SCRIPTS]
        files.append(FileSpec(f"{folder}/env.sh", "dev/env.sh.j2", ctx, lint="shellcheck"))
        files.append(FileSpec(f"{folder}/ssh_config", "dev/ssh_config.j2", ctx))
        files.append(runtime_file(folder, "dev", loaded.source.file))
        out.append(Group(folder, ("dev", name), tuple(files)))
    return out


def rows(loaded: Loaded) -> list[list[str]]:
    """PLAN.md: one row per dev node."""
    out = []
    for name, node in nodes(loaded).items():
        res = node.resources
        cluster = loaded.project.clusters[node.cluster]
        partition = res.partition or getattr(cluster, "partition", None) or "(default)"
        asks = [f"{k} {_text(v)}" for k, v in (("gpus", res.gpus), ("cpus", res.cpus),
                                               ("mem", res.mem), ("time", res.time))
                if v is not None]
        every = f"every {node.every}" if node.every else "by hand"
        out.append([name, node.cluster, partition, node.node or "any", ", ".join(asks) or "-",
                    f"{node.alias or name} via {login_of(loaded, node)}", node.scratch,
                    f"{node.backup} ({every}, keep {node.keep})"])
    return out
