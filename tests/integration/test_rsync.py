"""Generated rsync sync scripts over ssh to a loopback sshd: many small files, packed or not."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import build

HOSTILE = ["a b.txt", "it's \"q\".txt", "-leading dash.txt", "new\nline.txt", "ünï ✓.txt",
           "$(touch pwned).txt", "back\\slash.txt"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """An sshd on 127.0.0.1 accepting one key, and the environment rsync needs to reach it
    as the host alias 'loop'."""
    sshd_bin = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(sshd_bin).exists() or shutil.which("rsync") is None or os.geteuid() != 0:
        reason = "needs openssh-server, rsync and root; tests/install-deps.sh installs them"
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
Subsystem sftp internal-sftp
""")
    (d / "ssh_config").write_text(f"""Host loop
  HostName 127.0.0.1
  Port {port}
  User root
  IdentityFile {d}/user
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  BatchMode yes
  LogLevel ERROR
""")
    Path("/run/sshd").mkdir(exist_ok=True)
    subprocess.run([sshd_bin, "-f", str(d / "sshd_config"), "-E", str(d / "sshd.log")],
                   check=True)
    env = {**os.environ, "RSYNC_RSH": f"ssh -F {d / 'ssh_config'}"}
    deadline = time.monotonic() + 20
    while subprocess.run(["ssh", "-F", str(d / "ssh_config"), "loop", "true"],
                         capture_output=True).returncode != 0:
        assert time.monotonic() < deadline, (d / "sshd.log").read_text()
        time.sleep(0.2)
    yield env
    os.kill(int((d / "sshd.pid").read_text()), signal.SIGTERM)


@pytest.fixture(scope="module")
def work(sshd, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("rsync")
    remote = folder / "remote"
    (folder / "project.yaml").write_text(f"""project: data
storage:
  far: {{ssh: loop, path: "{remote}"}}
syncs:
  up: {{from: ./src, to: "far:plain", mode: sync, retries: 0}}
  up_packed: {{from: ./src, to: "far:packed", mode: sync, pack: tar, retries: 0}}
  down: {{from: "far:plain", to: ./back, retries: 0}}
""")
    assert build(folder / "project.yaml", folder / "out").code == 0
    src = folder / "src"
    for i in range(20_000):
        sub = src / f"d{i // 1000:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i:05d}.txt").write_text(f"file {i}\n")
    for i, name in enumerate(HOSTILE):
        (src / "odd" / name).parent.mkdir(parents=True, exist_ok=True)
        (src / "odd" / name).write_bytes(f"{i} {name}\n".encode())
    return folder


def sh(work: Path, script: str, *args: str, env: dict[str, str]) -> tuple[str, float]:
    start = time.monotonic()
    proc = subprocess.run(["bash", f"out/sync/{script}.sh", *args], cwd=work, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout, time.monotonic() - start


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in root.rglob("*") if p.is_file() and not p.name.startswith(".jobpack-")}


@pytest.mark.parametrize("script", ["up", "up_packed"])
def test_twenty_thousand_files_arrive_verified(sshd, work: Path, script: str) -> None:  # type: ignore[no-untyped-def]
    dest = work / "remote" / ("plain" if script == "up" else "packed")
    assert sh(work, script, "status", env=sshd)[0] == "absent\n"
    _out, seconds = sh(work, script, env=sshd)
    print(f"{script}: 20,007 files in {seconds:.1f} s")
    assert tree(dest) == tree(work / "src")
    assert sh(work, script, "status", env=sshd)[0] == "done\n"
    manifest = (dest / ".jobpack-manifest").read_text()
    assert manifest.count("\n") >= 20_007 and "f19999.txt" in manifest
    assert not list(work.rglob("pwned"))


def test_second_run_moves_nothing_and_sync_deletes(sshd, work: Path) -> None:  # type: ignore[no-untyped-def]
    dest = work / "remote" / "plain"
    sh(work, "up", env=sshd)
    stamps = {p: p.stat().st_mtime_ns for p in dest.rglob("*.txt")}
    sh(work, "up", env=sshd)
    assert {p: p.stat().st_mtime_ns for p in dest.rglob("*.txt")} == stamps
    (dest / "extra.txt").write_text("not in the source")
    assert sh(work, "up", "status", env=sshd)[0] == "partial\n"
    sh(work, "up", env=sshd)
    assert not (dest / "extra.txt").exists()


def test_pull_back_is_identical(sshd, work: Path) -> None:  # type: ignore[no-untyped-def]
    sh(work, "up", env=sshd)
    sh(work, "down", env=sshd)
    assert tree(work / "back") == tree(work / "src")
    assert sh(work, "down", "status", env=sshd)[0] == "done\n"
