"""A test double of the ``runai`` CLI (v2), for generated Run:ai scripts.

No package carries the CLI's grammar (see the reference's Run:ai section), so this double
follows it: ``runai workspace|training [standard] submit``, ``list``, ``describe``, ``logs``,
``delete`` and ``runai workload delete``. It refuses unknown flags, a missing value, bad
``-g``/GPU/CPU/memory values, ``-g`` together with ``--gpu-request-type``, ``--name-prefix``
together with a positional name, a name that is not a DNS-1123 label, ``--preemptible`` on
training, ``--parallelism``/``--runs``/``--backoff-limit`` on workspaces, a name the project
already has, CPU requests that are not positive finite numbers, labels that are not
Kubernetes ``key=value`` labels, and malformed ``--nfs``/``--existing-pvc``/``--port``/
``--external-url`` values. ``-e`` is ``--environment-variable`` (generation C); the long
``--environment`` names an environment asset, and this double has none. Values of repeated
flags are taken whole, never split at ','. Labels are kept and shown by ``describe -o json``
and ``list --json`` (``"labels": {...}``).

State lives in a folder (``RUNAI_DOUBLE_DIR``): ``state.json`` (the workloads, each with
the states it plays: one step each time it is listed or described) and ``calls.jsonl``
(every argv, byte-exact, one JSON array per line), under a file lock. ``bin/runai`` runs
this module; tests use ``RunaiDouble`` to read calls and workloads and to make points fail.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BIN = Path(__file__).parent / "bin"
LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
QUANTITY = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]+)?(K|M|G|T|Ki|Mi|Gi|Ti)")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DURATION = re.compile(r"[0-9]+(s|m|h)")
TYPES = ("workspace", "training")
PLAYS = {"workspace": ["Pending", "Running"], "training": ["Pending", "Running", "Succeeded"]}
FAILS = ["Pending", "Running", "Failed"]


class Refused(Exception):
    """What the CLI would say before exiting with an error."""


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise Refused(f'invalid argument "{text}": not a number') from None
    if not math.isfinite(value) or value <= 0:
        raise Refused(f'invalid argument "{text}": a positive number')
    return value


LABEL_KEY = re.compile(r"([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?"
                       r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")


def _label(text: str) -> str:
    key, eq, value = text.partition("=")
    if not eq or not LABEL_KEY.fullmatch(key) or not LABEL_VALUE.fullmatch(value):
        raise Refused(f'invalid label "{text}": expected KEY=VALUE (Kubernetes label)')
    return text


def _asset(text: str) -> str:
    raise Refused(f'environment asset "{text}" not found (-e is --environment-variable)')


def _positive_int(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text) or int(text) < 1:
        raise Refused(f'invalid argument "{text}": expected a positive whole number')
    return int(text)


def _int(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text):
        raise Refused(f'invalid argument "{text}": expected a whole number')
    return int(text)


def _quantity(text: str) -> str:
    if not QUANTITY.fullmatch(text):
        raise Refused(f'invalid quantity "{text}" (e.g. 1G, 500M)')
    return text


def _keys(text: str, required: set[str], optional: set[str],
          flags: frozenset[str] = frozenset()) -> dict[str, str]:
    """A KEY=VALUE,KEY=VALUE value: exactly the required keys, some optional ones, and bare
    flags (``readwrite``)."""
    out: dict[str, str] = {}
    for part in text.split(","):
        key, eq, value = part.partition("=")
        if not eq and key in flags:
            out[key] = ""
            continue
        if not eq or key not in required | optional or key in out or not value:
            raise Refused(f'invalid value "{text}": unknown, repeated or empty key "{key}"')
        out[key] = value
    if missing := required - set(out):
        raise Refused(f'invalid value "{text}": missing {", ".join(sorted(missing))}')
    return out


def _portion(text: str) -> float:
    value = _float(text)
    if not 0 < value <= 1:
        raise Refused(f'invalid GPU portion "{text}": between 0 and 1')
    return value


def _port(text: str) -> str:
    keys = _keys(text, {"container"}, {"service-type", "external"})
    for key in ("container", "external"):
        if key in keys and not 1 <= _int(keys[key]) <= 65535:
            raise Refused(f'invalid port "{text}"')
    if keys.get("service-type", "NodePort") not in ("NodePort", "LoadBalancer", "ClusterIP",
                                                    "ExternalUrl"):
        raise Refused(f'invalid service type in "{text}"')
    return text


def _env(text: str) -> str:
    name, eq, _value = text.partition("=")
    if not eq or not ENV_NAME.fullmatch(name):
        raise Refused(f'invalid environment variable "{text}": expected NAME=VALUE')
    return text


# Value flags of `submit`: name -> check (None: any text), and whether it repeats.
def _pull(text: str) -> str:
    if text not in ("Always", "IfNotPresent", "Never"):
        raise Refused(f'invalid image pull policy "{text}"')
    return text


def _request_type(text: str) -> str:
    if text not in ("portion", "memory"):
        raise Refused(f'invalid gpu request type "{text}": portion or memory')
    return text


def _duration(text: str) -> str:
    if not DURATION.fullmatch(text):
        raise Refused(f'invalid duration "{text}"')
    return text


def _any(text: str) -> str:
    return text


SUBMIT_VALUES: dict[str, Any] = {
    "--project": _any, "--image": _any, "--environment-variable": _env,
    "--environment": _asset, "--name-prefix": _any,
    "--gpu-devices-request": _positive_int, "--gpu-request-type": _request_type,
    "--gpu-portion-request": _portion, "--gpu-portion-limit": _portion,
    "--gpu-memory-request": _quantity, "--gpu-memory-limit": _quantity,
    "--cpu-core-request": _float, "--cpu-core-limit": _float,
    "--cpu-memory-request": _quantity, "--cpu-memory-limit": _quantity,
    "--existing-pvc": lambda t: _keys(t, {"claimname", "path"}, set(), frozenset({"ro"})),
    "--new-pvc": lambda t: _keys(t, {"claimname", "size", "path"}, {"storageclass"}, frozenset(
        {"accessmode-rwo", "accessmode-rom", "accessmode-rwm", "ro", "ephemeral"})),
    "--host-path": lambda t: _keys(t, {"path", "mount"}, {"mount-propagation"},
                                   frozenset({"readwrite"})),
    "--nfs": lambda t: _keys(t, {"path", "server", "mountpath"}, set(), frozenset({"readwrite"})),
    "--s3": lambda t: _keys(t, {"name", "bucket", "path"}, {"accesskey", "url"}),
    "--git-sync": lambda t: _keys(t, {"name", "repository", "path"}, {"secret", "rev"}),
    "--image-pull-policy": _pull, "--backoff-limit": _int, "--working-dir": _any,
    "--node-type": _any, "--node-pools": _any, "--run-as-uid": _int, "--run-as-gid": _int,
    "--label": _label, "--annotation": _any, "--port": _port,
    "--external-url": lambda t: _keys(t, {"container"}, {"url", "authusers", "authgroups"}),
    "--toleration": _any, "--auto-deletion-time-after-completion": _duration,
    "--wait-for-submit": _duration, "--pod-running-timeout": _duration,
    "--termination-grace-period": _duration, "--parallelism": _positive_int,
    "--runs": _positive_int,
}
SUBMIT_BOOLS = {"--command", "--large-shm", "--host-ipc", "--host-network", "--run-as-user",
                "--attach", "--tty", "--stdin", "--preemptible"}
SHORT = {"-p": "--project", "-i": "--image", "-e": "--environment-variable",
         "-g": "--gpu-devices-request", "-c": "--command", "-t": "--tty"}
ALIASES: dict[str, str] = {}
REPEATED = {"--environment-variable", "--existing-pvc", "--new-pvc", "--host-path", "--nfs", "--s3",
            "--git-sync", "--node-pools", "--label", "--annotation", "--port",
            "--external-url", "--toleration"}
GLOBAL_BOOLS = {"--debug", "-d", "--quiet", "-q", "--verbose"}


def parse(args: list[str], values: dict[str, Any], bools: set[str],
          positional: int) -> tuple[list[str], dict[str, Any], list[str]]:
    """(positionals, flags, words after --) of ``args``, as cobra/pflag reads them: each
    value flag once unless it repeats, ``--flag value`` or ``--flag=value``."""
    pos: list[str] = []
    flags: dict[str, Any] = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest = args[i + 1:]
            break
        if not arg.startswith("-") or arg == "-":
            pos.append(arg)
            i += 1
            continue
        i = _flag(args, i, values, bools, flags)
    if len(pos) > positional:
        raise Refused(f"accepts at most {positional} arg(s), received {len(pos)}")
    return pos, flags, rest


def _flag(args: list[str], i: int, values: dict[str, Any], bools: set[str],
          flags: dict[str, Any]) -> int:
    """Read the flag at ``args[i]`` into ``flags``; return the index after it."""
    name, eq, inline = args[i].partition("=")
    name = ALIASES.get(SHORT.get(name, name), SHORT.get(name, name))
    if name in bools or name in GLOBAL_BOOLS:
        if eq and inline not in ("true", "false"):
            raise Refused(f'invalid argument "{inline}" for "{name}" flag')
        flags[name] = inline != "false"
        return i + 1
    if name not in values:
        raise Refused(f"unknown flag: {name}")
    if not eq and i + 1 >= len(args):
        raise Refused(f"flag needs an argument: {name}")
    value = inline if eq else args[i + 1]
    values[name](value)  # refuses a bad value
    if name in REPEATED:
        flags.setdefault(name, []).append(value)
    elif name in flags:
        raise Refused(f"flag {name} given twice")
    else:
        flags[name] = value
    return i + (1 if eq else 2)


class State:
    """The double's folder: workloads, calls, and the names made to fail."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def held(self) -> Iterator[dict[str, Any]]:
        with open(self.folder / "lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            path = self.folder / "state.json"
            data = json.loads(path.read_text()) if path.exists() else {
                "workloads": [], "fail": {}, "refuse": [], "created": 0}
            yield data
            path.write_text(json.dumps(data, indent=1))

    def record(self, argv: list[str]) -> None:
        with open(self.folder / "calls.jsonl", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            fh.write(json.dumps(argv) + "\n")


def _find(data: dict[str, Any], name: str, project: str, kind: str | None) -> dict[str, Any]:
    for w in data["workloads"]:
        if w["name"] == name and w["project"] == project and kind in (None, w["type"]):
            return w
    raise Refused(f"workload {name} not found in project {project}")


def _look(w: dict[str, Any]) -> str:
    """The workload's state now; the next look sees the next state of its play."""
    state: str = w["states"][min(w["step"], len(w["states"]) - 1)]
    w["step"] += 1
    return state


def _public(w: dict[str, Any], state: str) -> dict[str, Any]:
    return {"name": w["name"], "type": w["type"], "project": w["project"], "status": state,
            "image": w["image"], "createdAt": w["created"], "labels": w.get("labels", {})}


def submit(data: dict[str, Any], kind: str, args: list[str]) -> str:
    pos, flags, command = parse(args, SUBMIT_VALUES, SUBMIT_BOOLS, 1)
    if pos and "--name-prefix" in flags:
        raise Refused("a positional name and --name-prefix cannot be given together")
    if not pos and "--name-prefix" not in flags:
        raise Refused("a workload name is required (or --name-prefix)")
    name = pos[0] if pos else f"{flags['--name-prefix']}-{data['created']:05d}"
    _submit_rules(kind, name, flags, command)
    if name in data["refuse"]:
        raise Refused(f"workload {name} was refused (test double)")
    for w in data["workloads"]:
        if w["name"] == name and w["project"] == flags["--project"]:
            raise Refused(f'workload "{name}" already exists in project {flags["--project"]}')
    fail = data["fail"].get(name, 0)
    if fail:
        data["fail"][name] = fail - 1
    data["created"] += 1
    data["workloads"].append({
        "name": name, "type": kind, "project": flags["--project"], "image": flags["--image"],
        "env": flags.get("--environment-variable", []), "command": command, "step": 0,
        "labels": dict(v.partition("=")[::2] for v in flags.get("--label", [])),
        "states": FAILS if fail else PLAYS[kind], "created": data["created"],
        "argv": args})
    return f'The {kind} "{name}" has been submitted successfully\n'


def _submit_rules(kind: str, name: str, flags: dict[str, Any], command: list[str]) -> None:
    if not LABEL.fullmatch(name) or len(name) > 63:
        raise Refused(f'invalid name "{name}": a DNS-1123 label (lowercase letters, digits '
                      "and '-', at most 63)")
    for need in ("--project", "--image"):
        if need not in flags:
            raise Refused(f"required flag {need} not set")
    _gpu(flags)
    if kind == "training" and "--preemptible" in flags:
        raise Refused("unknown flag: --preemptible")
    if kind == "workspace" and {"--parallelism", "--runs", "--backoff-limit"} & set(flags):
        raise Refused("unknown flag: --parallelism/--runs/--backoff-limit")
    if flags.get("--command") and not command:
        raise Refused("--command needs the command after --")


def _gpu(flags: dict[str, Any]) -> None:
    kind = flags.get("--gpu-request-type")
    if "--gpu-devices-request" in flags and kind:
        raise Refused("-g (whole GPUs) cannot be combined with --gpu-request-type")
    needs = {"portion": "--gpu-portion-request", "memory": "--gpu-memory-request"}
    if kind and needs[kind] not in flags:
        raise Refused(f"--gpu-request-type {kind} needs {needs[kind]}")
    for other, flag in needs.items():
        if flag in flags and kind != other:
            raise Refused(f"{flag} needs --gpu-request-type {other}")


LIST_VALUES = {"--project": _any, "--status": _any, "--limit": _positive_int,
               "--offset": _int}
LIST_BOOLS = {"--all", "-A", "--json", "--yaml", "--table", "--no-headers"}


def list_(data: dict[str, Any], kind: str, args: list[str]) -> str:
    _pos, flags, _ = parse(args, LIST_VALUES, LIST_BOOLS, 0)
    if sum(bool(flags.get(f)) for f in ("--json", "--yaml", "--table")) > 1:
        raise Refused("--json, --yaml and --table cannot be combined")
    chosen = [w for w in data["workloads"] if w["type"] == kind
              and (flags.get("--all") or flags.get("-A") or w["project"] == flags.get("--project"))]
    offset, limit = int(flags.get("--offset", 0)), int(flags.get("--limit", 50))
    shown = [_public(w, _look(w)) for w in chosen[offset:offset + limit]]
    if "--status" in flags:
        shown = [w for w in shown if w["status"] == flags["--status"]]
    if flags.get("--json"):
        return json.dumps(shown, indent=2) + "\n"
    lines = [] if flags.get("--no-headers") else ["Workload  Type  Status  Project"]
    return "\n".join([*lines, *(f"{w['name']}  {kind}  {w['status']}  {w['project']}"
                                for w in shown)]) + "\n"


def describe(data: dict[str, Any], kind: str, args: list[str]) -> str:
    values = {"--project": _any, "--uuid": _any, "--output": _any, "--pod-limit": _int,
              "--event-limit": _int}
    bools = {"--general", "--compute", "--pods", "--events", "--networks", "--containers"}
    pos, flags, _ = parse([("--output" if a == "-o" else "--uuid" if a == "-u" else a)
                           for a in args], values, bools, 1)
    if not pos:
        raise Refused("a workload name is required")
    w = _find(data, pos[0], str(flags.get("--project")), kind)
    state = _look(w)
    if flags.get("--output") not in (None, "table", "json", "yaml"):
        raise Refused(f'invalid output format "{flags["--output"]}"')
    if flags.get("--output") == "json":
        return json.dumps({**_public(w, state), "environment": w.get("env", [])},
                          indent=2) + "\n"
    env = "".join(f"  {e}\n" for e in w.get("env", []))
    return (f"Name: {w['name']}\nType: {kind}\nStatus: {state}\nImage: {w['image']}\n"
            f"Environment:\n{env}")


def logs(data: dict[str, Any], kind: str, args: list[str]) -> str:
    values = {"--project": _any, "--tail": _int, "--since": _duration, "--pod": _any,
              "--container": _any}
    pos, flags, _ = parse(args, values, {"--follow", "-f", "--timestamps"}, 1)
    if not pos:
        raise Refused("a workload name is required")
    w = _find(data, pos[0], str(flags.get("--project")), kind)
    lines = [f"{w['name']}: log line {i}" for i in range(1, 11)]
    if "--tail" in flags:
        lines = lines[len(lines) - int(flags["--tail"]):] if int(flags["--tail"]) else []
    return "".join(line + "\n" for line in lines)


def delete(data: dict[str, Any], kind: str | None, args: list[str]) -> str:
    values = {"--project": _any, "--type": _any, "--framework": _any, "--uuid": _any}
    pos, flags, _ = parse(args, values, {"--yes", "-y"}, 1000)
    if not pos:
        raise Refused("at least one workload name is required")
    if kind is None:
        kind = flags.get("--type")
        if kind not in ("training", "workspace", "inference"):
            raise Refused(f'invalid --type "{kind}": training, workspace or inference')
    elif len(pos) > 1:
        raise Refused(f"accepts at most 1 arg(s), received {len(pos)}")
    found = [_find(data, n, str(flags.get("--project")), kind) for n in pos]
    data["workloads"] = [w for w in data["workloads"] if w not in found]
    return "".join(f'The {kind} "{w["name"]}" has been deleted\n' for w in found)


def run(folder: Path, argv: list[str]) -> tuple[int, str, str]:
    state = State(folder)
    state.record(argv)
    words = [a for a in argv if a not in GLOBAL_BOOLS]
    try:
        with state.held() as data:
            return 0, _dispatch(data, words), ""
    except Refused as exc:
        return 1, "", f"Error: {exc}\n"


def _dispatch(data: dict[str, Any], words: list[str]) -> str:
    if words[:2] == ["workload", "delete"]:
        return delete(data, None, words[2:])
    if len(words) < 2 or words[0] not in TYPES:
        raise Refused(f"unknown command: {' '.join(words[:2])}")
    kind, verb, rest = words[0], words[1], words[2:]
    if kind == "training" and verb == "standard":
        verb, rest = (rest[0], rest[1:]) if rest else ("", [])
    handlers = {"submit": submit, "list": list_, "describe": describe, "logs": logs,
                "delete": delete}
    if verb not in handlers:
        raise Refused(f'unknown command "{verb}" for "runai {kind}"')
    return str(handlers[verb](data, kind, rest))


class RunaiDouble:
    """The tests' handle on the double's folder."""

    def __init__(self, folder: Path) -> None:
        self.state = State(folder)

    @property
    def env(self) -> dict[str, str]:
        python = Path(sys.executable).parent
        return {"PATH": os.pathsep.join((str(BIN), str(python), os.environ["PATH"])),
                "RUNAI_DOUBLE_DIR": str(self.state.folder)}

    def calls(self) -> list[list[str]]:
        path = self.state.folder / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def submits(self) -> list[list[str]]:
        return [c for c in self.calls() if "submit" in c[:3]]

    def workloads(self) -> list[dict[str, Any]]:
        with self.state.held() as data:
            return list(data["workloads"])

    def fail(self, *names: str) -> None:
        """Make the named workloads end Failed: those that exist, from now on; others, at
        their next submission."""
        with self.state.held() as data:
            for name in names:
                current = [w for w in data["workloads"] if w["name"] == name]
                for w in current:
                    w["states"], w["step"] = ["Failed"], 0
                if not current:
                    data["fail"][name] = data["fail"].get(name, 0) + 1

    def refuse(self, *names: str) -> None:
        """Make runai refuse to submit the named workloads (until ``allow``)."""
        with self.state.held() as data:
            data["refuse"] += list(names)

    def allow(self, *names: str) -> None:
        with self.state.held() as data:
            data["refuse"] = [n for n in data["refuse"] if n not in names]


if __name__ == "__main__":
    code, out, err = run(Path(os.environ["RUNAI_DOUBLE_DIR"]), sys.argv[1:])
    sys.stdout.write(out)
    sys.stderr.write(err)
    sys.exit(code)
