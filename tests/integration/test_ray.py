"""`launcher: ray` inside a real Slurm job on two emulated nodes: the head on the first node,
a worker joining from the second, the command on the head with RAY_ADDRESS, a task on each
node, and Ray stopped everywhere when the job ends; a worker that cannot reach the head fails
the job early, naming its node.

The emulated nodes share one host (see docs/test-services.md), so each Ray node gets its own
folder (``ray<job id>-<node>`` under JOBPACK_RAY_TMPDIR) and the head its own free ports.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import build
from test_slurm import queue_empty, run, submitted, wait_until

pytestmark = pytest.mark.slurm

PROJECT = """
project: rayt
clusters:
  hpc: {{kind: slurm, partition: debug, resources: {{mem: 200}}}}
jobs:
  probe:
    cluster: hpc
    resources: {{nodes: 2, time: "10"}}
    launcher: ray
    command: python {probe} {result}
"""

PROBE = """
import json, os, sys, ray

ray.init()  # from RAY_ADDRESS, which the job script exports

@ray.remote(num_cpus=0)
def where():
    return os.environ.get("SLURMD_NODENAME")

nodes = [n for n in ray.nodes() if n["Alive"]]
names = sorted(k[len("slurm_node_"):] for n in nodes for k in n["Resources"]
               if k.startswith("slurm_node_"))
landed = {name: ray.get(where.options(resources={"slurm_node_" + name: 0.01}).remote())
          for name in names}
with open(sys.argv[1], "w") as f:
    json.dump({"address": os.environ["RAY_ADDRESS"], "driver": os.environ["SLURMD_NODENAME"],
               "alive": len(nodes), "resources": [n["Resources"] for n in nodes],
               "landed": landed}, f)
"""


def _free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _ray_processes(folder: Path) -> list[str]:
    """Processes whose command line names ``folder`` (every Ray process of these jobs does)."""
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True,
                         check=True).stdout
    return [line for line in out.splitlines() if str(folder) in line and "ps -eo" not in line]


@pytest.fixture
def ray_env(slurm) -> Iterator[tuple[dict[str, str], Path]]:  # type: ignore[no-untyped-def]
    if shutil.which("ray", path=str(Path(sys.executable).parent)) is None:
        reason = "ray is not installed (pip install -e '.[test]' installs it)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    # Short: Ray's socket paths below it must stay within 107 characters.
    tmp = Path(tempfile.mkdtemp(prefix="jpray", dir="/tmp"))
    gcs, dashboard, head_agent, agent = _free_ports(4)
    env = {**slurm.env, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "RAY_USAGE_STATS_ENABLED": "0", "JOBPACK_RAY_TMPDIR": str(tmp),
           "JOBPACK_RAY_PORT": str(gcs),
           "JOBPACK_RAY_HEAD_ARGS": f"--dashboard-port={dashboard} --num-cpus=1 "
                                    f"--dashboard-agent-listen-port={head_agent} "
                                    "--object-store-memory=80000000",
           "JOBPACK_RAY_WORKER_ARGS": f"--dashboard-agent-listen-port={agent} --num-cpus=1 "
                                      "--object-store-memory=80000000"}
    try:
        yield env, tmp
    finally:
        left = _ray_processes(tmp)
        for line in left:  # only what these tests started, by PID
            os.kill(int(line.split()[0]), 9)
        shutil.rmtree(tmp, ignore_errors=True)


def _bundle(root: Path, probe: str) -> Path:
    (root / "probe.py").write_text(probe)
    project = root / "project.yaml"
    project.write_text(PROJECT.format(probe=root / "probe.py", result=root / "result.json"))
    result = build(project, root / "out")
    assert result.code == 0, result.stderr
    return root / "out" / "slurm" / "hpc"


def _state(slurm, job_id: str) -> str:  # type: ignore[no-untyped-def]
    text = subprocess.run(["scontrol", "show", "job", job_id], env=slurm.env, text=True,
                          capture_output=True, check=False).stdout
    return text.split("JobState=")[1].split()[0] if "JobState=" in text else text


def test_ray_head_and_worker_run_the_command_then_stop(slurm, ray_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env, tmp = ray_env
    folder = _bundle(tmp_path, PROBE)
    run(folder / "submit_all.sh", env=env)
    job_id = submitted(folder)[0][5]
    wait_until(lambda: queue_empty(slurm), 240, "the Ray job to end")
    err = (folder / "logs" / f"rayt-probe_{job_id}.err").read_text()
    assert _state(slurm, job_id) == "COMPLETED", err

    seen = json.loads((tmp_path / "result.json").read_text())
    assert seen["driver"] == "node1"  # the command runs on the head's node
    assert seen["address"].endswith(f":{env['JOBPACK_RAY_PORT']}")
    assert seen["alive"] == 2, seen
    for resources in seen["resources"]:
        assert resources.get("CPU", 0) >= 1 and resources.get("memory", 0) > 0, resources
    assert seen["landed"] == {"node1": "node1", "node2": "node2"}  # a task ran on each node
    assert "workers: Ray up on node1 node2" in err
    assert "Ray stopped on node1 node2" in err
    assert not _ray_processes(tmp), "Ray processes left behind"


WRONG_PORT_RAY = """#!/bin/sh
# ray, except that the worker on node2 is given a port where no head listens.
if [ "${{SLURMD_NODENAME:-}}" = node2 ]; then
  for a in "$@"; do
    shift
    case $a in --address=*) a=--address=127.0.0.1:{port} ;; esac
    set -- "$@" "$a"
  done
fi
exec {ray} "$@"
"""


def test_a_worker_that_cannot_join_fails_the_job_naming_its_node(slurm, ray_env,  # type: ignore[no-untyped-def]
                                                                  tmp_path: Path) -> None:
    env, tmp = ray_env
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "ray"
    wrapper.write_text(WRONG_PORT_RAY.format(port=_free_ports(1)[0],
                                             ray=Path(sys.executable).parent / "ray"))
    wrapper.chmod(0o755)
    env = {**env, "PATH": f"{bin_dir}:{env['PATH']}", "JOBPACK_RAY_TIMEOUT": "25"}
    folder = _bundle(tmp_path, "raise SystemExit('the command must not run')\n")
    started = time.monotonic()
    run(folder / "submit_all.sh", env=env)
    job_id = submitted(folder)[0][5]
    wait_until(lambda: queue_empty(slurm), 240, "the Ray job to fail")
    took = time.monotonic() - started
    err = (folder / "logs" / f"rayt-probe_{job_id}.err").read_text()
    assert _state(slurm, job_id) == "FAILED", err
    assert "error: workers: Ray on node2 did not join the head at" in err
    assert "within 25 s" in err
    assert "the command must not run" not in err
    assert took < 150, f"took {took:.0f} s: the job waited for more than its Ray timeout"
    assert "Ray stopped on node1 node2" in err
    assert not _ray_processes(tmp), "Ray processes left behind"
