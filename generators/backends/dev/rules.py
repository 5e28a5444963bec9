"""Checks of the dev section: each problem at its place in project.yaml (FILE:LINE:COL)."""

from __future__ import annotations

import posixpath
import re
from typing import Any

from ...loader import Loc
from ...project import model as m
from ...project.checker import NAME_RULE, Checker, Loaded, describe, suggest
from ...shell import Param, Var, parse_text
from .model import HOST, DevNode

# The kind of cluster a dev node is allocated on: its scripts run salloc, squeue, srun
# (the backend's builds_on says so too).
CLUSTER_KIND = "slurm"


def check(ck: Checker, loaded: Loaded, raw: Any) -> dict[str, DevNode]:
    """The valid dev nodes of ``raw`` (the ``dev`` section), every problem reported."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        ck.add(("dev",), f"expected a mapping of dev nodes, got {describe(raw)}")
        return {}
    valid: dict[str, DevNode] = {}
    aliases: dict[str, str] = {}
    for name, body in raw.items():
        loc: Loc = ("dev", name)
        if not re.fullmatch(m.NAME, str(name)):
            ck.add(loc, f"a dev node name {NAME_RULE}", key=True)
            continue
        node = ck.model(DevNode, body, loc)
        if node is None:
            continue
        ok = _cluster(ck, loaded, loc, node, given_login="login" in body)
        ok = _paths(ck, loc, node) and ok
        ok = _env(ck, loc, node) and ok
        if node.every is not None and m.seconds(node.every) == 0:
            ck.add((*loc, "every"), f"an interval of {node.every} is none: at least 1s, or null "
                   "for only the final backup")
            ok = False
        alias = node.alias or name
        if alias in aliases:
            ck.add((*loc, "alias") if node.alias else loc,
                   f"ssh alias {alias!r} is already the alias of dev node {aliases[alias]!r}")
            ok = False
        aliases.setdefault(alias, name)
        if ok:
            valid[name] = node
    return valid


def login_of(loaded: Loaded, node: DevNode) -> str:
    """The login host a dev node's ssh entry jumps through."""
    cluster = loaded.project.clusters[node.cluster]
    return node.login or str(getattr(cluster, "login", None) or "")


def _cluster(ck: Checker, loaded: Loaded, loc: Loc, node: DevNode, *,
             given_login: bool) -> bool:
    clusters = loaded.project.clusters
    if node.cluster not in clusters:
        if node.cluster not in ck.declared.get("clusters", set()):
            ck.add((*loc, "cluster"), f"unknown cluster {node.cluster!r}"
                   f"{suggest(node.cluster, clusters)}")
        return False
    cluster = clusters[node.cluster]
    if cluster.kind != CLUSTER_KIND:
        ck.add((*loc, "cluster"), f"cluster {node.cluster!r} is of kind {cluster.kind!r}: a "
               f"dev node is allocated on a {CLUSTER_KIND} cluster")
        return False
    if given_login and node.login is None:
        return False  # its own error says why
    if node.login is None:
        login = getattr(cluster, "login", None)
        if login is None:
            ck.add(loc, "required key 'login' is missing: the ssh host of the login node as "
                   f"your machine knows it (or set 'login' on cluster {node.cluster!r})")
            return False
        if not re.fullmatch(HOST, str(login)):
            ck.add(loc, f"the login of cluster {node.cluster!r} ({str(login)!r}) is not an "
                   "ssh host name: set 'login' here to the host of your ssh config")
            return False
    return True


def _refs(ck: Checker, loc: Loc, text: str, known: set[str]) -> bool:
    """Report placeholders and unknown ${NAME} references of a path or value."""
    parts, errors = parse_text(text)
    for error in errors:
        ck.add(loc, error)
    ok = not errors
    for part in parts:
        if isinstance(part, Param):
            ck.add(loc, f"'{{{{ {part.name} }}}}' has no value here: a dev node is no job "
                   "(use ${USER} and the like)")
            ok = False
        elif isinstance(part, Var) and part.name not in known and not ck.platform.fullmatch(
                part.name):
            ck.add(loc, f"'${{{part.name}}}' is neither a variable every machine sets (USER, "
                   f"HOME, ...) nor one of this dev node's env{suggest(part.name, known)}")
            ok = False
    return ok


def _paths(ck: Checker, loc: Loc, node: DevNode) -> bool:
    ok = True
    for key in ("scratch", "backup"):
        text = getattr(node, key)
        if not (text.startswith("/") or text.startswith("${")):
            ck.add((*loc, key), f"{key} must be an absolute path (it is used on the login "
                   "node and on the compute node alike), got " + repr(text))
            ok = False
        elif text.rstrip("/") in ("", "${HOME}", "${USER}"):
            ck.add((*loc, key), f"{key} {text!r} is too broad: name a folder of its own")
            ok = False
        ok = _refs(ck, (*loc, key), text, set()) and ok
    # As the file system reads them: '..', '.' and repeated '/' change no folder.
    scratch, backup = (posixpath.normpath(p).rstrip("/") for p in (node.scratch, node.backup))
    if ok and (backup == scratch or backup.startswith(scratch + "/")):
        ck.add((*loc, "backup"), "the backup folder must not be inside scratch (a backup "
               "would hold the ones before it)")
        ok = False
    return ok


def _env(ck: Checker, loc: Loc, node: DevNode) -> bool:
    ok = True
    seen: set[str] = set()
    for key, value in node.env.items():
        if not re.fullmatch(m.ENV_NAME, key):
            ck.add((*loc, "env", key), f"{key!r} is not an environment variable name "
                   "(letters, digits and '_', not starting with a digit)", key=True)
            ok = False
        elif isinstance(value, str):
            ok = _refs(ck, (*loc, "env", key), value, seen | {"SCRATCH"}) and ok
        seen.add(key)
    return ok
