"""The repository's own project.yaml, run whole on the loopback Slurm: staging (Ray, stage-in
of 5,000 footprints packed as one tar stream, stage-out every 20 s and at the end), merge,
raster and webtiles (Ray), then the 18-task zoom_check array, each after the one before,
under one RUN_ID; a second submit_all.sh submits nothing.

The project is the example's, with what a two-node test cluster needs changed (partition,
sizes, times, no modules or conda, folders under the test's own) and the IWP programs
replaced by small stand-ins that record what they saw."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, build
from test_ray import ray_env  # noqa: F401  (the fixture)
from test_slurm import queue_empty, run, submitted, wait_until

pytestmark = pytest.mark.slurm

FOOTPRINTS = 5000
HOSTILE = ["-rf", "sp ace.gpkg", "q'uote.gpkg", 'd"q.gpkg', "$(touch pwned).gpkg",
           "nl\nname.gpkg", "tab\tname.gpkg", "ünï.gpkg", "*glob?.gpkg", "back\\slash.gpkg"]

# IN_PROGRESS_VIZ_WORKFLOW.py: one Ray task on every node; staging checks the node's
# footprints and writes tiles into the node's folder, then waits (at most 90 s) for a
# periodic stage-out pass to have copied them to the shared folder.
WORKFLOW = r'''
import argparse, hashlib, json, os, sys, time
from pathlib import Path
import ray

ROOT = Path(__file__).resolve().parent

def digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.name.startswith(".jobpack-"):
            h.update(repr((str(p.relative_to(folder)), p.read_bytes())).encode())
    return h.hexdigest()

parser = argparse.ArgumentParser()
parser.add_argument("--step", action="append")
parser.add_argument("--out", default="")
args = parser.parse_args()
run_id = os.environ["RUN_ID"]
ray.init()
nodes = sorted(k[len("slurm_node_"):] for n in ray.nodes() if n["Alive"]
               for k in n["Resources"] if k.startswith("slurm_node_"))

@ray.remote(num_cpus=0)
def work(steps, out):
    node = os.environ["SLURMD_NODENAME"]
    seen = {"node": node}
    if "staging" in steps:
        seen["footprints"] = digest(ROOT / "nodes" / node / "tmp" / "staged_footprints")
        target = Path(out.replace("NODE", node))
        target.mkdir(parents=True, exist_ok=True)
        for i in range(20):
            (target / f"tile-{i}.gpkg").write_text(f"{node} {i}\n")
    return seen

written = time.time()
seen = ray.get([work.options(resources={"slurm_node_" + n: 0.01}).remote(args.step, args.out)
                for n in nodes])
if "staging" in args.step:
    markers = [ROOT / "scratch" / "runs" / run_id / n / ".jobpack-done" for n in nodes]
    deadline = time.time() + 90
    while not all(m.exists() and m.stat().st_mtime > written for m in markers):
        if time.time() > deadline:
            sys.exit("no periodic stage-out pass within 90 s")
        time.sleep(0.5)
with open(ROOT / "chain.log", "a") as f:
    f.write(json.dumps({"t": time.time(), "step": "+".join(args.step), "run": run_id,
                        "driver": os.environ["SLURMD_NODENAME"], "seen": seen}) + "\n")
'''

MERGE = r'''
import json, os, sys, time
from pathlib import Path
ROOT = Path(__file__).resolve().parent.parent
run_id = sys.argv[sys.argv.index("--run") + 1]
tiles = sorted(str(p.relative_to(ROOT / "scratch" / "runs" / run_id))
               for p in (ROOT / "scratch" / "runs" / run_id).rglob("tile-*"))
with open(ROOT / "chain.log", "a") as f:
    f.write(json.dumps({"t": time.time(), "step": "merge", "run": run_id,
                        "env_run": os.environ["RUN_ID"], "tiles": len(tiles)}) + "\n")
'''

CHECK = r'''
import json, os, sys, time
from pathlib import Path
ROOT = Path(__file__).resolve().parent.parent
zoom = sys.argv[sys.argv.index("--zoom") + 1]
run_id = sys.argv[sys.argv.index("--run") + 1]
with open(ROOT / "chain.log", "a") as f:
    f.write(json.dumps({"t": time.time(), "step": "zoom_check", "run": run_id,
                        "zoom": zoom, "region": os.environ["REGION"]}) + "\n")
'''


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` but the syncs' own (.jobpack-done, .jobpack-manifest)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*")
            if p.is_file() and not p.name.startswith(".jobpack-")}


def _project(root: Path) -> dict:  # type: ignore[type-arg]
    """The example project, fitted to the two-node loopback cluster and ``root``."""
    project = yaml.safe_load((ROOT / "project.yaml").read_text())
    cluster = project["clusters"]["delta"]
    cluster.update(partition="debug", resources={"mem": 100})
    del cluster["modules"], cluster["conda"]
    node_tmp = f"{root}/nodes/${{SLURMD_NODENAME}}/tmp/"
    for job in project["jobs"].values():
        res = job["resources"]
        res.update(nodes=min(res["nodes"], 2), time="10")
        if "gpus_per_node" in res:
            res["gpus_per_node"] = 1
        if isinstance(job["command"], str):
            job["command"] = job["command"].replace(" /tmp/", f" {root}/nodes/NODE/tmp/").replace(
                "python ", f"python {root}/")
        else:
            job["command"][1] = f"{root}/{job['command'][1]}"
        for item in job.get("stage_out", []):
            item["every"] = "20s"
    project["storage"]["scratch"] = {"local": f"{root}/scratch"}
    for sync in project["syncs"].values():
        for end in ("from", "to"):
            if sync[end].startswith("/tmp/"):
                sync[end] = node_tmp + sync[end][len("/tmp/"):]
    return project  # type: ignore[no-any-return]


def test_the_example_runs_whole(slurm, ray_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    env, _ray_tmp = ray_env
    root = tmp_path
    (root / "IN_PROGRESS_VIZ_WORKFLOW.py").write_text(WORKFLOW)
    (root / "utilities").mkdir()
    (root / "utilities" / "merge_staged_vector_tiles.py").write_text(MERGE)
    (root / "utilities" / "check_tiles.py").write_text(CHECK)
    footprints = root / "scratch" / "staged_footprints"
    for i in range(FOOTPRINTS - len(HOSTILE)):
        folder = footprints / f"{i // 250:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"fp{i}.gpkg").write_text(f"footprint {i}\n")
    for name in HOSTILE:
        (footprints / "hostile" / name).parent.mkdir(exist_ok=True)
        (footprints / "hostile" / name).write_text(f"hostile {name}\n")
    source = _tree(footprints)
    assert len(source) == FOOTPRINTS
    (root / "project.yaml").write_text(yaml.safe_dump(_project(root), sort_keys=False))
    result = build(root / "project.yaml", root / "out")
    assert result.code == 0, result.stderr
    folder = root / "out" / "slurm" / "delta"
    env = {**env, "DELTA_ACCOUNT": "bbou-delta-gpu"}

    started = time.monotonic()
    first = run(folder / "submit_all.sh", env=env)
    wait_until(lambda: queue_empty(slurm), 900, "the whole chain to end")
    took = time.monotonic() - started
    rows = submitted(folder)
    run_ids = {r[0] for r in rows}
    assert len(run_ids) == 1 and [r[1] for r in rows] == [
        "staging", "merge", "raster", "webtiles", "zoom_check"], rows
    (run_id,) = run_ids
    states = run(folder / "ctl.sh", "status", env=env).stdout
    assert "COMPLETED" in states and "FAILED" not in states, states + first.stderr

    log = [json.loads(line) for line in (root / "chain.log").read_text().splitlines()]
    steps = [entry["step"] for entry in log]
    assert steps[:4] == ["staging", "merge", "raster_highest+raster_lower", "webtiles"], steps
    assert sorted((e["zoom"], e["region"]) for e in log[4:]) == sorted(
        (str(z), r) for z in range(10, 16) for r in ("north_slope", "yukon", "nunavut"))
    assert all(e["run"] == run_id for e in log) and log[1]["env_run"] == run_id
    times = [e["t"] for e in log]
    assert times[:4] == sorted(times[:4]) and min(times[4:]) > times[3]

    # Ray: the command ran on the first node and reached a task on each node.
    for entry in (log[0], log[2], log[3]):
        assert entry["driver"] == "node1"
        assert sorted(s["node"] for s in entry["seen"]) == ["node1", "node2"], entry
    # Stage-in: every node had the whole tree, hostile names included, before the work.
    digests = {s["node"]: s["footprints"] for s in log[0]["seen"]}
    for node in ("node1", "node2"):
        assert _tree(root / "nodes" / node / "tmp" / "staged_footprints") == source, node
    assert len(set(digests.values())) == 1
    # Stage-out: periodic passes (the stand-in waited for one) and the final one, complete.
    assert log[1]["tiles"] == 40
    err = next((folder / "logs").glob("iwp-staging_*.err")).read_text()
    assert err.count("staged_to_scratch: final pass") == 2, err
    for node in ("node1", "node2"):
        dest = root / "scratch" / "runs" / run_id / node
        assert (dest / ".jobpack-done").exists()
        assert _tree(dest) == _tree(root / "nodes" / node / "tmp" / run_id)
    assert not list(root.rglob("pwned")) and not (folder / "pwned").exists()

    again = run(folder / "submit_all.sh", env=env)
    assert len(submitted(folder)) == len(rows), again.stderr
    assert again.stderr.count("not submitted again") == 5, again.stderr
    (root / "took.txt").write_text(f"{took:.0f}\n")
    print(f"whole chain: {took:.0f} s")
