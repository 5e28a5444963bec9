"""Generated dev node scripts on the loopback Slurm, with real tmux, lz4 and a loopback sshd as
the login node: allocate, connect through the ssh alias, back up, restore, release.

On loopback every node is this host: which node the alias reached is what its ProxyCommand
says on stderr ("ALIAS: node NODE"), read from the file allocate.sh wrote.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import build

pytestmark = pytest.mark.slurm

STAMP = ".jobpack-dev-backup"  # in scratch: the backup it came from or last went to
HOSTILE = ["a b.txt", "it's \"q\".txt", "-leading dash.txt", "new\nline.txt", "ünï ✓.txt",
           "$(touch pwned).txt", "back\\slash.txt", "tab\there", "*?[x].txt", " lead space"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """An sshd on 127.0.0.1 accepting one key: the login node, and (every node being this
    host) the nodes behind it."""
    sshd_bin = shutil.which("sshd") or "/usr/sbin/sshd"
    missing = [t for t in ("tmux", "lz4", "ssh") if shutil.which(t) is None]
    if not Path(sshd_bin).exists() or missing or os.geteuid() != 0:
        reason = "needs openssh-server, tmux, lz4 and root; tests/install-deps.sh installs them"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    d = tmp_path_factory.mktemp("sshd")
    for key in ("host", "user"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)],
                       check=True)
    shutil.copy(d / "user.pub", d / "authorized_keys")
    port = _port()
    (d / "sshd_config").write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {d}/host
PidFile {d}/sshd.pid
AuthorizedKeysFile {d}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
""")
    Path("/run/sshd").mkdir(exist_ok=True)
    subprocess.run([sshd_bin, "-f", str(d / "sshd_config"), "-E", str(d / "sshd.log")],
                   check=True)
    yield {"dir": d, "port": port}
    os.kill(int((d / "sshd.pid").read_text()), signal.SIGTERM)


@pytest.fixture(scope="module")
def dev(slurm, sshd, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The built bundle, and the environment its scripts run in on the login node."""
    folder = tmp_path_factory.mktemp("dev")
    project = f"devtest-{secrets.token_hex(4)}"  # its node file lives in ~/.jobpack/dev/
    (folder / "project.yaml").write_text(f"""project: {project}
clusters:
  lab: {{kind: slurm, partition: debug, login: loop}}
dev:
  box:
    cluster: lab
    alias: box-alias
    resources: {{cpus: 1, mem: 100}}
    scratch: "{folder}/scratch/${{USER}}/box"
    backup: "{folder}/shared/box backups"
    every: 5s
    keep: 2
  data:
    cluster: lab
    scratch: "{folder}/scratch/data"
    backup: "{folder}/shared/data"
    every: 5s
    keep: 2
""")
    result = build(folder / "project.yaml", folder / "out")
    assert result.code == 0, result.stderr
    d, port = sshd["dir"], sshd["port"]
    client = f"""  User root
  IdentityFile {d}/user
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  BatchMode yes
  LogLevel ERROR
"""
    # The user's ~/.ssh/config: the login host, the alias's user and port (22 on a real
    # cluster), and the generated entry included.
    (folder / "ssh_config").write_text(
        f"Host loop\n  HostName 127.0.0.1\n  Port {port}\n{client}"
        f"Host box-alias\n  Port {port}\n{client}"
        f"Include {folder}/out/dev/box/ssh_config\n")
    # The ProxyCommand's ssh finds the login host in that same config.
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(f"#!/bin/sh\nexec /usr/bin/ssh -F '{folder}/ssh_config' \"$@\"\n")
    (bin_dir / "ssh").chmod(0o755)
    (folder / "tmux").mkdir()
    home = pwd.getpwuid(os.getuid()).pw_dir  # where sshd logs the login node's user in
    env = {**slurm.env, "HOME": home, "USER": "root", "SHELL": "/bin/bash",
           "TMUX_TMPDIR": str(folder / "tmux"), "JOBPACK_DEV_WAIT": "60",
           "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop("TMUX", None)
    yield {"folder": folder, "out": folder / "out" / "dev", "env": env, "slurm": slurm}
    subprocess.run(["tmux", "kill-server"], env=env, capture_output=True, check=False)
    slurm.cancel_all()
    shutil.rmtree(Path(home) / ".jobpack" / "dev" / project, ignore_errors=True)


def run(script: Path, *args: str, env: dict[str, str], check: bool = True,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["bash", str(script), *args], env=env, cwd="/", capture_output=True,
                          text=True, check=False, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"{script.name} {args}: {proc.stdout}\n{proc.stderr}"
    return proc


def backups(folder: Path, name: str) -> list[Path]:
    """Complete backups, oldest first (the names sort by time)."""
    return sorted(p for p in folder.glob(f"*-{name}-*.tar.lz4") if p.is_file())


def listing(tar_lz4: Path) -> list[str]:
    proc = subprocess.run(f"lz4 -dc '{tar_lz4}' | tar -t", shell=True, capture_output=True,
                          text=True, check=True)
    return proc.stdout.splitlines()


def make_tree(root: Path, files: int = 5000) -> None:
    """Files in folders, hostile names, a symlink, an empty folder, and modes."""
    for i in range(files - len(HOSTILE)):
        sub = root / f"d{i // 500:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i:05d}.txt").write_text(f"file {i}\n")
    odd = root / "odd names"
    odd.mkdir()
    for i, name in enumerate(HOSTILE):
        (odd / name).write_bytes(f"{i} {name}\n".encode())
    (root / "empty folder").mkdir()
    (root / "link to d00").symlink_to("d00/f00000.txt")
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    (root / "secret.txt").write_text("mine\n")
    (root / "secret.txt").chmod(0o600)
    (root / "locked").mkdir()
    (root / "locked").chmod(0o700)


def modes(root: Path) -> dict[str, tuple[int, str]]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.relative_to(root).as_posix() == STAMP:
            continue
        st = p.lstat()
        out[p.relative_to(root).as_posix()] = (
            stat.S_IMODE(st.st_mode), os.readlink(p) if p.is_symlink() else "")
    return out


def same_tree(a: Path, b: Path) -> None:
    # Scratch's record of its backup differs by design: all else is the same.
    proc = subprocess.run(["diff", "-r", "--no-dereference", "-x", STAMP, str(a), str(b)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert modes(a) == modes(b)


def test_backup_round_trip_is_byte_identical(dev, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out, env, folder = dev["out"] / "data", dev["env"], dev["folder"]
    scratch, shared = folder / "scratch" / "data", folder / "shared" / "data"
    # First time: no backup yet, so init-scratch.sh creates scratch and its first backup.
    first = run(out / "init-scratch.sh", env=env)
    assert scratch.is_dir() and len(backups(shared, "data")) == 1, first.stderr
    make_tree(scratch)
    (tmp_path / "before").mkdir()
    subprocess.run(["cp", "-a", f"{scratch}/.", str(tmp_path / "before")], check=True)
    run(out / "backup.sh", env=env)
    newest = backups(shared, "data")[-1]
    assert subprocess.run(["lz4", "-t", str(newest)], capture_output=True).returncode == 0
    # A scratch that holds files is kept (it persists on a node).
    kept = run(out / "init-scratch.sh", env=env)
    assert "kept as it is" in kept.stderr
    shutil.rmtree(scratch)
    run(out / "init-scratch.sh", env=env)
    same_tree(tmp_path / "before", scratch)
    assert not list(scratch.parent.glob("*.restoring.*"))

    # SIGKILL in the middle of a backup: the previous one stays the newest, intact, and the
    # partial file is never restored.
    big = scratch / "big.bin"
    with big.open("wb") as fh:  # sparse: costs no disk, but tar reads all of it
        fh.truncate(3 * 2**30)
    proc = subprocess.Popen(["bash", str(out / "backup.sh")], env=env, cwd="/",
                            start_new_session=True, stderr=subprocess.PIPE)
    wait_until(lambda: any(p.stat().st_size > 0 for p in shared.glob(".*-data-*.partial")),
               30, "the backup under way")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert backups(shared, "data")[-1] == newest
    assert list(shared.glob(".*-data-*.partial")), "the killed backup left its partial file"
    assert subprocess.run(["lz4", "-t", str(newest)], capture_output=True).returncode == 0
    shutil.rmtree(scratch)
    run(out / "init-scratch.sh", env=env)
    same_tree(tmp_path / "before", scratch)
    # The next backup clears what the killed one left, and keeps the last two.
    run(out / "backup.sh", env=env)
    assert not list(shared.glob(".*-data-*.partial"))
    assert len(backups(shared, "data")) == 2
    assert backups(shared, "data")[0] == newest


def test_auto_backup_runs_on_schedule_and_keeps_two(dev) -> None:  # type: ignore[no-untyped-def]
    out, env, folder = dev["out"] / "data", dev["env"], dev["folder"]
    shared = folder / "shared" / "data"
    (folder / "scratch" / "data").mkdir(parents=True, exist_ok=True)
    log = folder / "auto.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(["bash", str(out / "auto-backup.sh")], env=env, cwd="/",
                                stderr=fh)
    try:
        wait_until(lambda: log.read_text().count("backup /") >= 3, 25, "three backups")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
    text = log.read_text()
    assert "final backup" in text
    made = [line for line in text.splitlines() if "] backup /" in line]
    assert len(made) >= 4, text  # three on schedule, one at the end signal
    stamps = [time.mktime(time.strptime(line[1:21], "%Y-%m-%dT%H:%M:%SZ")) for line in made]
    gaps = [b - a for a, b in zip(stamps[:2], stamps[1:3], strict=True)]
    assert all(4 <= g <= 8 for g in gaps), (gaps, text)
    assert len(backups(shared, "data")) == 2


def test_allocate_connect_move_and_release(dev) -> None:  # type: ignore[no-untyped-def]
    out, env, folder, slurm = dev["out"] / "box", dev["env"], dev["folder"], dev["slurm"]
    config = folder / "ssh_config"
    shared = folder / "shared" / "box backups"

    def ours() -> list[list[str]]:
        text = slurm.squeue("-h", "-o", "%i|%j|%T|%N")
        rows = [line.split("|") for line in text.splitlines()]
        return [r for r in rows if r[1].startswith("jobpack-dev:") and r[1].endswith(":box")]

    def session() -> bool:
        return subprocess.run(["tmux", "has-session", "-t", "=" + session_name], env=env,
                              capture_output=True).returncode == 0

    def via_alias() -> tuple[str, str]:
        proc = subprocess.run(["/usr/bin/ssh", "-F", str(config), "box-alias", "hostname"],
                              env=env, capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip(), proc.stderr

    session_name = next(line.split("=", 1)[1].strip("'") for line in
                        (out / "allocate.sh").read_text().splitlines()
                        if line.startswith("jp_session="))
    first = run(out / "allocate.sh", env=env)
    node = first.stdout.strip()
    assert node in slurm.names, first.stderr
    assert [r[2:] for r in ours()] == [["RUNNING", node]]
    job = ours()[0][0]
    assert session()
    again = run(out / "allocate.sh", env=env)
    assert again.stdout.strip() == node and "reusing allocation" in again.stderr
    assert [r[0] for r in ours()] == [job]
    steps = slurm.squeue("-h", "-s", "-j", job, "-o", "%j").split()
    assert steps.count("scratch") == 1, steps  # init-scratch.sh, then auto-backup.sh

    host, said = via_alias()
    assert host == socket.gethostname() and f"box-alias: node {node}" in said

    # init-scratch.sh ran on the node (first backup), auto-backup.sh runs there.
    wait_until(lambda: len(backups(shared, "box")) >= 1, 30, "the first backup")
    scratch = folder / "scratch" / "root" / "box"
    (scratch / "work.txt").write_text("unsaved work\n")
    before = set(backups(shared, "box"))
    released = run(out / "release.sh", env=env)
    assert "ending auto-backup" in released.stderr  # its final backup, waited for
    assert ours() == [] and not session()
    final = [p for p in backups(shared, "box") if p not in before]
    assert final and "./work.txt" in listing(final[-1])
    assert len(backups(shared, "box")) <= 2

    other = next(n for n in slurm.names if n != node)
    moved = run(out / "allocate.sh", "--node", other, "--no-scratch", env=env)
    assert moved.stdout.strip() == other
    host, said = via_alias()
    assert host == socket.gethostname() and f"box-alias: node {other}" in said
    status = run(out / "status.sh", env=env).stdout
    assert f"node: {other}" in status and "newest backup: " in status
    [row] = json.loads(run(out / "status.sh", "--format", "json", env=env).stdout)
    assert row["node"] == other and row["newest_backup"] in status
    run(out / "release.sh", "--no-backup", env=env)
    assert ours() == [] and not session()
    gone = subprocess.run(["/usr/bin/ssh", "-F", str(config), "box-alias", "true"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert gone.returncode != 0 and "no allocation" in gone.stderr
