"""bench/run.py, as a smoke test: one round on small sweeps, so that it cannot rot."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def signac_flow_installed() -> bool:
    try:
        importlib.metadata.version("signac-flow")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def test_benchmark_runs_one_small_round(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--runs", "1",
                           "--points", "500", "--ngc-points", "200", "--peer-points", "50",
                           "--work", str(tmp_path / "work")],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "(500 sweep points, max_array_size 1001); median of 1 round(s)" in proc.stdout
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in proc.stdout.splitlines() if line.startswith("| ")}
    names = list(rows)[1:]
    assert names[:4] == ["full build", "first rebuild after full build", "no-op rebuild",
                         "one-point change"]
    assert any(r.startswith("floor: render+write") for r in names)
    # Targets are ratios to floors of the same round.
    assert rows["no-op rebuild"][1] == "doit floor"
    assert rows["no-op rebuild"][3] == "<= 1.5x floor"
    assert rows["one-point change"][1] == "render floor"
    assert rows["one-point change"][3] == "<= 4x floor"
    assert rows["NGC full build (200 configs)"][1] == "write floor (NGC)"
    assert rows["NGC full build (200 configs)"][3] == "<= 3x floor"
    assert any(r.startswith("floor: write 20") and "NGC" in r for r in names)
    peer = [r for r in names if r.startswith("peer: ")]
    if signac_flow_installed():
        assert peer == ["peer: jobpack cold build, 50-point Slurm sweep, lint",
                        "peer: jobpack cold build, 50 points, lint, empty caches",
                        "peer: signac-flow submit --pretend, 50 jobs"]
    else:
        assert peer == []
        assert "peer: skipped, signac-flow is not installed" in proc.stdout
