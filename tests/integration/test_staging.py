"""Staging inside a real Slurm job: stage-in to every node, periodic stage-out, and the final
stage-out at the pre-timeout signal of a job with a 2-minute limit that would run longer,
which its time limit then kills."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import build
from test_slurm import queue_empty, run, submitted, wait_until

pytestmark = pytest.mark.slurm

HOSTILE_IN = "-in 'q' \"d\" $(touch pwned)\nnl.txt"
HOSTILE_OUT = "-out 'q' \"d\"\nnl.txt"

PROJECT = """
project: staged
clusters:
  hpc: {{kind: slurm, partition: debug, resources: {{mem: 100}}}}
storage:
  scratch: {{local: "{root}/scratch"}}
syncs:
  inputs_to_nodes:
    from: scratch:inputs
    to: "{root}/nodes/${{SLURMD_NODENAME}}/in"
    pack: tar
  outputs_home:
    from: "{root}/nodes/${{SLURMD_NODENAME}}/out"
    to: "scratch:runs/{{{{ run_id }}}}/${{SLURMD_NODENAME}}"
jobs:
  long:
    cluster: hpc
    description: Writes a file every 5 s on both nodes until its 2-minute limit kills it.
    resources: {{nodes: 2, ntasks_per_node: 1, time: "2"}}
    launcher: srun
    on_timeout: {{before: 60}}
    stage_in: [{{sync: inputs_to_nodes}}]
    stage_out: [{{sync: outputs_home, every: 20s}}]
    command: |
      here={root}/nodes/$SLURMD_NODENAME
      mkdir -p "$here/out"
      # the staged input must be on this node: copy it into the outputs
      cp "$here/in/data.txt" "$here/out/input-seen.txt"
      printf 'x' > "$here/out/$(printf '%s' {hostile_out})"
      i=0
      while :; do
        i=$((i + 1))
        date +%s.%N > "$here/out/part-$i"
        sleep 5
      done
"""


def _stamp(line: str) -> float:
    text = re.match(r"\[(\S+)\]", line).group(1)  # type: ignore[union-attr]
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def test_stage_in_periodic_and_signal_stage_out(slurm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path
    inputs = root / "scratch" / "inputs"
    inputs.mkdir(parents=True)
    (inputs / "data.txt").write_text("input data\n")
    (inputs / HOSTILE_IN).write_text("hostile input\n")
    for i in range(500):  # many small files: the reason for pack: tar
        (inputs / "many" / f"{i // 100}").mkdir(parents=True, exist_ok=True)
        (inputs / "many" / f"{i // 100}" / f"f{i}.txt").write_text(f"{i}\n")
    project = root / "project.yaml"
    project.write_text(PROJECT.format(root=root, hostile_out=_shell_word(HOSTILE_OUT)))
    result = build(project, root / "out")
    assert result.code == 0, result.stderr
    folder = root / "out" / "slurm" / "hpc"

    run(folder / "submit_all.sh", env=slurm.env)
    (run_id, _job, _step, _array, _offset, job_id, *_rest) = submitted(folder)[0]
    wait_until(lambda: queue_empty(slurm), 270, "the job to be killed by its time limit")

    state = subprocess.run(["scontrol", "show", "job", job_id], env=slurm.env, text=True,
                           capture_output=True, check=False).stdout
    assert "JobState=TIMEOUT" in state, state
    err = (folder / "logs" / f"staged-long_{job_id}.err").read_text()
    log = err.splitlines()

    for node in ("node1", "node2"):
        # Stage-in: the whole tree, hostile names included, on each node before the command.
        local_in = root / "nodes" / node / "in"
        assert (local_in / HOSTILE_IN).read_text() == "hostile input\n"
        assert len(list((local_in / "many").rglob("*.txt"))) == 500
        assert (local_in / ".jobpack-done").exists()

        source = root / "nodes" / node / "out"
        dest = root / "scratch" / "runs" / run_id / node
        assert (dest / "input-seen.txt").read_text() == "input data\n"
        assert (dest / HOSTILE_OUT).read_text() == "x"
        written = {p.name: float(p.read_text()) for p in source.glob("part-*")}
        staged = {p.name: float(p.read_text()) for p in dest.glob("part-*")}
        assert staged.items() <= written.items(), "staged files differ from what was written"
        # The final pass completed: its marker is there, and no pass ran after it.
        assert (dest / ".jobpack-done").exists(), f"{node}: no completion marker"

        passes = [_stamp(line) for line in log if "outputs_home: done" in line]
        finals = [_stamp(line) for line in log if "outputs_home: final pass" in line]
        assert len(finals) == 2, f"one final pass per node:\n{err}"
        assert len(passes) >= 4, f"a periodic pass and a final pass on each node:\n{err}"
        # Everything written before the final pass began is at the destination.
        final = min(finals)
        missing = sorted(n for n, t in written.items() if t < final and n not in staged)
        assert not missing, f"{node}: written before the final pass but not staged: {missing}"
        # The job went on writing until the time limit killed it; those files are the only
        # ones not staged.
        assert len(written) > len(staged) >= 3, (len(written), len(staged))

    assert "time limit near" in err
    assert not (folder / "pwned").exists() and not (root / "pwned").exists()


def _shell_word(text: str) -> str:
    """A shell word for ``text`` (newline as $'\\n') used inside the job's command."""
    return "$'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


QUIET_NODE = """
project: quiet
clusters:
  hpc: {{kind: slurm, partition: debug, resources: {{mem: 100}}}}
storage:
  scratch: {{local: "{root}/scratch"}}
syncs:
  results_home:
    from: "{root}/nodes/${{SLURMD_NODENAME}}/{{{{ run_id }}}}"
    to: "scratch:runs/{{{{ run_id }}}}/${{SLURMD_NODENAME}}"
jobs:
  work:
    cluster: hpc
    description: Only the first node gets work and writes results; the other writes nothing.
    resources: {{nodes: 2, ntasks_per_node: 1, time: "5"}}
    launcher: srun
    stage_out: [{{sync: results_home, every: 2s}}]
    command: |
      if [[ $SLURM_NODEID == 0 ]]; then
        mkdir -p "{root}/nodes/$SLURMD_NODENAME/$RUN_ID"
        echo done > "{root}/nodes/$SLURMD_NODENAME/$RUN_ID/result.txt"
      fi
      sleep 5
  merge:
    cluster: hpc
    after: [work]
    command: cat {root}/scratch/runs/$RUN_ID/*/result.txt > {root}/merged.txt
"""


def test_a_node_that_wrote_nothing_does_not_fail_the_stage_out(slurm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A Ray or srun job need not give every node work: the stage-out of a folder a node
    never created sends nothing from that node, says so, and the chain goes on."""
    root = tmp_path
    project = root / "project.yaml"
    project.write_text(QUIET_NODE.format(root=root))
    result = build(project, root / "out")
    assert result.code == 0, result.stderr
    folder = root / "out" / "slurm" / "hpc"
    run(folder / "submit_all.sh", env=slurm.env)
    rows = submitted(folder)
    wait_until(lambda: queue_empty(slurm), 120, "the two jobs to end")
    run_id, job_id = rows[0][0], rows[0][5]
    err = (folder / "logs" / f"quiet-work_{job_id}.err").read_text()
    states = {r[1]: subprocess.run(["scontrol", "show", "job", r[5]], env=slurm.env, text=True,
                                   capture_output=True, check=False).stdout for r in rows}
    assert all("JobState=COMPLETED" in s for s in states.values()), (states, err)
    assert (root / "merged.txt").read_text() == "done\n"
    staged = sorted(p.relative_to(root / "scratch" / "runs" / run_id).as_posix()
                    for p in (root / "scratch" / "runs" / run_id).rglob("result.txt"))
    assert len(staged) == 1, staged
    assert "does not exist on" in err and "nothing to transfer" in err, err
    assert "results_home: done" in err, err
