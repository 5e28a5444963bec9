"""Generated sync scripts against real rclone (a local folder and a served WebDAV), and
--skip-missing against rclone, rsync and lftp."""

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

HOSTILE = ["a b.txt", "it's \"q\".txt", "-leading dash.txt", "new\nline.txt", "sub/ünï ✓.txt",
           "sub/deeper/$(touch pwned).txt"]
PROJECT = """project: data
storage:
  dav: {rclone: dav, path: base}
syncs:
  push: {from: ./src, to: "dav:{{ project }}/in", mode: sync, exclude: ["*.tmp"], retries: 0}
  pull: {from: "dav:{{ project }}/in", to: ./back, every: 30s, retries: 0}
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def need(*tools: str) -> None:
    """Skip without the tools, but fail in CI, where tests/install-deps.sh installed them."""
    for tool in tools:
        if shutil.which(tool) is None:
            if os.environ.get("CI"):
                pytest.fail(f"{tool} is not installed; tests/install-deps.sh installs it")
            pytest.skip(f"{tool} is not installed; tests/install-deps.sh installs it")


def disk_remote(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """An rclone remote 'disk' on the local backend (an alias of a new folder), and the
    environment naming its config."""
    disk = tmp_path / "disk"
    disk.mkdir()
    conf = tmp_path / "rclone.conf"
    conf.write_text(f"[disk]\ntype = alias\nremote = {disk}\n")
    return disk, {**os.environ, "RCLONE_CONFIG": str(conf)}


@pytest.fixture
def dav(tmp_path: Path):  # type: ignore[no-untyped-def]
    """rclone serving a folder over WebDAV on loopback, and a config naming it 'dav'."""
    need("rclone")
    root = tmp_path / "served"
    root.mkdir()
    port = _port()
    server = subprocess.Popen(["rclone", "serve", "webdav", str(root), "--dir-cache-time", "0s",
                               "--addr",
                               f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    conf = tmp_path / "rclone.conf"
    conf.write_text(f"[dav]\ntype = webdav\nurl = http://127.0.0.1:{port}\nvendor = other\n")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    env = {**os.environ, "RCLONE_CONFIG": str(conf)}
    env.pop("AWS_CA_BUNDLE", None)
    yield root, env
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=10)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "project.yaml").write_text(PROJECT)
    assert build(folder / "project.yaml", folder / "out").code == 0
    src = folder / "src"
    for i, name in enumerate(HOSTILE):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(f"{i} {name}\n".encode() * 100)
    (src / "scratch.tmp").write_text("excluded")
    return folder


def sh(work: Path, script: str, *args: str, env: dict[str, str],
       check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["bash", f"out/sync/{script}.sh", *args], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in root.rglob("*") if p.is_file() and not p.name.startswith(".jobpack-")}


def test_push_then_pull_keeps_hostile_names_and_marks_done(dav, work: Path) -> None:  # type: ignore[no-untyped-def]
    served, env = dav
    assert sh(work, "push", "status", env=env).stdout == "absent\n"
    sh(work, "push", env=env)
    dest = served / "base/data/in"
    want = {k: v for k, v in tree(work / "src").items() if not k.endswith(".tmp")}
    assert tree(dest) == want
    assert (dest / ".jobpack-done").read_text().startswith("done ")
    # rclone lists a newline in a name as U+240A, so every record stays on one line.
    assert ",new\u240aline.txt\n" in (dest / ".jobpack-manifest").read_text()
    assert sh(work, "push", "status", env=env).stdout == "done\n"
    assert not list(work.rglob("pwned")) and not list(served.rglob("pwned"))

    stamps = {p: p.stat().st_mtime_ns for p in dest.rglob("*") if p.is_file()}
    sh(work, "push", env=env)
    assert {p: p.stat().st_mtime_ns for p in dest.rglob("*") if p.is_file()
            and not p.name.startswith(".jobpack-")} == \
        {p: t for p, t in stamps.items() if not p.name.startswith(".jobpack-")}, \
        "a second run rewrote files"

    (dest / "extra.txt").write_text("not in the source")
    assert sh(work, "push", "status", env=env).stdout == "partial\n"
    sh(work, "push", env=env)
    assert not (dest / "extra.txt").exists(), "mode: sync deletes what the source lacks"


def test_interrupted_transfer_is_partial_until_completed(dav, work: Path) -> None:  # type: ignore[no-untyped-def]
    served, env = dav
    for i in range(40):
        (work / "src" / f"big{i:02d}.bin").write_bytes(os.urandom(64 * 1024))
    slow = {**env, "RCLONE_BWLIMIT": "256k"}
    proc = subprocess.Popen(["bash", "out/sync/push.sh"], cwd=work, env=slow,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    dest = served / "base/data/in"
    # Killed once the first file has arrived, well before 2.5 MB at 256 kB/s have.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and not (
            dest.is_dir() and any(p.is_file() for p in dest.rglob("*"))):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (dest / ".jobpack-done").exists(), "the transfer ended before it was killed"
    assert sh(work, "push", "status", env=env).stdout == "partial\n"
    sh(work, "push", env=env)
    assert sh(work, "push", "status", env=env).stdout == "done\n"
    assert len(tree(served / "base/data/in")) == len(HOSTILE) + 40


def test_periodic_pull_runs_a_final_pass_on_sigterm(dav, work: Path) -> None:  # type: ignore[no-untyped-def]
    served, env = dav
    sh(work, "push", env=env)
    proc = subprocess.Popen(["bash", "out/sync/pull.sh"], cwd=work, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (work / "back/.jobpack-done").exists():
        time.sleep(0.2)
    (served / "base/data/in/late.txt").write_text("written after the first pass")
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "final pass" in err, err
    assert (work / "back/late.txt").read_text() == "written after the first pass", err
    assert sh(work, "pull", "status", env=env).stdout == "done\n"


def test_every_option_repeats_and_usr1_stops_with_a_final_pass(dav, work: Path) -> None:  # type: ignore[no-untyped-def]
    served, env = dav
    bad = sh(work, "push", "--every", "10x", env=env, check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("Usage: "), bad.stderr
    proc = subprocess.Popen(["bash", "out/sync/push.sh", "--every", "2s", "--wait-first"],
                            cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    dest = served / "base/data/in"
    time.sleep(0.5)
    assert not dest.exists(), "--wait-first transferred before its first pause"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (dest / ".jobpack-done").exists():
        time.sleep(0.2)
    (work / "src" / "late.txt").write_text("after the first pass")
    proc.send_signal(signal.SIGUSR1)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert err.count(": done") >= 2 and "final pass" in err, err
    assert (dest / "late.txt").read_text() == "after the first pass"


def test_local_rclone_remote_push_pull(tmp_path: Path) -> None:
    """An rclone remote on the local backend (an alias of a folder, as for a mounted disk)."""
    need("rclone")
    disk, env = disk_remote(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    (work / "project.yaml").write_text(PROJECT.replace("dav: {rclone: dav", "dav: {rclone: disk"))
    assert build(work / "project.yaml", work / "out").code == 0
    for i, name in enumerate(HOSTILE):
        (work / "src" / name).parent.mkdir(parents=True, exist_ok=True)
        (work / "src" / name).write_text(f"{i}\n")
    sh(work, "push", env=env)
    assert tree(disk / "base/data/in") == tree(work / "src")
    assert sh(work, "push", "status", env=env).stdout == "done\n"
    sh(work, "pull", "--every", "0", env=env)
    assert tree(work / "back") == tree(work / "src")
    assert sh(work, "pull", "status", env=env).stdout == "done\n"


SKIP_MISSING = """project: data
storage:
  disk: {rclone: disk, path: base}
  files: {ftp: 127.0.0.1, port: PORT, path: up}
syncs:
  by_rclone: {from: ./missing, to: "disk:in", retries: 0}
  by_rsync: {from: ./missing, to: ./dest, retries: 0}
  by_lftp: {from: ./missing, to: "files:in", retries: 0}
  from_remote: {from: "disk:absent", to: ./back, retries: 0}
"""


@pytest.mark.parametrize("name", ["by_rclone", "by_rsync", "by_lftp"])
def test_skip_missing_sends_nothing_from_a_source_that_is_not_there(name: str,
                                                                     tmp_path: Path) -> None:
    """--skip-missing (what a job's stage-out passes on each node): a local source folder
    that does not exist is a pass with nothing to do, with a warning; without it, a failure.
    It never touches the destination, and a source elsewhere is not skipped."""
    need("rclone", "rsync", "lftp")
    disk, env = disk_remote(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    (work / "project.yaml").write_text(SKIP_MISSING.replace("PORT", str(_port())))
    result = build(work / "project.yaml", work / "out")
    assert result.code == 0, result.stderr

    skipped = sh(work, name, "--skip-missing", env=env)
    assert "warning: ./missing does not exist on" in skipped.stderr, skipped.stderr
    assert "nothing to transfer" in skipped.stderr
    assert not (work / "dest").exists() and not list(disk.iterdir())
    failed = sh(work, name, env=env, check=False)
    assert failed.returncode != 0 and "does not exist on" not in failed.stderr, failed.stderr
    remote = sh(work, "from_remote", "--skip-missing", env=env, check=False)
    assert remote.returncode != 0 and "nothing to transfer" not in remote.stderr, remote.stderr
