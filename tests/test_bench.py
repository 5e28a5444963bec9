"""bench/run.py, as a smoke test: one round on a small sweep, so that it cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def test_benchmark_runs_one_small_round(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--runs", "1",
                           "--points", "500", "--work", str(tmp_path / "work")],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "(500 sweep points, max_array_size 1001); median of 1 round(s)" in proc.stdout
    rows = [line.split("|")[1].strip() for line in proc.stdout.splitlines()
            if line.startswith("| ")][1:]
    assert rows[:4] == ["full build", "first rebuild after full build", "no-op rebuild",
                        "one-point change"]
    assert any(r.startswith("floor: render+write") for r in rows)
