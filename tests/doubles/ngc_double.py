"""A test double of the ``ngc`` CLI: a server in the test process, and ``bin/ngc``, a client
put first on PATH that hands its argv to the server and prints the answer (``bin/ngc-python``
does the same in Python, over the server's Unix socket).

The server checks every command with ngcsdk's own parser (``ngc_parser``), so it accepts
exactly what the real CLI accepts; it records every call, gives job ids, and plays each job
through a scripted sequence of states, one step each time the job is looked at. Jobs can be
made older than NGC's 7-day job history: ``batch list`` then leaves them out, as NGC does,
while ``batch info <id>`` still answers. ``batch list`` keeps to its ``--begin-time`` /
``--end-time`` window and, with ``--label``, to the jobs with a label matching one of the
globs. With ``fail_after_create`` set, that fraction of ``batch run`` calls (drawn from a
seeded generator) creates the job and then fails, as a CLI losing the server's answer does.
With ``run_delay`` set, ``batch run`` answers that many seconds after creating the job, as
the real CLI takes about a second; calls are served side by side, so launches made at once
overlap. ``quiet()`` tells when no call is being served or waiting to be.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import os
import random
import select
import socketserver
import sys
import threading
import time
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

    @property
    def labels(self) -> list[str]:
        return list(self.body.get("userLabels") or [])

    def json(self, state: str) -> dict[str, Any]:
        return {"id": self.id, "createdDate": self.created.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "jobDefinition": {"name": self.name, "resources": {"name": self.instance}},
                "jobStatus": {"status": state, "jobId": self.id},
                "labels": {"userLabels": {"values": self.labels}}}


@dataclass
class NgcDouble:
    socket_path: Path
    script: Script = lambda name, instance: ["QUEUED", "RUNNING", "FINISHED_SUCCESS"]
    jobs: dict[int, Job] = field(default_factory=dict)
    calls: list[list[str]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)  # job names whose launch fails
    fail_after_create: float = 0.0  # fraction of launches that create the job, then fail
    list_lag: float = 0.0  # seconds a new job stays out of `batch list`, as NGC's may
    run_delay: float = 0.0  # seconds `batch run` takes to answer, after creating the job
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    next_id: int = 4_000_000
    port: int = 0  # of the TCP server, once serve() has started it
    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0  # connections accepted and not yet answered
    runs_now: int = 0  # `batch run` calls being answered
    runs_most: int = 0  # the most `batch run` calls answered at once
    accepting: threading.Lock = field(default_factory=threading.Lock)
    listener: Any = None  # the TCP server's socket

    @property
    def env(self) -> dict[str, str]:
        # The test's own Python first: `python3` then starts without a version manager's shim.
        python = Path(sys.executable).parent
        return {"PATH": os.pathsep.join((str(BIN), str(python), os.environ["PATH"])),
                "NGC_DOUBLE_SOCKET": str(self.socket_path), "NGC_DOUBLE_PORT": str(self.port),
                # the scripts wait this long for NGC to list a new job; the double lists
                # it at once, unless list_lag says otherwise
                "JOBPACK_NGC_LIST_DELAY": str(int(self.list_lag * 2 + 0.999))}

    def by_name(self, name: str) -> list[Job]:
        return [j for j in self.jobs.values() if j.name == name]

    def age(self, days: float) -> None:
        """Make every job so far ``days`` older."""
        for job in self.jobs.values():
            job.created -= dt.timedelta(days=days)

    def handle(self, argv: list[str]) -> tuple[int, str, str]:
        run = argv[:2] == ["batch", "run"]
        with self.lock:
            answer = self._handle(argv)
            self.runs_now += run
            self.runs_most = max(self.runs_most, self.runs_now)
        try:
            if run and self.run_delay:
                time.sleep(self.run_delay)  # the job exists; the answer takes its time
        finally:
            with self.lock:
                self.runs_now -= run
        return answer

    def _handle(self, argv: list[str]) -> tuple[int, str, str]:
        self.calls.append(argv)
        if argv[:1] != ["batch"] or len(argv) < 2:
            return 2, "", f"ngc double: only `ngc batch ...` is played, not {argv}\n"
        try:
            return self._batch(argv[1], argv[2:])
        except ValueError as exc:
            return 1, "", f"{exc}\n"

    def quiet(self) -> bool:
        """No call is being served, and none is waiting to be accepted: every call a killed
        client made has had its effect."""
        with self.accepting:
            pending = bool(select.select([self.listener], [], [], 0)[0])
            return not pending and self.in_flight == 0

    def _batch(self, sub: str, args: list[str]) -> tuple[int, str, str]:
        if sub == "run":
            return self._run(args)
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

    def _run(self, args: list[str]) -> tuple[int, str, str]:
        body = parse_batch_run(args)
        if body["name"] in self.refuse:
            return 1, "", f"Job '{body['name']}' refused (test double).\n"
        job = Job(self.next_id, body["name"], body["aceInstance"], body,
                  self.script(body["name"], body["aceInstance"]), dt.datetime.now(dt.UTC))
        self.jobs[job.id] = job
        self.next_id += 1
        if self.fail_after_create and self.rng.random() < self.fail_after_create:
            return 1, "", "Error: The read operation timed out (test double: job created).\n"
        return 0, _dump({"job": job.json(job.status), "jobStatusHistory": []}), ""

    def _list(self, ns: Any) -> list[dict[str, Any]]:
        now = dt.datetime.now(dt.UTC)
        begin, end = (t.replace(tzinfo=dt.UTC) if t else None
                      for t in (ns.begin_time, ns.end_time))
        out = []
        for job in self.jobs.values():
            if now - job.created > HISTORY:
                continue  # NGC's job history ends here
            if (now - job.created).total_seconds() < self.list_lag:
                continue  # not listed yet
            if (begin and job.created < begin) or (end and job.created > end):
                continue
            if ns.label and not any(fnmatch.fnmatchcase(label, glob)
                                    for glob in ns.label for label in job.labels):
                continue
            out.append(job.json(job.look()))
        return out

    def _job(self, ident: int) -> Job:
        if ident not in self.jobs:
            raise ValueError(f"Job '{ident}' could not be found.")
        return self.jobs[ident]

    def serve(self) -> Servers:
        """Answer on the Unix socket (JSON) and on a port of 127.0.0.1 (NUL-separated words,
        which bin/ngc speaks with bash alone, so a call starts no interpreter)."""
        double = self

        class JsonHandler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                argv = json.loads(self.rfile.readline())
                code, out, err = double.handle(argv)
                self.wfile.write(json.dumps({"code": code, "out": out, "err": err}).encode())

        class WordHandler(socketserver.StreamRequestHandler):
            """Request: the number of words, then the words, each ended by NUL. Answer: the
            exit code, stdout and stderr, each ended by NUL."""

            def handle(self) -> None:
                count = int(self._word())
                code, out, err = double.handle([self._word() for _ in range(count)])
                self.wfile.write(f"{code}\0{out}\0{err}\0".encode())

            def _word(self) -> str:
                data = bytearray()
                while (byte := self.rfile.read(1)) not in (b"\0", b""):
                    data += byte
                return data.decode()

        class Tcp(socketserver.ThreadingMixIn, socketserver.TCPServer):
            daemon_threads = True
            request_queue_size = 128  # launches made at once connect at once

            def get_request(self) -> Any:
                with double.accepting:  # accepted and counted at once (see quiet())
                    request = super().get_request()
                    double.in_flight += 1
                return request

            def shutdown_request(self, request: Any) -> None:
                super().shutdown_request(request)
                with double.accepting:
                    double.in_flight -= 1

        unix = socketserver.UnixStreamServer(str(self.socket_path), JsonHandler)
        tcp = Tcp(("127.0.0.1", 0), WordHandler)
        self.port = tcp.server_address[1]
        self.listener = tcp.socket
        for server in (unix, tcp):
            threading.Thread(target=server.serve_forever, daemon=True).start()
        return Servers((unix, tcp))


@dataclass
class Servers:
    """The double's servers, stopped together."""

    servers: tuple[socketserver.BaseServer, ...]

    def shutdown(self) -> None:
        for server in self.servers:
            server.shutdown()

    def server_close(self) -> None:
        for server in self.servers:
            server.server_close()


def _dump(data: Any) -> str:
    return json.dumps(data, indent=4, sort_keys=True) + "\n"
