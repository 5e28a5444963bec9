"""Stage-in of many small files, packed (one tar stream) or not, over a network with delay.

Runs the generated rsync sync scripts inside a private network namespace whose loopback has
a `tc netem` delay, against an sshd started in that namespace: the delay applies to these
transfers only, nothing else on the machine. Needs root, iproute2 (`ip`, `tc`), openssh-server
and rsync. Usage:

    python bench/stage_in.py [--files 5000] [--delays 0,2,5] [--runs 3] [--work DIR]

Prints, for each one-way delay, the median seconds of each way of moving the files.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ["-rf", "sp ace.gpkg", "q'uote.gpkg", 'd"q.gpkg', "$(touch pwned).gpkg",
           "nl\nname.gpkg", "tab\tname.gpkg", "ünï.gpkg", "*glob?.gpkg", "back\\slash.gpkg"]


def run(*argv: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, text=True, capture_output=True, **kw)  # type: ignore[call-overload, no-any-return]


def setup(work: Path, ns: str, files: int) -> dict[str, str]:
    """The namespace, an sshd in it, the footprints and the bundle; returns the environment."""
    run("ip", "netns", "add", ns)
    run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
    d = work / "ssh"
    d.mkdir()
    for key in ("host", "user"):
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key))
    shutil.copy(d / "user.pub", d / "authorized_keys")
    (d / "sshd_config").write_text(f"""Port 2222
ListenAddress 127.0.0.1
HostKey {d}/host
PidFile {d}/sshd.pid
AuthorizedKeysFile {d}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
""")
    (d / "ssh_config").write_text(f"""Host scratchhost
  HostName 127.0.0.1
  Port 2222
  User root
  IdentityFile {d}/user
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  BatchMode yes
  LogLevel ERROR
""")
    Path("/run/sshd").mkdir(exist_ok=True)
    run("ip", "netns", "exec", ns, shutil.which("sshd") or "/usr/sbin/sshd",
        "-f", str(d / "sshd_config"), "-E", str(d / "sshd.log"))
    src = work / "scratch" / "staged_footprints"
    for i in range(files - len(HOSTILE)):
        sub = src / f"{i // 250:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"fp{i}.gpkg").write_text(f"footprint {i}\n")
    (src / "hostile").mkdir()
    for name in HOSTILE:
        (src / "hostile" / name).write_text(f"hostile {name}\n")
    (work / "project.yaml").write_text(f"""project: stagein
storage:
  scratch: {{ssh: scratchhost, path: "{work}/scratch"}}
syncs:
  unpacked: {{from: "scratch:staged_footprints", to: ./node/unpacked, retries: 0}}
  packed: {{from: "scratch:staged_footprints", to: ./node/packed, pack: tar, retries: 0}}
""")
    proc = subprocess.run([sys.executable, "-m", "generators.cli", "build", "-p",
                           str(work / "project.yaml"), "-o", str(work / "out")],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(proc.stderr)
    env = {**os.environ, "RSYNC_RSH": f"ssh -F {d / 'ssh_config'}"}
    deadline = time.monotonic() + 20
    while subprocess.run(["ip", "netns", "exec", ns, "ssh", "-F", str(d / "ssh_config"),
                          "scratchhost", "true"], capture_output=True).returncode:
        if time.monotonic() > deadline:
            raise SystemExit((d / "sshd.log").read_text())
        time.sleep(0.2)
    return env


def stage_in(work: Path, ns: str, sync: str, env: dict[str, str], files: int) -> float:
    shutil.rmtree(work / "node" / sync, ignore_errors=True)
    start = time.monotonic()
    subprocess.run(["ip", "netns", "exec", ns, "bash", f"out/sync/{sync}.sh"], cwd=work,
                   env=env, check=True, capture_output=True)
    took = time.monotonic() - start
    got = sum(1 for p in (work / "node" / sync).rglob("*")
              if p.is_file() and not p.name.startswith(".jobpack-"))
    if got != files:
        raise SystemExit(f"{sync}: {got} files arrived, not {files}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--delays", default="0,2,5", help="one-way delays in ms")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="jpstagein"))
    ns = f"jpstagein{os.getpid()}"
    try:
        env = setup(work, ns, args.files)
        print(f"{args.files} files, median of {args.runs} run(s), seconds")
        print("| one-way delay | unpacked (rsync) | packed (tar stream, then rsync check) |")
        print("|---|---|---|")
        qdisc = "add"
        for delay in (int(x) for x in args.delays.split(",")):
            if delay:
                proc = subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", qdisc, "dev",
                                       "lo", "root", "netem", "delay", f"{delay}ms"],
                                      capture_output=True, text=True, check=False)
                if proc.returncode:
                    print(f"| {delay} ms | not measured: tc netem failed "
                          f"({proc.stderr.strip()}) | |", flush=True)
                    continue
                qdisc = "change"
            times = {s: statistics.median(stage_in(work, ns, s, env, args.files)
                                          for _ in range(args.runs))
                     for s in ("unpacked", "packed")}
            print(f"| {delay} ms | {times['unpacked']:.2f} | {times['packed']:.2f} |",
                  flush=True)
    finally:
        pid = work / "ssh" / "sshd.pid"
        if pid.exists():
            os.kill(int(pid.read_text()), signal.SIGTERM)
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
