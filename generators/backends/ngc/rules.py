"""What ``ngc batch run`` accepts, checked at build time: value forms of the NGC CLI's flags
(total runtime, workspaces, datasets, ports, labels, secrets, env keys) and which keys an NGC
job needs."""

from __future__ import annotations

import keyword
import math
import os
import re
from pathlib import Path
from typing import Any

import yaml

from ...errors import Problem, ProjectError
from ...loader import MAX_PROJECT_BYTES, MAX_VALUES, Loc, parse_json, parse_yaml
from ...placeholders import used_names
from ...project import model as m
from ...project.checker import Checker, Loaded, Points, is_number
from ...project.images import check_job_image
from ...project.kind import JobScope
from ...project.semantics import check_strings
from .model import NgcCluster, NgcJob

RUNTIME = re.compile(r"(?i)(?=\d)(?:(\d{1,15})D)?(?:(\d{1,15})H)?(?:(\d{1,15})M)?"
                     r"(?:(\d{1,15})S)?")
# ngc turns a runtime into a Python timedelta, which ends before a billion days.
MAX_RUNTIME_SECONDS = 1_000_000_000 * 86400 - 1
INSTANCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# ngc checks a team with re.match(r"[a-z][a-z\d_-]", team.lower()): a letter, then a letter,
# digit, '_' or '-' (ngcbase/command/args_validation.py); it takes org and ace as given. The
# values no-org, no-team and no-ace mean "none" to ngc, not a name.
TEAM = re.compile(r"[A-Za-z][A-Za-z0-9_-][A-Za-z0-9._-]*")
NOT_A_NAME = {"org": "no-org", "team": "no-team", "ace": "no-ace"}
ENV_VALUE_MAX = 2048
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# A YAML or JSON base is copied into one config per point: at most this many bytes in all.
MAX_CONFIG_OUTPUT = 256 * 1024 * 1024
LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SECRET = re.compile(r"[A-Za-z0-9_.-]{1,63}(:[A-Za-z0-9_.-]{1,63}){0,2}")
ENV_KEY = re.compile(r"[A-Za-z0-9_.-]{1,63}")
MOUNT = re.compile(r"/[^\s:]*")
PORT = re.compile(r"(?:(?P<name>[^:/]*):)?(?P<port>\d{1,6})(?:/(?P<proto>TCP|UDP|HTTPS|GRPC))?")
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
    >>> runtime_problem("1000000000D")
    "'1000000000D' is longer than ngc can represent (less than 1000000000 days)"
    """
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        shown = value if len(str(value)) < 20 else "N"
        return (f"NGC rejects a bare number: write '{shown}s', or use m, h or D "
                "(e.g. 60m, 1h, 7D)")
    match = RUNTIME.fullmatch(value)
    if not match:
        return (f"{value!r} is not a runtime of the form [nD][nH][nM][nS] (e.g. 7D, 167h, "
                "1D12H, 3600s)")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    if ((days * 24 + hours) * 60 + minutes) * 60 + seconds > MAX_RUNTIME_SECONDS:
        return f"{value!r} is longer than ngc can represent (less than 1000000000 days)"
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


def name_problem(key: str, value: str) -> str | None:
    """Why ngc would refuse ``value`` as ``--org``, ``--team`` or ``--ace`` (or read it as
    something else than a name).

    >>> [name_problem("team", t) for t in ("swaiinf", "ml-ops", "no-team")]
    [None, None, "'no-team' tells ngc to use no team; leave team out instead"]
    >>> print(name_problem("team", "a"))  # doctest: +NORMALIZE_WHITESPACE
    'a' is not a valid NGC team name: ngc takes a letter, then letters, digits, '_' or '-'
    (at least two characters)
    """
    if value == NOT_A_NAME[key]:
        return f"{value!r} tells ngc to use no {key}; leave {key} out instead"
    if key == "team" and not TEAM.fullmatch(value):
        return (f"{value!r} is not a valid NGC team name: ngc takes a letter, then letters, "
                "digits, '_' or '-' (at least two characters)")
    if not INSTANCE.fullmatch(value):
        return (f"{value!r} is not a valid NGC {key} name: use letters, digits, '_', '.' and "
                "'-', starting with a letter or digit")
    return None


def cluster(ck: Checker, loc: Loc, cl: NgcCluster) -> None:
    for key in ("org", "team", "ace"):
        value = getattr(cl, key)
        if value is not None and (problem := name_problem(key, value)):
            ck.add((*loc, key), problem)
    _instances(ck, loc, cl.instance, cl.escalate)
    _mounts(ck, loc, cl)
    for i, secret in enumerate(cl.secrets):
        if not SECRET.fullmatch(secret):
            ck.add((*loc, "secrets", i), f"{secret!r} is not NAME[:KEY[:ALIAS]] (letters, "
                   "digits and _.-, each part at most 63)")
    _common(ck, loc, cl.labels, cl.total_runtime)
    for key, value in cl.env.items():
        _env(ck, (*loc, "env", key), key, value)


def _mounts(ck: Checker, loc: Loc, cl: NgcCluster) -> None:
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


def _instances(ck: Checker, loc: Loc, instance: str | None, ladder: list[str]) -> None:
    if instance is not None and not INSTANCE.fullmatch(instance):
        ck.add((*loc, "instance"), f"{instance!r} is not an instance name (e.g. "
               "dgx1v.16g.1.norm)")
    for i, rung in enumerate(ladder):
        if not INSTANCE.fullmatch(rung):
            ck.add((*loc, "escalate", i), f"{rung!r} is not an instance name (e.g. "
                   "dgx1v.32g.1.norm)")


def _common(ck: Checker, loc: Loc, labels: list[str], runtime: str | int | None) -> None:
    for i, label in enumerate(labels):
        if not LABEL.fullmatch(label) or len(label) > 256:
            ck.add((*loc, "labels", i), f"{label!r} is not a label: letters, digits and _, "
                   "not starting with a digit, at most 256")
        elif label.startswith("_"):
            ck.add((*loc, "labels", i), f"{label!r}: labels starting with _ are reserved by NGC")
    if runtime is not None and (problem := runtime_problem(runtime)):
        ck.add((*loc, "total_runtime"), problem)


def _env(ck: Checker, loc: Loc, key: str, value: m.Scalar) -> None:
    if not ENV_KEY.fullmatch(key):
        ck.add(loc, f"{key!r} is not an NGC environment variable name", key=True)
    if problem := env_value_problem(m._scalar_text(value)):
        ck.add(loc, problem)


def env_value_problem(text: str) -> str | None:
    r"""Why ngc would refuse ``text`` as the value of ``--env-var KEY:VALUE``: its check is
    ``[A-Za-z0-9_.-]{1,63}:.{0,2048}``, and ``.`` matches anything but a newline.

    >>> env_value_problem("a b"), env_value_problem("a\nb")
    (None, 'ngc refuses a newline in an environment value')
    """
    if "\n" in text:
        return "ngc refuses a newline in an environment value"
    if len(text) > ENV_VALUE_MAX:
        return f"NGC takes environment values of at most {ENV_VALUE_MAX} characters"
    return None


def options(job: m.Job) -> NgcJob:
    """The NGC keys of a job on an NGC cluster."""
    assert isinstance(job.options, NgcJob), "not a job on an NGC cluster"
    return job.options


def job(ck: Checker, loaded: Loaded, scope: JobScope) -> None:
    """Rules of a job on an NGC cluster."""
    loc, jb, opts, cl = scope.loc, scope.job, options(scope.job), scope.cluster
    assert isinstance(cl, NgcCluster)
    _image(ck, loaded, loc, opts)
    if opts.instance is None and cl.instance is None:
        ck.add(loc, f"no instance: set 'instance' here or in cluster {jb.cluster!r}")
    _instances(ck, loc, opts.instance, [])
    _common(ck, loc, opts.labels, opts.total_runtime)
    if len({*cl.labels, *opts.labels}) > 19:  # NGC's 20, less the jobpack_<tag> of each launch
        ck.add((*loc, "labels"), "NGC takes at most 20 labels per job, and each launch adds "
               "its own jobpack_<tag>: give at most 19")
    _ports(ck, loc, opts.ports)
    for key, value in jb.env.items():
        _env(ck, (*loc, "env", key), key, value)
    for key, value in loaded.project.env.items():  # sent with every NGC job too
        _env(ck, ("env", key), key, value)
    _no_run_id(ck, loc, jb, scope.points.names)
    _points(ck, loaded, loc, jb)
    _carried(ck, loc, jb, scope.points)
    if jb.sweep is not None and opts.interactive:
        ck.add((*loc, "sweep"), "an interactive job is a single job; it cannot sweep")
    if opts.config is not None:
        check_strings(ck, (*loc, "config"), opts.config.model_dump(by_alias=True), scope.known,
                      params=scope.params)
        _config(ck, loaded, loc, jb, cl)


def _no_run_id(ck: Checker, loc: Loc, jb: m.Job, params: tuple[str, ...]) -> None:
    """Configs, and env values that use sweep parameters, are fixed when the bundle is built;
    the run id and ${NAME} values are not known then."""
    texts: list[tuple[Loc, m.Scalar]] = []
    for key, value in jb.env.items():
        if isinstance(value, str) and re.search(r"\{\{\s*(" + "|".join(params) + r")\s*\}\}",
                                                value) and params:
            texts.append((("env", key), value))
    config = options(jb).config
    if config is not None:
        texts += [(("config", "set", k), v) for k, v in config.set_.items()]
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


def _image(ck: Checker, loaded: Loaded, loc: Loc, jb: NgcJob) -> None:
    if jb.image is None:
        ck.add(loc, "an NGC job needs 'image' (a name in images, or a reference such as "
               "nvcr.io/ORG/REPO:TAG)")
    else:
        check_job_image(ck, loaded.project.images, (*loc, "image"), jb.image)


def _ports(ck: Checker, loc: Loc, ports: list[int | str]) -> None:
    seen: set[int] = set()
    for i, port in enumerate(ports):
        if problem := port_problem(port):
            ck.add((*loc, "ports", i), problem)
            continue
        number = int(PORT.fullmatch(str(port))["port"])  # type: ignore[index]
        if number in seen:
            ck.add((*loc, "ports", i), f"port {number} is listed twice")
        seen.add(number)


def _config(ck: Checker, loaded: Loaded, loc: Loc, jb: m.Job, cl: NgcCluster) -> None:
    config = options(jb).config
    assert config is not None
    base = config.base
    suffix = "." + base.rsplit(".", 1)[-1] if "." in base else ""
    if suffix not in CONFIG_KINDS:
        ck.add((*loc, "config", "base"), f"{base!r}: a config base is a .py, .yaml, .yml or "
               ".json file")
    elif suffix == ".py" and not base.startswith("/"):
        ck.add((*loc, "config", "base"), "a Python config inherits its base by the absolute "
               "path the job sees (e.g. /workspace/code/configs/train.py)")
    elif suffix != ".py":
        _data_base(ck, loaded, loc, jb, suffix)
    if cl.configs is None:
        ck.add((*loc, "config"), f"cluster {jb.cluster!r} needs 'configs': the folder inside "
               "the jobs where the bundle's config files are (e.g. on a workspace)")
    texts = [jb.command] if isinstance(jb.command, str) else list(jb.command)
    if not any(re.search(r"\{\{\s*config_path\s*\}\}", t) for t in texts):
        ck.add((*loc, "command"), "the command never uses '{{ config_path }}', the path of the "
               "point's config file")
    _set(ck, (*loc, "config", "set"), config.set_, python=suffix == ".py")


def _set(ck: Checker, loc: Loc, values: dict[str, m.Scalar], *, python: bool) -> None:
    """Keys of ``config.set`` name places in the config; a Python config gets them as code
    (``a = dict(b=...)``), so there each part must be an identifier."""
    for key, value in values.items():
        if problem := set_key_problem(key, python=python):
            ck.add((*loc, key), problem, key=True)
            continue
        parts = key.split(".")
        for n in range(1, len(parts)):
            if ".".join(parts[:n]) in values:
                ck.add((*loc, key), f"{key!r} sets a key inside {'.'.join(parts[:n])!r}, "
                       "which is also set to a value here", key=True)
                break
        if isinstance(value, int | float) and not isinstance(value, bool) \
                and not is_number(value):
            ck.add((*loc, key), f"{m._scalar_text(value)} cannot be written as a config "
                   "number: use a finite decimal number, or quote it to pass it as text")


def set_key_problem(key: str, *, python: bool) -> str | None:
    """Why ``key`` cannot be a key of ``config.set``.

    >>> set_key_problem("model.lr", python=True) is None
    True
    >>> print(set_key_problem("a.class", python=True))  # doctest: +NORMALIZE_WHITESPACE
    'a.class': in a Python config each part of a dotted key is an identifier that is not a
    Python keyword
    >>> set_key_problem("_base_", python=True)
    "'_base_' is the base the config inherits; it cannot be set"
    >>> set_key_problem("a..b", python=False)
    "'a..b' has an empty part between dots"
    """
    parts = key.split(".")
    if not all(parts):
        return f"{key!r} has an empty part between dots"
    if not python:
        return None
    if parts[0] == "_base_":
        return f"{key!r} is the base the config inherits; it cannot be set"
    if not all(p.isascii() and p.isidentifier() and not keyword.iskeyword(p) for p in parts):
        return (f"{key!r}: in a Python config each part of a dotted key is an identifier that "
                "is not a Python keyword")
    return None


def _data_base(ck: Checker, loaded: Loaded, loc: Loc, jb: m.Job, suffix: str) -> None:
    """A YAML or JSON base is read and merged at build time: it must be a file inside the
    project (a symlink may not lead out of it), parse, hold a mapping, and stay small enough
    that one copy per point is a sane amount of output."""
    config = options(jb).config
    assert config is not None
    base, bloc = config.base, (*loc, "config", "base")
    real = Path(os.path.realpath(loaded.root / base))
    if base.startswith("/") or not real.is_relative_to(os.path.realpath(loaded.root)):
        ck.add(bloc, f"{base!r}: a YAML or JSON base is merged at build time, so it must be a "
               "file of the project (a path relative to project.yaml, inside its folder)")
        return
    size = real.stat().st_size * loaded.points[str(loc[1])].size if real.is_file() else 0
    if size > MAX_CONFIG_OUTPUT:
        ck.add(bloc, f"one copy of config base {base!r} per point would write about {size} "
               f"bytes (at most {MAX_CONFIG_OUTPUT}); use a Python base, which is inherited")
        return
    parse = parse_json if suffix == ".json" else _parse_yaml_base
    found, data = ck.data_file(bloc, base, f"config base {base!r}", parse, MAX_PROJECT_BYTES)
    if found and data is not None and not isinstance(data, dict):
        ck.add(bloc, f"config base {base!r} must hold a mapping of keys, not "
               f"{type(data).__name__}")


def _parse_yaml_base(text: str, display: str) -> Any:
    """A YAML base as ngc.py reads it (PyYAML's safe loader), after the loader's own bounds
    on nesting and aliases; NaN is refused, as it would not compare equal to itself when the
    written config is checked."""
    parse_yaml(text, display, any_tag=True)
    try:  # the safe loader's rules, at the speed of its C version
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ProjectError([Problem(display, line, col, "yaml", f"{exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise ProjectError([Problem(display, 1, 1, "yaml", str(exc))]) from None
    stack, seen = [data], 0
    while stack and seen <= MAX_VALUES:
        value, seen = stack.pop(), seen + 1
        if isinstance(value, float) and math.isnan(value):
            raise ProjectError([Problem(display, 1, 1, "yaml", "NaN (.nan) is not supported in "
                                        "a config base")])
        if isinstance(value, dict | list):
            stack += value.values() if isinstance(value, dict) else value
    return data


def _points(ck: Checker, loaded: Loaded, loc: Loc, jb: m.Job) -> None:
    """Every point is its own NGC job, named after its values: points must differ, and env
    values filled with a point's values must still be ones ngc accepts."""
    points = loaded.points[str(loc[1])]
    first: dict[tuple[str, ...], int] = {}
    for i, row in enumerate(points.rows):
        if row in first:
            ck.add((*loc, "sweep"), f"point {i} repeats point {first[row]} (same values); NGC "
                   "names each job after its point's values, so points must differ")
            break
        first[row] = i
    static = {"project": loaded.project.project, "job": str(loc[1]),
              "user": loaded.project.user or ""}
    for key, value in jb.env.items():
        text = m._scalar_text(value)
        for i, row in enumerate(points.rows if PLACEHOLDER.search(text) else ()):
            values = {**static, **dict(zip(points.names, row, strict=True))}
            filled = PLACEHOLDER.sub(lambda mt: values.get(mt[1], mt[0]), text)  # noqa: B023
            if problem := env_value_problem(filled):
                ck.add((*loc, "env", key), f"with the values of point {i}: {problem}")
                break


def _carried(ck: Checker, loc: Loc, job: m.Job, points: Points) -> None:
    """NGC jobs get their parameters' values as --env-var KEY:VALUE, which ngc takes only
    without line breaks and up to 2048 characters."""
    columns = {n: [row[i] for row in points.rows] for i, n in enumerate(points.names)}
    for ref in used_names(job.command):
        for n, value in enumerate(columns.get(ref, [])):
            if "\n" in value or len(value) > 2048:
                why = "a line break" if "\n" in value else "more than 2048 characters"
                ck.add((*loc, "command"), f"'{{{{ {ref} }}}}': value {n + 1} has {why}; an "
                       "NGC job receives each value as an environment variable "
                       "(ngc batch run --env-var), which cannot carry it")
                break
