"""Generated lftp sync scripts against a real FTP server (pyftpdlib) on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import build

# FTP commands end at CRLF, so no FTP server can hold a newline in a name.
HOSTILE = ["a b.txt", "it's \"q\".txt", "-leading dash.txt", "ünï ✓.txt", "$(touch pwned).txt",
           "sub dir/back\\slash.txt"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def ftp(tmp_path: Path):  # type: ignore[no-untyped-def]
    if shutil.which("lftp") is None:
        reason = "lftp is not installed; tests/install-deps.sh installs it"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    root = tmp_path / "ftproot"
    (root / "j3soon").mkdir(parents=True)
    port = _port()
    base = 30000 + port % 1000 * 20
    server = subprocess.Popen([sys.executable, "-m", "pyftpdlib", "-i", "127.0.0.1", "-p",
                               str(port), "-w", "-d", str(root), "-u", "j3 soon", "-P",
                               "pa ss'\"w,rd", "-r", f"{base}-{base + 19}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    work = tmp_path / "work"
    work.mkdir()
    (work / "project.yaml").write_text(f"""project: mnist
secrets: [FTP_USER, FTP_PASS, STORAGE_NODE_IP]
storage:
  nfs: {{ftp: "${{STORAGE_NODE_IP}}", user: "${{FTP_USER}}", password: "${{FTP_PASS}}",
        path: /j3soon, port: {port}}}
syncs:
  upload_code: {{from: ./code, to: "nfs:mnist", mode: sync, exclude: ["*.tmp"], retries: 0}}
  download_model: {{from: "nfs:mnist", to: ./results, retries: 0}}
""")
    assert build(work / "project.yaml", work / "out").code == 0
    for i, name in enumerate(HOSTILE):
        (work / "code" / name).parent.mkdir(parents=True, exist_ok=True)
        (work / "code" / name).write_bytes(f"{i} {name}\n".encode() * 50)
    (work / "code" / "skip.tmp").write_text("excluded")
    env = {**os.environ, "FTP_USER": "j3 soon", "FTP_PASS": "pa ss'\"w,rd",
           "STORAGE_NODE_IP": "127.0.0.1"}
    yield work, root / "j3soon" / "mnist", env
    server.terminate()
    server.wait(timeout=10)


def sh(work: Path, script: str, *args: str, env: dict[str, str],
       check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["bash", f"out/sync/{script}.sh", *args], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    for secret in (env.get("FTP_PASS", ""), quote(env.get("FTP_PASS", ""))):
        assert not secret or secret not in proc.stdout + proc.stderr, "the password was shown"
    return proc


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in root.rglob("*") if p.is_file() and not p.name.startswith(".jobpack-")}


def test_upload_with_delete_then_download(ftp) -> None:  # type: ignore[no-untyped-def]
    work, served, env = ftp
    assert sh(work, "upload_code", "status", env=env).stdout == "absent\n"
    sh(work, "upload_code", env=env)
    want = {k: v for k, v in tree(work / "code").items() if not k.endswith(".tmp")}
    assert tree(served) == want
    assert (served / ".jobpack-done").read_text().startswith("done ")
    assert sh(work, "upload_code", "status", env=env).stdout == "done\n"
    assert not list(work.rglob("pwned")) and not list(served.rglob("pwned"))

    (work / "code" / "a b.txt").unlink()
    (served / "stale.txt").write_text("left over from an older upload")
    sh(work, "upload_code", env=env)
    assert tree(served) == {k: v for k, v in want.items() if k != "a b.txt"}

    sh(work, "download_model", env=env)
    assert tree(work / "results") == tree(served)
    assert sh(work, "download_model", "status", env=env).stdout == "done\n"


def test_wrong_password_fails_clearly(ftp) -> None:  # type: ignore[no-untyped-def]
    work, served, env = ftp
    proc = sh(work, "upload_code", env={**env, "FTP_PASS": "wrong"}, check=False)
    assert proc.returncode != 0
    assert "Login failed" in proc.stderr or "530" in proc.stderr, proc.stderr
    assert "upload_code: failed" in proc.stderr
    assert not served.exists()


def test_missing_secret_stops_before_connecting(ftp) -> None:  # type: ignore[no-untyped-def]
    work, _served, env = ftp
    proc = sh(work, "upload_code", env={k: v for k, v in env.items() if k != "FTP_PASS"},
              check=False)
    assert proc.returncode != 0 and "FTP_PASS is not set" in proc.stderr
