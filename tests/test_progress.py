"""Progress of a build on a terminal: one line of stderr, redrawn and cleared, only on a
terminal and only once the build has run for a while; nothing of it anywhere else."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from conftest import copy_project


def run_on_terminal(folder: Path, **env: str) -> tuple[int, str, str]:
    """``jobpack`` in ``folder`` with stderr on a pseudo-terminal: (status, stdout, what
    the terminal received)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "jobpack"], cwd=folder, stdout=subprocess.PIPE,
                            stderr=follower, env={**os.environ, "TERM": "xterm", **env})
    os.close(follower)
    screen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        screen += chunk
    stdout = proc.stdout.read() if proc.stdout else b""
    os.close(leader)
    return proc.wait(), stdout.decode(), screen.decode()


def test_a_long_build_shows_its_progress_on_a_terminal(tmp_path: Path) -> None:
    folder = copy_project("full", tmp_path / "full").parent
    code, stdout, screen = run_on_terminal(folder, JOBPACK_PROGRESS_AFTER="0")
    assert code == 0, screen
    shown = re.findall(r"\r\x1b\[Kjobpack: rendered (\d+) of (\d+) groups, "
                       r"linted (\d+) of (\d+) scripts", screen)
    assert shown, screen
    rendered, groups, linted, scripts = map(int, shown[-1])
    assert (rendered, linted) == (groups, scripts) and groups > 5 and scripts > 5
    assert screen.endswith("\r\x1b[K")  # cleared at the end
    assert "\x1b" not in stdout and "jobpack: rendered" not in stdout


def test_no_progress_off_a_terminal_or_before_a_second(tmp_path: Path) -> None:
    folder = copy_project("full", tmp_path / "full").parent
    piped = subprocess.run([sys.executable, "-m", "jobpack"], cwd=folder, capture_output=True,
                           text=True, env={**os.environ, "TERM": "xterm",
                                           "JOBPACK_PROGRESS_AFTER": "0"})
    assert piped.returncode == 0
    assert "\x1b" not in piped.stdout + piped.stderr and "\r" not in piped.stderr
    # A build shorter than the threshold (a minute here) draws nothing on the terminal.
    code, _stdout, screen = run_on_terminal(folder, JOBPACK_PROGRESS_AFTER="60")
    assert code == 0 and "jobpack: rendered" not in screen
