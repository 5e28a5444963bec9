"""Sync backend: one script per transfer in out/sync/, with a verified done-marker."""

from __future__ import annotations

from typing import Any

from ...plan import FileSpec, Group, file_header, plain_context, runtime_file
from ...project import model as m
from ...project.checker import Loaded
from ...project.model import seconds
from ...project.semantics import endpoint
from ...shell import Param, parse_text, shquote, var_refs, word

MARKERS = (".jobpack-done", ".jobpack-manifest")


def _join(base: str, sub: str) -> str:
    """A path below ``base``; an empty side leaves the other.

    >>> _join("/mnt/nfs/", "/mnt"), _join("", "a"), _join("x", "")
    ('/mnt/nfs/mnt', 'a', 'x')
    """
    if not base or not sub:
        return base or sub
    return base.rstrip("/") + "/" + sub.lstrip("/")


def rclone_path(text: str, storage: dict[str, m.Storage]) -> str:
    """The rclone path of a sync endpoint (still holding its placeholders)."""
    name, path = endpoint(text, storage)
    if name is None:
        return path
    place = storage[name]
    if place.kind == "rclone":
        return f"{place.rclone}:{_join(place.path, path)}"
    return _join(_join(place.local or "", place.path), path)


def tool(sync: m.Sync, storage: dict[str, m.Storage]) -> str:
    """rclone when either side is an rclone remote, else rsync (ssh hosts, local folders)."""
    kinds = {storage[n].kind for n, _ in (endpoint(t, storage) for t in (sync.from_, sync.to))
             if n is not None}
    return "rclone" if "rclone" in kinds else "lftp" if "ftp" in kinds else "rsync"


def local_source(sync: m.Sync, storage: dict[str, m.Storage]) -> bool:
    """Whether the sync reads from a folder of the machine that runs it (a path, or a
    storage of kind local), which may not exist there yet."""
    name, _path = endpoint(sync.from_, storage)
    return name is None or storage[name].kind == "local"


def rsync_end(text: str, storage: dict[str, m.Storage]) -> tuple[str, str, int | None]:
    """(host or '' for here, path, ssh port) of a sync endpoint."""
    name, path = endpoint(text, storage)
    if name is None:
        return "", path, None
    place = storage[name]
    if place.kind == "ssh":
        host = f"{place.user}@{place.ssh}" if place.user else str(place.ssh)
        return host, _join(place.path, path), place.port
    return "", _join(_join(place.local or "", place.path), path), None


def rsync_filters(sync: m.Sync) -> list[str]:
    """rsync filter options: markers never travel; excludes, then includes.

    >>> rsync_filters(m.Sync.model_validate({"from": "a", "to": "b", "include": ["*.pt"]}))[2:]
    ["'--include=*/'", "'--include=*.pt'", "'--exclude=*'", '--prune-empty-dirs']
    """
    out = [f"--exclude=/{marker}" for marker in MARKERS]
    out += [f"--exclude={p}" for p in sync.exclude]
    if sync.include:
        out += ["--include=*/", *(f"--include={p}" for p in sync.include), "--exclude=*",
                "--prune-empty-dirs"]
    return [shquote(o) for o in out]


def filters(sync: m.Sync) -> list[str]:
    """rclone --filter rules: the markers are never copied, checked or deleted; excludes
    first, then includes (with a final exclude-all when any include is given).

    >>> filters(m.Sync.model_validate({"from": "a", "to": "b", "include": ["*.pt"]}))[-4:]
    ['--filter', "'+ *.pt'", '--filter', "'- **'"]
    """
    rules = [f"- /{marker}" for marker in MARKERS]
    rules += [f"- {pattern}" for pattern in sync.exclude]
    rules += [f"+ {pattern}" for pattern in sync.include]
    if sync.include:
        rules.append("- **")
    return [w for rule in rules for w in ("--filter", shquote(rule))]


def display(text: str, static: dict[str, str]) -> str:
    """An endpoint as the help text shows it: built-ins filled in, the run id as $RUN_ID.

    >>> display("dav:{{ project }}/{{ run_id }}", {"project": "p"})
    'dav:p/$RUN_ID'
    """
    out = ""
    for part in parse_text(text)[0]:
        if isinstance(part, Param):
            out += static.get(part.name, "$RUN_ID")
        else:
            out += getattr(part, "text", "${" + getattr(part, "name", "") + "}")
    return out


def shown(sync: m.Sync, storage: dict[str, m.Storage], static: dict[str, str]) -> list[str]:
    """The two endpoints as -h and PLAN.md show them (host:path for ssh hosts)."""
    if tool(sync, storage) == "rclone":
        return [display(rclone_path(t, storage), static) for t in (sync.from_, sync.to)]
    out = []
    for text in (sync.from_, sync.to):
        name, path = endpoint(text, storage)
        if name is not None and storage[name].kind == "ftp":
            place = storage[name]
            out.append(f"ftp://{display(str(place.ftp), static)}/"
                       f"{display(_join(place.path, path), static).lstrip('/')}")
            continue
        host, path, _port = rsync_end(text, storage)
        out.append(f"{host}:{display(path, static)}" if host else display(path, static))
    return out


def platform_vars(texts: list[str], secrets: list[str]) -> list[str]:
    """Variables of the environment (not secrets, not RUN_ID) that endpoint texts use.

    >>> platform_vars(["/tmp/${NODE_NAME}", "${PASS}", "${RUN_ID}"], ["PASS"])
    ['NODE_NAME']
    """
    return sorted({v for t in texts for v in var_refs(t)} - {*secrets, "RUN_ID"})


def context(loaded: Loaded, name: str) -> dict[str, Any]:
    """What the sync's template reads (its tool's: rclone, rsync or lftp)."""
    proj = loaded.project
    sync = proj.syncs[name]
    static = {"project": proj.project, **({"user": proj.user} if proj.user else {})}
    if tool(sync, proj.storage) == "rsync":
        return _rsync_context(loaded, name, static)
    if tool(sync, proj.storage) == "lftp":
        return _lftp_context(loaded, name, static)
    ends = [rclone_path(t, proj.storage) for t in (sync.from_, sync.to)]
    parts = [parse_text(e)[0] for e in ends]
    run_id = any(isinstance(p, Param) and p.name == "run_id" for ps in parts for p in ps)
    return {"header": file_header(loaded.source.file), "name": name, "sync": sync,
            "src": word(parts[0], static), "dst": word(parts[1], static),
            "src_text": display(ends[0], static), "dst_text": display(ends[1], static),
            "filters": filters(sync), "src_local": local_source(sync, proj.storage),
            "every": seconds(sync.every) if sync.every else None, "run_id": run_id,
            "platform": platform_vars(ends, proj.secrets), "secrets": [], "tool": "rclone"}


def _rsync_context(loaded: Loaded, name: str,
                   static: dict[str, str]) -> dict[str, Any]:
    proj = loaded.project
    sync = proj.syncs[name]
    (src_host, src, p1), (dst_host, dst, p2) = (rsync_end(t, proj.storage)
                                                for t in (sync.from_, sync.to))
    parts = [parse_text(e)[0] for e in (src, dst)]
    run_id = any(isinstance(p, Param) and p.name == "run_id" for ps in parts for p in ps)
    ends = shown(sync, proj.storage, static)
    excludes = ["--exclude=./.jobpack-*", *(f"--exclude={p}" for p in sync.exclude)]
    return {"header": file_header(loaded.source.file), "name": name, "sync": sync, "tool": "rsync",
            "src": word(parts[0], static), "dst": word(parts[1], static),
            "src_host": src_host, "dst_host": dst_host, "port": p1 or p2,
            "src_local": local_source(sync, proj.storage),
            "src_text": ends[0], "dst_text": ends[1], "filters": rsync_filters(sync),
            "tar_excludes": [shquote(e) for e in excludes],
            "every": seconds(sync.every) if sync.every else None, "run_id": run_id,
            "platform": platform_vars([src, dst], proj.secrets), "secrets": []}

def _lftp_context(loaded: Loaded, name: str,
                  static: dict[str, str]) -> dict[str, Any]:
    proj = loaded.project
    sync = proj.syncs[name]
    (src_name, src), (dst_name, dst) = (endpoint(t, proj.storage)
                                        for t in (sync.from_, sync.to))
    upload = dst_name is not None and proj.storage[dst_name].kind == "ftp"
    place = proj.storage[str(dst_name if upload else src_name)]
    local = src if upload else dst
    remote = _join(place.path, dst if upload else src)
    parts = {k: parse_text(v)[0] for k, v in (
        ("host", str(place.ftp)), ("user", place.user or "anonymous"),
        ("password", place.password or ""), ("local", local), ("remote", remote))}
    texts = [str(place.ftp), place.user or "", place.password or "", local, remote]
    used = sorted({v for t in texts for v in var_refs(t)} & set(proj.secrets))
    run_id = any(isinstance(p, Param) and p.name == "run_id"
                 for key in ("local", "remote") for p in parts[key])
    ends = shown(sync, proj.storage, static)
    return {"header": file_header(loaded.source.file), "name": name, "sync": sync, "tool": "lftp",
            **{k: word(v, static) for k, v in parts.items()},
            "port": place.port, "upload": upload, "secrets": used,
            "src_local": local_source(sync, proj.storage),
            "src_text": ends[0], "dst_text": ends[1],
            "globs": [shquote(g) for g in (".jobpack-*", *sync.exclude)],
            "every": seconds(sync.every) if sync.every else None, "run_id": run_id,
            "platform": platform_vars(texts, proj.secrets)}



def plan(loaded: Loaded) -> list[Group]:
    """One script per sync, in sync/."""
    out = []
    for name in loaded.project.syncs:
        ctx = context(loaded, name)
        spec = FileSpec(f"sync/{name}.sh", f"sync/{ctx['tool']}.sh.j2", plain_context(ctx),
                        executable=True, lint="shellcheck")
        out.append(Group(f"sync/{name}", ("syncs", name), (spec,)))
    if out:
        out.append(Group("sync/runtime.sh", ("syncs",),
                         (runtime_file("sync", "sync", loaded.source.file),)))
    return out


def rows(loaded: Loaded) -> list[dict[str, Any]]:
    """PLAN.md's table of data transfers (without who runs them)."""
    proj = loaded.project
    static = {"project": proj.project, **({"user": proj.user} if proj.user else {})}
    return [{"name": n, "mode": s.mode, "every": s.every, "tool": tool(s, proj.storage),
             "from": shown(s, proj.storage, static)[0], "to": shown(s, proj.storage, static)[1]}
            for n, s in proj.syncs.items()]
