"""A test double of the ``ngc`` CLI: a server in the test process, and ``bin/ngc``, a client
put first on PATH that hands its argv to the server and prints the answer.

The server checks every command with ngcsdk's own parser (``ngc_parser``), so it accepts
exactly what the real CLI accepts; it records every call, gives job ids, and plays each job
through a scripted sequence of states, one step each time the job is looked at. Jobs can be
made older than NGC's 7-day job history: ``batch list`` then leaves them out, as NGC does,
while ``batch info <id>`` still answers.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socketserver
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ngc_parser import parse_batch, parse_batch_run

BIN = Path(__file__).parent / "bin"
HISTORY = dt.timedelta(days=7)
Script = Callable[[str, str], list[str]]  # (job name, instance) -> states to play


@dataclass
class Job:
    id: int
    name: str
    instance: str
    body: dict[str, Any]
    states: list[str]
    created: dt.datetime
    step: int = 0

    @property
    def status(self) -> str:
        return self.states[min(self.step, len(self.states) - 1)]

    def look(self) -> str:
        """The state now; the next look sees the next state of the script."""
        state = self.status
        self.step += 1
        return state

    def json(self, state: str) -> dict[str, Any]:
        return {"id": self.id, "createdDate": self.created.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "jobDefinition": {"name": self.name, "resources": {"name": self.instance}},
                "jobStatus": {"status": state, "jobId": self.id}}


@dataclass
class NgcDouble:
    socket_path: Path
    script: Script = lambda name, instance: ["QUEUED", "RUNNING", "FINISHED_SUCCESS"]
    jobs: dict[int, Job] = field(default_factory=dict)
    calls: list[list[str]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)  # job names whose launch fails
    next_id: int = 4_000_000
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def env(self) -> dict[str, str]:
        # The test's own Python first: `python3` then starts without a version manager's shim.
        python = Path(sys.executable).parent
        return {"PATH": os.pathsep.join((str(BIN), str(python), os.environ["PATH"])),
                "NGC_DOUBLE_SOCKET": str(self.socket_path)}

    def by_name(self, name: str) -> list[Job]:
        return [j for j in self.jobs.values() if j.name == name]

    def age(self, days: float) -> None:
        """Make every job so far ``days`` older."""
        for job in self.jobs.values():
            job.created -= dt.timedelta(days=days)

    def handle(self, argv: list[str]) -> tuple[int, str, str]:
        with self.lock:
            self.calls.append(argv)
            if argv[:1] != ["batch"] or len(argv) < 2:
                return 2, "", f"ngc double: only `ngc batch ...` is played, not {argv}\n"
            try:
                return self._batch(argv[1], argv[2:])
            except ValueError as exc:
                return 1, "", f"{exc}\n"

    def _batch(self, sub: str, args: list[str]) -> tuple[int, str, str]:
        if sub == "run":
            body = parse_batch_run(args)
            if body["name"] in self.refuse:
                return 1, "", f"Job '{body['name']}' refused (test double).\n"
            job = Job(self.next_id, body["name"], body["aceInstance"], body,
                      self.script(body["name"], body["aceInstance"]), dt.datetime.now(dt.UTC))
            self.jobs[job.id] = job
            self.next_id += 1
            return 0, _dump({"job": job.json(job.status), "jobStatusHistory": []}), ""
        ns = parse_batch(sub, args)
        if sub == "list":
            return 0, _dump(self._list(ns)), ""
        if sub == "kill":
            for ident in list(ns.jobids):
                self._job(int(ident)).states = ["KILLED_BY_USER"]
            return 0, "", ""
        job = self._job(int(str(ns.jobid).split(":")[0]))
        if sub == "info":
            state = job.look()
            return 0, _dump({"job": job.json(state), "jobStatusHistory": [{"status": state}]}), ""
        if sub == "log":
            return 0, f"log of job {job.id} ({job.name})\n", ""
        if sub == "exec":
            if job.status != "RUNNING":
                return 1, "", f"Job {job.id} is {job.status}, not RUNNING.\n"
            return 0, f"exec in job {job.id}: {getattr(ns, 'commandline', None)}\n", ""
        return 2, "", f"ngc double: batch {sub} is not played\n"

    def _list(self, ns: Any) -> list[dict[str, Any]]:
        now = dt.datetime.now(dt.UTC)
        out = []
        for job in self.jobs.values():
            if now - job.created > HISTORY:
                continue  # NGC's job history ends here
            out.append(job.json(job.look()))
        return out

    def _job(self, ident: int) -> Job:
        if ident not in self.jobs:
            raise ValueError(f"Job '{ident}' could not be found.")
        return self.jobs[ident]

    def serve(self) -> socketserver.UnixStreamServer:
        double = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                argv = json.loads(self.rfile.readline())
                code, out, err = double.handle(argv)
                self.wfile.write(json.dumps({"code": code, "out": out, "err": err}).encode())

        server = socketserver.UnixStreamServer(str(self.socket_path), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


def _dump(data: Any) -> str:
    return json.dumps(data, indent=4, sort_keys=True) + "\n"
