"""A throw-away Slurm cluster on loopback for the test suite: munge, slurmctld and several
slurmd (emulated nodes with fake GPUs), no systemd or cgroups, everything stopped by PID.

Facts this relies on (Slurm 22.05, Debian 12):
- emulated nodes share one host: ``NodeName=node[1-N] NodeHostname=<host> Port=[P-P+N-1]``
  and one ``slurmd -N nodeK`` each; inside a job, ``$SLURMD_NODENAME`` tells them apart;
- a GPU gres needs device files: fake ones (``mknod c 1 3``) with ``AutoDetect=off``;
- ``DependencyParameters=kill_invalid_depend`` cancels jobs whose dependency failed;
- without a database, final states come from ``scontrol show job`` (kept ``MinJobAge``) and
  from the ``jobcomp/filetxt`` file.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

BINARIES = ("slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "munged", "mungekey")


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None
            and not Path("/usr/sbin", b).exists()]


def _free_port_range(count: int) -> int:
    """A base port with ``count`` consecutive free ports on 127.0.0.1."""
    for base in range(17000, 40000, 37):
        socks = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                s.bind(("127.0.0.1", port))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range on 127.0.0.1")


def _exe(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


class SlurmCluster:
    """Start with ``start()``, use ``env`` (SLURM_CONF) for the client commands, ``stop()``."""

    def __init__(self, root: Path, *, nodes: int = 2, cpus: int = 4, gpus: int = 2,
                 mem_mb: int = 2000) -> None:
        self.root, self.nodes, self.cpus, self.gpus, self.mem_mb = root, nodes, cpus, gpus, mem_mb
        self.names = [f"node{i}" for i in range(1, nodes + 1)]
        self.conf = root / "etc" / "slurm.conf"
        self.jobcomp = root / "log" / "jobcomp.txt"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def start(self) -> None:
        for sub in ("etc", "run", "log", "state", "spool", "dev"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "etc").chmod(0o700)
        (self.root / "run").chmod(0o755)
        self._start_munge()
        self._write_config()
        self._run(_exe("slurmctld"), "-i")
        for name in self.names:
            self._run(_exe("slurmd"), "-N", name)
        self._wait_idle()

    def _run(self, *argv: str) -> None:
        subprocess.run(argv, env=self.env, check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)

    def _start_munge(self) -> None:
        run, key = self.root / "run", self.root / "etc" / "munge.key"
        self._run(_exe("mungekey"), "-c", "-k", str(key))
        self._run(_exe("munged"), "-S", str(run / "munge.socket"), f"--key-file={key}",
                  f"--log-file={self.root / 'log' / 'munged.log'}",
                  f"--pid-file={run / 'munged.pid'}", f"--seed-file={run / 'munged.seed'}")

    def _write_config(self) -> None:
        r = self.root
        ctld = _free_port_range(self.nodes + 1)  # slurmctld, then one port per slurmd
        slurmd = ctld + 1
        host = socket.gethostname().split(".")[0]
        gres = ""
        if self.gpus:
            for i in range(self.gpus):
                dev = r / "dev" / f"nvidia{i}"
                try:
                    os.mknod(dev, 0o666 | 0o020000, os.makedev(1, 3))
                except (PermissionError, FileExistsError):
                    dev.touch()
            (r / "etc" / "gres.conf").write_text(
                f"AutoDetect=off\nName=gpu File={r}/dev/nvidia[0-{self.gpus - 1}]\n")
            gres = f" Gres=gpu:{self.gpus}"
        ports = f"[{slurmd}-{slurmd + self.nodes - 1}]"
        nodes = (f"NodeName=node[1-{self.nodes}] NodeHostname={host} NodeAddr=127.0.0.1 "
                 f"Port={ports}{gres}")
        self.conf.write_text(f"""ClusterName=jobpacktest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld}
SlurmdPort={slurmd}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={r}/run/munge.socket
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool/%n
SlurmctldPidFile={r}/run/slurmctld.pid
SlurmdPidFile={r}/run/slurmd-%n.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={self.jobcomp}
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
DependencyParameters=kill_invalid_depend
EnforcePartLimits=ALL
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
MinJobAge=3600
KillWait=2
InactiveLimit=0
SlurmdTimeout=300
SlurmctldTimeout=120
MaxArraySize=1001
{"GresTypes=gpu" if self.gpus else ""}
NodeName=DEFAULT CPUs={self.cpus} RealMemory={self.mem_mb} State=UNKNOWN
{nodes}
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=long Nodes=ALL MaxTime=INFINITE State=UP
""")

    def _wait_idle(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        states = ""
        while time.monotonic() < deadline:
            proc = subprocess.run(["sinfo", "-h", "-N", "-p", "debug", "-o", "%T"], env=self.env,
                                  capture_output=True, text=True, check=False)
            states = proc.stdout.split()
            if len(states) >= self.nodes and all(s == "idle" for s in states):
                return
            time.sleep(0.2)
        log = (self.root / "log" / "slurmctld.log")
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise RuntimeError(f"Slurm did not come up (nodes: {states}); slurmctld.log:\n{tail}")

    def squeue(self, *args: str) -> str:
        return subprocess.run(["squeue", *args], env=self.env, capture_output=True, text=True,
                              check=True).stdout

    def cancel_all(self) -> None:
        subprocess.run(["scancel", "--user=root"], env=self.env, check=False,
                       capture_output=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.squeue("-h", "-t", "running,completing"):
            time.sleep(0.2)

    def stop(self) -> None:
        pids = [self._pid(p) for p in sorted((self.root / "run").glob("slurm*.pid"))]
        self.cancel_all()
        subprocess.run(["scontrol", "shutdown"], env=self.env, check=False, capture_output=True)
        self._kill([p for p in pids if p], grace=10)  # scontrol shutdown stops them itself
        self._kill([p for p in [self._pid(self.root / "run" / "munged.pid")] if p], grace=0)

    @staticmethod
    def _pid(path: Path) -> int | None:
        try:
            return int(path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    @staticmethod
    def _kill(pids: list[int], grace: float) -> None:
        """Wait ``grace`` seconds for ``pids`` to end, then TERM, then KILL."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0), (None, 5.0)):
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and any(_alive(p) for p in pids):
                time.sleep(0.1)
            alive = [p for p in pids if _alive(p)]
            if not alive or sig is None:
                return
            for p in alive:
                os.kill(p, sig)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
