"""launch_all.sh launches up to `parallel` points at once and still never loses or doubles
one: 700 points (the NGC seed's size) at `parallel: 8` against the ngc test double taking
1 s per `batch run`, as the real CLI does; killed mid-way (SIGKILL to its process group,
launches in flight included) and run again; two at once.

Slow: about 3.5 minutes on a busy 2-core machine (100 s for the 700 launches at 1 s each,
60 s for the kills, 20 s for two at once).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import PROJECTS, ROOT, build

sys.path.insert(0, str(ROOT / "tests" / "doubles"))
ngc_double = pytest.importorskip("ngc_double", reason="needs ngcsdk (tests/install-deps.sh)")

pytestmark = pytest.mark.slow

SIZE = 700
NAMES = [f"par-train-{a}_{b}" for a in range(70) for b in range(10)]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("parallel-ngc") / "out"
    result = build(PROJECTS / "ngc_parallel" / "project.yaml", out)
    assert result.code == 0, result.stderr
    return out / "ngc" / "ngc"


@pytest.fixture
def double(tmp_path: Path):  # type: ignore[no-untyped-def]
    d = ngc_double.NgcDouble(tmp_path / "ngc.sock")
    d.script = lambda name, instance: ["QUEUED", "RUNNING", "RUNNING"]
    server = d.serve()
    yield d
    server.shutdown()
    server.server_close()


def fresh(built: Path, where: Path) -> Path:
    folder = where / f"ngc-{len(list(where.glob('ngc-*')))}"
    shutil.copytree(built, folder)
    return folder


def launch_all(folder: Path, env: dict[str, str], code: int = 0) -> str:
    proc = subprocess.run(["bash", str(folder / "launch_all.sh")], cwd=folder, env=env,
                          text=True, capture_output=True, timeout=600, check=False)
    assert proc.returncode == code, proc.stderr[-3000:]
    return proc.stderr


def runs(double) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for c in double.calls if c[:2] == ["batch", "run"])


def ledger(folder: Path) -> list[dict[str, str]]:
    lines = (folder / "ledger.tsv").read_text().splitlines()
    head = lines[0].split("\t")
    rows = [line.split("\t") for line in lines[1:]]
    assert all(len(r) == len(head) for r in rows), "every row is whole"
    return [dict(zip(head, r, strict=True)) for r in rows]


def assert_consistent(double, folder: Path) -> None:  # type: ignore[no-untyped-def]
    """One job per point on NGC; in the ledger, every launch's intent has exactly one
    outcome under its tag, and each point's last outcome names its job."""
    created = Counter(j.name for j in double.jobs.values())
    duplicates = {n: c for n, c in created.items() if c > 1}
    lost = sorted(set(NAMES) - set(created))
    assert not duplicates and not lost, f"duplicates {duplicates}, lost {lost}"
    intents: Counter[str] = Counter()
    outcomes: dict[str, list[dict[str, str]]] = {}
    for row in ledger(folder):
        if row["event"] == "launching":
            intents[row["tag"]] += 1
        else:
            outcomes.setdefault(row["tag"], []).append(row)
    assert set(intents.values()) == {1}, "a tag is never used twice"
    assert {t: len(o) for t, o in outcomes.items()} == dict.fromkeys(intents, 1), \
        "every intent has one outcome"
    last = {r["name"]: r["ngc_id"] for o in outcomes.values() for r in o if r["event"] == "launch"}
    assert last == {j.name: str(j.id) for j in double.jobs.values()}


def test_700_launches_at_parallel_8_take_under_two_minutes(
        double, built: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    double.run_delay = 1.0
    env = {**os.environ, **double.env}
    folder = fresh(built, tmp_path)
    start = time.monotonic()
    err = launch_all(folder, env)
    elapsed = time.monotonic() - start
    assert f"{SIZE} launched, 0 already in the ledger, 0 failed" in err
    assert runs(double) == SIZE
    assert elapsed < 120, f"700 launches took {elapsed:.0f} s"
    assert 1 < double.runs_most <= 8, "launches overlap, never more than `parallel`"
    assert_consistent(double, folder)
    again = launch_all(folder, env)
    assert f"0 launched, {SIZE} already in the ledger, 0 failed" in again
    assert runs(double) == SIZE


def test_killed_mid_way_then_rerun_launches_every_point_once(
        double, built: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Killed with up to 8 launches in flight (jobs created, answers not yet read), at a
    moment drawn (seeded) early and late in the run; the rerun adopts what NGC has."""
    double.run_delay = 0.1
    env = {**os.environ, **double.env}
    rng = random.Random(8)
    adopted = 0
    for low, high in ((16, 200), (800, 1300)):
        double.jobs.clear()
        folder = fresh(built, tmp_path)
        rows = rng.randint(low, high)
        proc = subprocess.Popen(["bash", str(folder / "launch_all.sh")], cwd=folder, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        path = folder / "ledger.tsv"
        while proc.poll() is None and (
                not path.exists() or path.read_text().count("\n") <= rows):
            time.sleep(0.002)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        # Every call the killed launches made has reached the double before the rerun.
        deadline = time.monotonic() + 30
        while not double.quiet():
            assert time.monotonic() < deadline, "the double stays busy"
            time.sleep(0.002)
        in_flight = sum(1 for r in ledger(folder) if r["event"] == "launching") - sum(
            1 for r in ledger(folder) if r["event"] != "launching")
        assert in_flight <= 8, "never more launches in flight than `parallel`"
        err = launch_all(folder, env)
        adopted += err.count("recorded, not launched again")
        assert_consistent(double, folder)
        assert launch_all(folder, env).count("0 launched") == 1
    assert adopted >= 2, "launches cut short are found on NGC and kept"


def test_two_launch_all_at_once_launch_every_point_once(
        double, built: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    double.run_delay = 0.02
    env = {**os.environ, **double.env}
    folder = fresh(built, tmp_path)
    procs = [subprocess.Popen(["bash", str(folder / "launch_all.sh")], cwd=folder, env=env,
                              text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert sum(f"{SIZE} already in the ledger" in err for _, err in results) == 1
    assert runs(double) == SIZE
    assert_consistent(double, folder)


def test_dry_run_prints_every_launch_in_point_order(built: Path, tmp_path: Path) -> None:
    folder = fresh(built, tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "RUN_ID"}
    out = subprocess.run(["bash", str(folder / "launch_all.sh"), "--dry-run"], cwd=folder,
                         env={**env, "RUN_ID": "r"}, text=True, capture_output=True,
                         check=True).stdout
    names = [line.split("--name ")[1].split()[0] for line in out.splitlines()
             if line.startswith("+ ngc batch run")]
    assert names == NAMES
    assert not (folder / "ledger.tsv").exists()
