"""Generated dev node scripts against a small fake Slurm (salloc, squeue, scancel, srun,
scontrol on PATH) with real tmux, tar and lz4: what they do when names collide, squeue fails,
clocks are skewed or backups fail. The real-Slurm run is tests/integration/test_dev.py."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import build

from generators.backends.dev.plan import job_name, session_name
from generators.project.model import NAME, PROJECT

# Jobs are files JOBS/<id> holding "name|state|node|comment"; steps STEPS/<job>.<n> hold the
# step's name. FAKE/squeue-fail holds how many squeue calls fail before they work again.
FAKE = {
    "squeue": r"""#!/bin/bash
F=$JP_FAKE
printf 'squeue %s\n' "$*" >>"$F/calls"
if [[ -s $F/squeue-fail ]]; then
  n=$(<"$F/squeue-fail")
  if ((n > 0)); then
    echo $((n - 1)) >"$F/squeue-fail"; echo 'squeue: error: timeout' >&2; exit 1
  fi
fi
name='' job='' steps=0 fmt='%i'
while (($#)); do
  case $1 in
    -n) name=$2; shift ;; -j) job=$2; shift ;; -s) steps=1 ;; -o) fmt=$2; shift ;;
    -u|-t) shift ;;
  esac
  shift
done
if ((steps)) && [[ -s $F/squeue-fail-steps ]]; then
  n=$(<"$F/squeue-fail-steps")
  if ((n > 0)); then
    echo $((n - 1)) >"$F/squeue-fail-steps"; echo 'squeue: error: timeout' >&2; exit 1
  fi
fi
if ((steps)); then
  for f in "$F"/steps/"$job".*; do
    [[ -f $f ]] || continue
    id=${f##*/}; n=$(<"$f")
    out=${fmt//%i/$id}; out=${out//%j/$n}; printf '%s\n' "$out"
  done
  exit 0
fi
for f in "$F"/jobs/*; do
  [[ -f $f ]] || continue
  id=${f##*/}
  IFS='|' read -r n st nd cm <"$f"
  [[ -z $name || $n == "$name" ]] || continue
  [[ -z $job || $id == "$job" ]] || continue
  out=${fmt//%i/$id}; out=${out//%T/$st}; out=${out//%N/$nd}; out=${out//%L/1:00:00}
  out=${out//%k/$cm}; out=${out//%j/$n}
  printf '%s\n' "$out"
done
""",
    "salloc": r"""#!/bin/bash
F=$JP_FAKE
printf 'salloc %s\n' "$*" >>"$F/calls"
name='' comment=''
for a; do
  case $a in --job-name=*) name=${a#--job-name=} ;; --comment=*) comment=${a#--comment=} ;; esac
done
id=$(($(cat "$F/next" 2>/dev/null || echo 100) + 1)); echo "$id" >"$F/next"
echo "$name|RUNNING|fresh$id|$comment" >"$F/jobs/$id"
echo "salloc: Granted job allocation $id"
while [[ -f $F/jobs/$id ]]; do sleep 0.1; done
""",
    "scancel": r"""#!/bin/bash
F=$JP_FAKE
printf 'scancel %s\n' "$*" >>"$F/calls"
signal=''
for a; do
  case $a in
    --signal=*) signal=${a#--signal=} ;;
    -*) ;;
    *.*) [[ -z ${JP_STEP_TERM:-} ]] || bash -c "$JP_STEP_TERM"; rm -f "$F/steps/$a" ;;
    *) rm -f "$F/jobs/$a" "$F/steps/$a".* ;;
  esac
done
""",
    "scontrol": "#!/bin/bash\nexit 0\n",
    "srun": r"""#!/bin/bash
F=$JP_FAKE
printf 'srun %s\n' "$*" >>"$F/calls"
while [[ $1 == -* ]]; do shift; done
exec "$@"
""",
}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if any(shutil.which(t) is None for t in ("tmux", "lz4", "bash")):
        pytest.skip("needs tmux and lz4 (tests/install-deps.sh installs them)")
    d = tmp_path_factory.mktemp("devbundle")
    (d / "project.yaml").write_text("""project: ml
clusters:
  lab: {kind: slurm, partition: debug, login: me@login.example}
dev:
  box:
    cluster: lab
    scratch: "${HOME}/scratch/box"
    backup: "${HOME}/shared"
    every: 5s
    keep: 2
""")
    result = build(d / "project.yaml", d / "out")
    assert result.code == 0, result.stderr
    return d / "out" / "dev" / "box"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    fake = tmp_path / "fake"
    for sub in ("bin", "jobs", "steps"):
        (fake / sub).mkdir(parents=True)
    for tool, text in FAKE.items():
        (fake / "bin" / tool).write_text(text)
        (fake / "bin" / tool).chmod(0o755)
    (tmp_path / "home").mkdir()
    (tmp_path / "tmux").mkdir()
    e = {"PATH": f"{fake / 'bin'}:{os.environ['PATH']}", "HOME": str(tmp_path / "home"),
         "USER": "me", "JP_FAKE": str(fake), "JP_TEST": str(tmp_path),
         "TMUX_TMPDIR": str(tmp_path / "tmux"), "JOBPACK_DEV_WAIT": "20", "LC_ALL": "C",
         "JOBPACK_DEV_RETRY_DELAY": "0"}
    yield e
    subprocess.run(["tmux", "kill-server"], env=e, capture_output=True, check=False)
    for job in (fake / "jobs").iterdir():
        job.unlink()


def run(script: Path, *args: str, env: dict[str, str],
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(script), *args], env=env, cwd="/", capture_output=True,
                          text=True, check=False, timeout=timeout)


def jobs(env: dict[str, str]) -> dict[str, str]:
    return {p.name: p.read_text().strip() for p in (Path(env["JP_FAKE"]) / "jobs").iterdir()}


def calls(env: dict[str, str], tool: str) -> list[str]:
    path = Path(env["JP_FAKE"]) / "calls"
    lines = path.read_text().splitlines() if path.exists() else []
    return [line for line in lines if line.startswith(tool + " ")]


def session(env: dict[str, str], name: str) -> bool:
    return subprocess.run(["tmux", "has-session", "-t", "=" + name], env=env,
                          capture_output=True).returncode == 0


def test_no_batch_job_name_is_a_dev_node_name() -> None:
    # A batch job of project P is named P-NAME: neither part may hold a ':'.
    assert ":" not in PROJECT and ":" not in NAME
    assert ":" in job_name("ml", "compile")
    assert job_name("ml", "compile") != job_name("ml-dev", "compile")


def test_a_job_without_the_marker_is_neither_reused_nor_cancelled(
        bundle: Path, env: dict[str, str]) -> None:
    fake = Path(env["JP_FAKE"])
    # A batch job, and a job that only has the dev node's name (not its marker).
    (fake / "jobs" / "7").write_text("ml-dev-box|RUNNING|batchnode|\n")
    (fake / "jobs" / "8").write_text(f"{job_name('ml', 'box')}|RUNNING|other|\n")
    got = run(bundle / "allocate.sh", "--no-scratch", env=env)
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == "fresh101" and "reusing" not in got.stderr
    assert any("--comment=jobpack-dev:ml/box" in c for c in calls(env, "salloc"))
    again = run(bundle / "allocate.sh", "--no-scratch", env=env)
    assert again.stdout.strip() == "fresh101" and "reusing allocation 101" in again.stderr
    released = run(bundle / "release.sh", "--no-backup", env=env)
    assert released.returncode == 0, released.stderr
    assert set(jobs(env)) == {"7", "8"}
    assert [c for c in calls(env, "scancel")] == ["scancel 101"]


def test_tmux_sessions_of_different_dev_nodes_never_share_a_name() -> None:
    names = [("ml", "lab-gpu"), ("ml-lab", "gpu"), ("a", "b.c"), ("a", "b_c"), ("a", "b_dc"),
             ("a", "b.dc"), ("a-b", "c"), ("a", "b-c")]
    sessions = [session_name(p, n) for p, n in names]
    assert len(set(sessions)) == len(names)
    assert not any(c in s for s in sessions for c in ".:")


def test_a_session_it_did_not_start_is_never_ended(bundle: Path, env: dict[str, str]) -> None:
    name = session_name("ml", "box")
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "sleep 600"], env=env, check=True)
    got = run(bundle / "allocate.sh", "--no-scratch", env=env)
    assert got.returncode != 0 and "did not start" in got.stderr
    assert session(env, name) and jobs(env) == {}
    run(bundle / "release.sh", "--no-backup", env=env)
    assert session(env, name)


def backups(env: dict[str, str]) -> list[str]:
    shared = Path(env["HOME"]) / "shared"
    return sorted(p.name for p in shared.glob("*.tar.lz4")) if shared.is_dir() else []


def test_a_stale_scratch_is_neither_kept_nor_backed_up(bundle: Path, env: dict[str, str]) -> None:
    scratch = Path(env["HOME"]) / "scratch" / "box"
    first = run(bundle / "init-scratch.sh", env=env)
    assert first.returncode == 0, first.stderr
    (scratch / "work.txt").write_text("on node A\n")
    assert run(bundle / "backup.sh", env=env).returncode == 0
    stale = scratch.parent / "nodeA"
    shutil.copytree(scratch, stale, symlinks=True)
    # Node B restores, works on and backs up newer work.
    shutil.rmtree(scratch)
    assert run(bundle / "init-scratch.sh", env=env).returncode == 0
    (scratch / "work.txt").write_text("newer, on node B\n")
    assert run(bundle / "backup.sh", env=env).returncode == 0
    newest = backups(env)[-1]
    # Back on node A: its scratch is older than the newest backup.
    shutil.rmtree(scratch)
    stale.rename(scratch)
    refused = run(bundle / "backup.sh", env=env)
    assert refused.returncode != 0 and "older than the newest" in refused.stderr
    assert backups(env)[-1] == newest
    kept = run(bundle / "init-scratch.sh", env=env)
    assert kept.returncode != 0 and "--force" in kept.stderr
    assert (scratch / "work.txt").read_text() == "on node A\n"
    forced = run(bundle / "init-scratch.sh", "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    assert (scratch / "work.txt").read_text() == "newer, on node B\n"
    assert list(scratch.parent.glob("box.replaced.*"))
    # Files of unknown origin (env.sh's ccache folder before any restore) are stale too.
    shutil.rmtree(scratch)
    (scratch / ".ccache").mkdir(parents=True)
    assert "no record" in run(bundle / "backup.sh", env=env).stderr
    assert backups(env)[-1] == newest


def test_a_backup_is_the_newest_whatever_the_clock(bundle: Path, env: dict[str, str]) -> None:
    assert run(bundle / "init-scratch.sh", env=env).returncode == 0
    shared = Path(env["HOME"]) / "shared"
    # A backup made by a node whose clock is a year ahead.
    future = shared / "ml-box-20991231T235959.999999999Z.tar.lz4"
    shutil.copy(shared / backups(env)[-1], future)
    scratch = Path(env["HOME"]) / "scratch" / "box"
    (scratch / ".jobpack-dev-backup").write_text(future.name + "\n")
    (scratch / "new.txt").write_text("new work\n")
    for _ in range(2):
        got = run(bundle / "backup.sh", env=env)
        assert got.returncode == 0, got.stderr
    names = backups(env)
    assert len(names) == 2 and future.name not in names, names
    assert names[-1] > future.name and all(n.startswith("ml-box-") for n in names)
    listing = subprocess.run(f"lz4 -dc '{shared / names[-1]}' | tar -t", shell=True,
                             capture_output=True, text=True, check=True).stdout.split()
    assert "./new.txt" in listing and "./.jobpack-dev-backup" not in listing


def wait_for(predicate, timeout: float, what: str,  # type: ignore[no-untyped-def]
             log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    said = f"; the script said:\n{log.read_text()}" if log is not None else ""
    pytest.fail(f"timed out after {timeout} s waiting for {what}{said}")


def test_release_keeps_the_allocation_when_the_final_backup_fails(
        bundle: Path, env: dict[str, str]) -> None:
    assert run(bundle / "init-scratch.sh", env=env).returncode == 0
    assert run(bundle / "allocate.sh", "--no-scratch", env=env).returncode == 0
    fake = Path(env["JP_FAKE"])
    (fake / "steps" / "101.0").write_text("scratch\n")
    (fake / "squeue-fail-steps").write_text("3\n")  # a busy controller, for a while
    # The step ends (as when it is killed) without a new backup.
    failed = run(bundle / "release.sh", env=env)
    assert failed.returncode != 0 and "final backup failed" in failed.stderr
    assert "101" in jobs(env) and session(env, session_name("ml", "box"))
    assert "scancel 101" not in calls(env, "scancel")
    # Its final backup made: released.
    before = backups(env)
    (fake / "steps" / "101.0").write_text("scratch\n")
    (fake / "squeue-fail-steps").write_text("2\n")
    released = run(bundle / "release.sh", env={**env, "JP_STEP_TERM": f"bash {bundle}/backup.sh"})
    assert released.returncode == 0, released.stderr
    assert jobs(env) == {} and len(backups(env)) == len(before) + 1
    assert "scancel --signal=TERM 101.0" in calls(env, "scancel")


def test_auto_backup_outlives_a_failing_squeue(bundle: Path, env: dict[str, str],
                                               tmp_path: Path) -> None:
    assert run(bundle / "init-scratch.sh", env=env).returncode == 0
    fake = Path(env["JP_FAKE"])
    (fake / "jobs" / "55").write_text("x|RUNNING|n1|\n")
    (fake / "squeue-fail").write_text("1\n")
    logfile = tmp_path / "auto.log"
    proc = subprocess.Popen(["bash", str(bundle / "auto-backup.sh"), "--every", "1"],
                            env={**env, "SLURM_JOB_ID": "55"}, stderr=logfile.open("w"),
                            cwd="/")
    try:
        # Counted in the log: the project keeps two backups, so the folder stops growing.
        wait_for(lambda: logfile.read_text().count("] backup /") >= 2
                 or proc.poll() is not None, 60, "two backups", logfile)
        assert proc.poll() is None, logfile.read_text()
        assert "squeue failed" in logfile.read_text()
        assert len(backups(env)) == 2
        (fake / "jobs" / "55").unlink()
        proc.wait(timeout=30)
        assert "the allocation has ended" in logfile.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_usr1_backs_up_at_once_and_keeps_going(bundle: Path, env: dict[str, str],
                                               tmp_path: Path) -> None:
    assert "--signal=USR1@600" in (bundle / "allocate.sh").read_text()  # with no time set
    assert run(bundle / "init-scratch.sh", env=env).returncode == 0
    logfile = tmp_path / "auto.log"
    proc = subprocess.Popen(["bash", str(bundle / "auto-backup.sh"), "--every", "3600"],
                            env=env, stderr=logfile.open("w"), cwd="/")
    try:
        wait_for(lambda: "auto-backup every" in logfile.read_text(), 30, "auto-backup", logfile)
        first = len(backups(env))
        proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: "time limit nears" in logfile.read_text()
                 and len(backups(env)) > first, 30, "the backup at USR1", logfile)
        assert proc.poll() is None, logfile.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        # A final backup: a new one, or (TERM while the USR1 backup finished) that one.
        text = logfile.read_text()
        assert "end signal: final backup" in text or "it is the final one" in text, text
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_signal_during_a_backup_waits_for_it(bundle: Path, env: dict[str, str],
                                               tmp_path: Path) -> None:
    assert run(bundle / "init-scratch.sh", env=env).returncode == 0
    gate, started = tmp_path / "gate", tmp_path / "started"
    # An lz4 that holds the compression until the test opens the gate.
    real = shutil.which("lz4")
    lz4 = Path(env["JP_FAKE"]) / "bin" / "lz4"
    lz4.write_text(f"""#!/bin/bash
if [[ $* == *-z* ]]; then
  echo x >>'{started}'
  until [[ -e '{gate}' ]]; do sleep 0.1; done
fi
exec '{real}' "$@"
""")
    lz4.chmod(0o755)
    logfile = tmp_path / "auto.log"
    first = len(backups(env))
    proc = subprocess.Popen(["bash", str(bundle / "auto-backup.sh"), "--every", "1"],
                            env=env, stderr=logfile.open("w"), cwd="/")
    try:
        wait_for(started.exists, 30, "a backup under way")
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "waiting for the backup under way" in logfile.read_text(), 30,
                 "the signal taken", logfile)
        gate.touch()
        assert proc.wait(timeout=30) == 0, logfile.read_text()
        assert "which completed" in logfile.read_text()
        assert len(started.read_text().split()) == 1  # no second backup
        assert len(backups(env)) == first + 1
    finally:
        if proc.poll() is None:
            proc.kill()


def proxy(bundle: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The alias's ProxyCommand, run as ssh runs it (port 22)."""
    line = next(x for x in (bundle / "ssh_config").read_text().splitlines()
                if x.strip().startswith("ProxyCommand "))
    command = line.strip().split(" ", 1)[1].replace("%p", "22")
    return subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True,
                          timeout=30, check=False)


def test_ssh_alias_says_which_hop_failed(bundle: Path, env: dict[str, str]) -> None:
    assert "  User me\n" in (bundle / "ssh_config").read_text()  # login: me@login.example
    ssh = Path(env["JP_FAKE"]) / "bin" / "ssh"
    ssh.write_text("""#!/bin/bash
if [[ $1 == -n ]]; then
  if [[ -n ${JP_LOGIN_DOWN:-} ]]; then
    echo 'ssh: connect to host login.example: timed out' >&2; exit 255
  fi
  [[ -z ${JP_NODE_FILE:-} ]] || echo "$JP_NODE_FILE"
  exit 0
fi
echo "jump $*"
""")
    ssh.chmod(0o755)
    down = proxy(bundle, {**env, "JP_LOGIN_DOWN": "1"})
    assert down.returncode != 0 and "cannot reach the login node me@login.example" in down.stderr
    assert "no allocation" not in down.stderr
    none = proxy(bundle, env)
    assert none.returncode != 0 and "no allocation" in none.stderr
    up = proxy(bundle, {**env, "JP_NODE_FILE": "n7 10.0.0.7 101"})
    assert up.returncode == 0 and up.stdout.strip() == "jump -W 10.0.0.7:22 me@login.example"


def test_one_allocate_at_a_time(bundle: Path, env: dict[str, str]) -> None:
    state = Path(env["HOME"]) / ".jobpack" / "dev" / "ml" / "box"
    state.mkdir(parents=True)
    with (state / "lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        got = run(bundle / "allocate.sh", env={**env, "JOBPACK_DEV_WAIT": "1"})
    assert got.returncode != 0 and "another allocate.sh" in got.stderr
    assert calls(env, "salloc") == []


def test_no_scratch_step_when_squeue_cannot_say(bundle: Path, env: dict[str, str]) -> None:
    (Path(env["JP_FAKE"]) / "squeue-fail-steps").write_text("9\n")
    got = run(bundle / "allocate.sh", env=env)
    assert got.returncode != 0 and "not starting the scratch step" in got.stderr
    assert calls(env, "srun") == []
    listed = subprocess.run(["tmux", "list-windows", "-t", "=" + session_name("ml", "box"),
                             "-F", "#{window_name}"], env=env, capture_output=True, text=True)
    assert "scratch" not in listed.stdout.split()


def test_partial_files_of_other_hosts_are_kept_a_day(bundle: Path, env: dict[str, str]) -> None:
    assert run(bundle / "init-scratch.sh", env=env).returncode == 0
    shared = Path(env["HOME"]) / "shared"
    host = os.uname().nodename
    dead = "4194000"  # no such process here
    stamp = "20260101T000000.000000000Z"
    mine = shared / f".ml-box-{stamp}.{host}.{dead}.partial"
    similar = shared / f".ml-box-{stamp}.x.{host}.{dead}.partial"  # another host's, under way
    old = shared / f".ml-box-{stamp}.elsewhere.{dead}.partial"
    for p in (mine, similar, old):
        p.write_text("partial")
    day_ago = time.time() - 2 * 86400
    os.utime(old, (day_ago, day_ago))
    got = run(bundle / "backup.sh", env=env)
    assert got.returncode == 0, got.stderr
    assert not mine.exists() and similar.exists() and not old.exists()
