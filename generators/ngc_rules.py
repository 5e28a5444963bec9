"""What ``ngc batch run`` accepts, checked at build time: value forms of the NGC CLI's flags
(total runtime, workspaces, datasets, ports, labels, secrets, env keys) and which keys an NGC
job needs."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from . import model as m
from .validate import suggest

if TYPE_CHECKING:
    from .loader import Loc
    from .validate import Loaded, _Checker

# Keys of a job that only NGC clusters use.
NGC_ONLY = ("image", "instance", "interactive", "ports", "labels", "priority", "preempt",
            "total_runtime", "config")
RUNTIME = re.compile(r"(?i)(?=\d)(\d+D)?(\d+H)?(\d+M)?(\d+S)?")
INSTANCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SECRET = re.compile(r"[A-Za-z0-9_.-]{1,63}(:[A-Za-z0-9_.-]{1,63}){0,2}")
ENV_KEY = re.compile(r"[A-Za-z0-9_.-]{1,63}")
MOUNT = re.compile(r"/[^\s:]*")
PORT = re.compile(r"(?:(?P<name>[^:/]*):)?(?P<port>\d+)(?:/(?P<proto>TCP|UDP|HTTPS|GRPC))?")
CONFIG_KINDS = (".py", ".yaml", ".yml", ".json")
# The longest runtime NGC allows a job (7 days less an hour): interactive jobs sleep this long.
MAX_RUNTIME = "167h"


def runtime_problem(value: str | int) -> str | None:
    """Why NGC would reject ``value`` as ``--total-runtime`` (None when it accepts it).

    >>> [runtime_problem(v) for v in ("7D", "1d12h", "3600s")]
    [None, None, None]
    >>> runtime_problem(3600)
    "NGC rejects a bare number: write '3600s', or use m, h or D (e.g. 60m, 1h, 7D)"
    >>> runtime_problem("1W")
    "'1W' is not a runtime of the form [nD][nH][nM][nS] (e.g. 7D, 167h, 1D12H, 3600s)"
    """
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return (f"NGC rejects a bare number: write '{value}s', or use m, h or D "
                "(e.g. 60m, 1h, 7D)")
    if not RUNTIME.fullmatch(value):
        return (f"{value!r} is not a runtime of the form [nD][nH][nM][nS] (e.g. 7D, 167h, "
                "1D12H, 3600s)")
    return None


def port_problem(port: int | str) -> str | None:
    """Why NGC would reject ``--port`` ``port``.

    >>> [port_problem(p) for p in (6006, "tb:6006/TCP", 1729)]
    [None, None, 'port 1729 is reserved by NGC']
    >>> [port_problem(p) for p in ("tensorboard1:1/TCP", "x:80")]
    ['a port name has at most 10 characters', 'a named port needs /TCP or /UDP']
    """
    match = PORT.fullmatch(str(port))
    if not match:
        return f"{port!r} is not PORT or [name:]PORT[/TCP|UDP|HTTPS|GRPC]"
    number, name, proto = int(match["port"]), match["name"], match["proto"]
    if not 1 <= number <= 65535:
        return f"port {number} is out of range 1-65535"
    if number == 1729:
        return "port 1729 is reserved by NGC"
    if name is not None:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", name):
            return "a port name is letters and digits, starting with a letter"
        if len(name) > 10:
            return "a port name has at most 10 characters"
        if proto not in ("TCP", "UDP"):
            return "a named port needs /TCP or /UDP"
    return None


def cluster(ck: _Checker, loc: Loc, cl: m.NgcCluster) -> None:
    for key in ("org", "team", "ace"):
        value = getattr(cl, key)
        if value is not None and not INSTANCE.fullmatch(value):
            ck.add((*loc, key), f"{value!r} is not a valid NGC {key} name")
    _instances(ck, loc, cl.instance, cl.escalate)
    _mounts(ck, loc, cl)
    for i, secret in enumerate(cl.secrets):
        if not SECRET.fullmatch(secret):
            ck.add((*loc, "secrets", i), f"{secret!r} is not NAME[:KEY[:ALIAS]] (letters, "
                   "digits and _.-, each part at most 63)")
    _common(ck, loc, cl.labels, cl.total_runtime)
    for key, value in cl.env.items():
        _env(ck, (*loc, "env", key), key, value)


def _mounts(ck: _Checker, loc: Loc, cl: m.NgcCluster) -> None:
    for name, spec in cl.workspaces.items():
        if not INSTANCE.fullmatch(name):
            ck.add((*loc, "workspaces", name), f"{name!r} is not a workspace id or name", key=True)
        mount, _, mode = spec.partition(":")
        if not MOUNT.fullmatch(mount) or mode not in ("", "RW", "RO"):
            ck.add((*loc, "workspaces", name), f"{spec!r} is not MOUNT[:RW|RO] with an "
                   "absolute MOUNT (e.g. /workspace or /data:RO)")
    for ident, mount in cl.datasets.items():
        if not re.fullmatch(r"\S+", ident):
            ck.add((*loc, "datasets", ident), f"{ident!r} is not a dataset id", key=True)
        if mount != "no-mount" and not MOUNT.fullmatch(mount):
            ck.add((*loc, "datasets", ident), f"{mount!r} is not an absolute mount point "
                   "or no-mount")
    if not MOUNT.fullmatch(cl.result) or cl.result == "/":
        ck.add((*loc, "result"), f"{cl.result!r} is not an absolute mount point (e.g. /result)")
    if cl.configs is not None and not MOUNT.fullmatch(cl.configs):
        ck.add((*loc, "configs"), f"{cl.configs!r} is not an absolute path inside the jobs")


def _instances(ck: _Checker, loc: Loc, instance: str | None, ladder: list[str]) -> None:
    if instance is not None and not INSTANCE.fullmatch(instance):
        ck.add((*loc, "instance"), f"{instance!r} is not an instance name (e.g. "
               "dgx1v.16g.1.norm)")
    for i, rung in enumerate(ladder):
        if not INSTANCE.fullmatch(rung):
            ck.add((*loc, "escalate", i), f"{rung!r} is not an instance name (e.g. "
                   "dgx1v.32g.1.norm)")


def _common(ck: _Checker, loc: Loc, labels: list[str], runtime: str | int | None) -> None:
    for i, label in enumerate(labels):
        if not LABEL.fullmatch(label) or len(label) > 256:
            ck.add((*loc, "labels", i), f"{label!r} is not a label: letters, digits and _, "
                   "not starting with a digit, at most 256")
        elif label.startswith("_"):
            ck.add((*loc, "labels", i), f"{label!r}: labels starting with _ are reserved by NGC")
    if runtime is not None and (problem := runtime_problem(runtime)):
        ck.add((*loc, "total_runtime"), problem)


def _env(ck: _Checker, loc: Loc, key: str, value: m.Scalar) -> None:
    if not ENV_KEY.fullmatch(key):
        ck.add(loc, f"{key!r} is not an NGC environment variable name", key=True)
    if len(m._scalar_text(value)) > 2048:
        ck.add(loc, "NGC takes environment values of at most 2048 characters")


def job(ck: _Checker, loaded: Loaded, loc: Loc, jb: m.Job, cl: m.NgcCluster) -> None:
    """Rules of a job on an NGC cluster."""
    _image(ck, loaded, loc, jb)
    if jb.instance is None and cl.instance is None:
        ck.add(loc, f"no instance: set 'instance' here or in cluster {jb.cluster!r}")
    _instances(ck, loc, jb.instance, [])
    _common(ck, loc, jb.labels, jb.total_runtime)
    if len({*cl.labels, *jb.labels}) > 19:  # NGC's 20, less the jobpack_<tag> of each launch
        ck.add((*loc, "labels"), "NGC takes at most 20 labels per job, and each launch adds "
               "its own jobpack_<tag>: give at most 19")
    _ports(ck, loc, jb.ports)
    for key, value in jb.env.items():
        _env(ck, (*loc, "env", key), key, value)
    _no_run_id(ck, loc, jb, loaded.points[str(loc[1])].names)
    if jb.sweep is not None:
        for key in ("throttle", "chunk"):
            if key in jb.sweep.model_fields_set:
                ck.add((*loc, "sweep", key), f"{key!r} is for Slurm arrays; NGC launches one "
                       "job per point", key=True)
        if jb.interactive:
            ck.add((*loc, "sweep"), "an interactive job is a single job; it cannot sweep")
    if jb.config is not None:
        _config(ck, loaded, loc, jb, cl)


def _no_run_id(ck: _Checker, loc: Loc, jb: m.Job, params: tuple[str, ...]) -> None:
    """Configs, and env values that use sweep parameters, are fixed when the bundle is built;
    the run id and ${NAME} values are not known then."""
    texts: list[tuple[Loc, m.Scalar]] = []
    for key, value in jb.env.items():
        if isinstance(value, str) and re.search(r"\{\{\s*(" + "|".join(params) + r")\s*\}\}",
                                                value) and params:
            texts.append((("env", key), value))
    if jb.config is not None:
        texts += [(("config", "set", k), v) for k, v in jb.config.set_.items()]
    for sub, value in texts:
        if not isinstance(value, str):
            continue
        if re.search(r"\{\{\s*run_id\s*\}\}", value):
            ck.add((*loc, *sub), "'{{ run_id }}' is known only at launch, and this value is "
                   "fixed at build time: use $RUN_ID in the command (every NGC job gets "
                   "RUN_ID in its environment)")
        if sub[0] == "env" and "${" in value:
            ck.add((*loc, *sub), "an env value that uses sweep parameters is fixed at build "
                   "time and cannot also read ${NAME}; split it into two variables")


def _image(ck: _Checker, loaded: Loaded, loc: Loc, jb: m.Job) -> None:
    if jb.image is None:
        ck.add(loc, "an NGC job needs 'image' (a name in images, or a reference such as "
               "nvcr.io/ORG/REPO:TAG)")
    elif jb.image in loaded.project.images:
        if not loaded.project.images[jb.image].tags:
            ck.add((*loc, "image"), f"image {jb.image!r} has no tags to launch from")
    elif re.fullmatch(m.NAME, jb.image) and "/" not in jb.image and ":" not in jb.image:
        ck.add((*loc, "image"), f"unknown image {jb.image!r}"
               f"{suggest(jb.image, loaded.project.images)}; name one in 'images' or give a "
               "reference such as nvcr.io/ORG/REPO:TAG")


def _ports(ck: _Checker, loc: Loc, ports: list[int | str]) -> None:
    seen: set[int] = set()
    for i, port in enumerate(ports):
        if problem := port_problem(port):
            ck.add((*loc, "ports", i), problem)
            continue
        number = int(PORT.fullmatch(str(port))["port"])  # type: ignore[index]
        if number in seen:
            ck.add((*loc, "ports", i), f"port {number} is listed twice")
        seen.add(number)


def _config(ck: _Checker, loaded: Loaded, loc: Loc, jb: m.Job, cl: m.NgcCluster) -> None:
    assert jb.config is not None
    base = jb.config.base
    suffix = "." + base.rsplit(".", 1)[-1] if "." in base else ""
    if suffix not in CONFIG_KINDS:
        ck.add((*loc, "config", "base"), f"{base!r}: a config base is a .py, .yaml, .yml or "
               ".json file")
    elif suffix == ".py" and not base.startswith("/"):
        ck.add((*loc, "config", "base"), "a Python config inherits its base by the absolute "
               "path the job sees (e.g. /workspace/code/configs/train.py)")
    elif suffix != ".py":
        path = loaded.root / base
        if base.startswith("/") or not path.is_file():
            ck.add((*loc, "config", "base"), f"{base!r}: a YAML or JSON base is merged at "
                   "build time, so it must be a file of the project (a path relative to "
                   "project.yaml)")
    if cl.configs is None:
        ck.add((*loc, "config"), f"cluster {jb.cluster!r} needs 'configs': the folder inside "
               "the jobs where the bundle's config files are (e.g. on a workspace)")
    texts = [jb.command] if isinstance(jb.command, str) else list(jb.command)
    if not any(re.search(r"\{\{\s*config_path\s*\}\}", t) for t in texts):
        ck.add((*loc, "command"), "the command never uses '{{ config_path }}', the path of the "
               "point's config file")
