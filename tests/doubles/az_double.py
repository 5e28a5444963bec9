"""A test double of the ``az ml job`` CLI: a server in the test process, and ``bin/az``, a
client put first on PATH that hands its working folder and argv to the server and prints
the answer.

The server accepts exactly the grammar of ``az ml job create|show|cancel|stream|list|
download`` written down in the CLI reference (every command with ``-g/--resource-group`` and
``-w/--workspace-name``; the global ``--subscription``, ``--query status`` and ``-o``), and
refuses anything else as az does, with exit code 2. ``create`` loads the job's YAML with
azure-ai-ml's own ``load_job`` (its ``--set`` words as overrides), so a YAML Azure ML would
refuse is refused here too; names are unique, as in a workspace. Every call is recorded;
each job plays a scripted sequence of states (NotStarted, Queued, Running, then Completed,
Failed or Canceled), one step each time ``show`` looks at it. ``download`` writes one log per
process (``user_logs/std_log_process_N.txt``); ``stream`` prints rank 0's.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socketserver
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BIN = Path(__file__).parent / "bin"
FINAL = ("Completed", "Failed", "Canceled")
Script = Callable[[str], list[str]]  # display name -> states to play

# Flags of each command: name -> (destination, takes a value); "set" may repeat.
SCOPE = {"-g": ("resource_group", True), "--resource-group": ("resource_group", True),
         "-w": ("workspace", True), "--workspace-name": ("workspace", True)}
GLOBAL = {"--subscription": ("subscription", True), "--query": ("query", True),
          "-o": ("output", True), "--output": ("output", True)}
NAME = {"-n": ("name", True), "--name": ("name", True)}
COMMANDS: dict[str, tuple[dict[str, tuple[str, bool]], tuple[str, ...]]] = {
    "create": ({"-f": ("file", True), "--file": ("file", True), **NAME,
                "--set": ("set", True), "-s": ("stream", False), "--stream": ("stream", False),
                "-e": ("web", False), "--web": ("web", False), "-a": ("save_as", True),
                "--save-as": ("save_as", True), "--skip-validation": ("skip", False)},
               ("file",)),
    "show": ({**NAME, "-e": ("web", False), "--web": ("web", False)}, ("name",)),
    "cancel": (NAME, ("name",)),
    "stream": (NAME, ("name",)),
    "list": ({"-r": ("max_results", True), "--max-results": ("max_results", True),
              "--all-results": ("all_results", False), "-p": ("parent", True),
              "--parent-job-name": ("parent", True), "--include-archived": ("archived", False),
              "--archived-only": ("archived_only", False)}, ()),
    "download": ({**NAME, "--all": ("all", False), "-p": ("path", True),
                  "--download-path": ("path", True), "--output-name": ("output_name", True)},
                 ("name",)),
}
NUMBER = re.compile(r"-\d+$|-\d*\.\d+$")  # what argparse takes as a value, not an option
OUTPUTS = ("json", "jsonc", "tsv", "table", "yaml", "yamlc", "none")


class Refused(Exception):
    """A command az would refuse (exit code 2 for grammar, 1 for what the service says)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def parse(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """The command and its options, exactly as the grammar allows; Refused otherwise."""
    if argv[:2] != ["ml", "job"] or len(argv) < 3:
        raise Refused(f"az double: only `az ml job ...` is played, not {argv[:3]}")
    command = argv[2]
    if command not in COMMANDS:
        raise Refused(f"'{command}' is misspelled or not recognized by the system.")
    flags, required = COMMANDS[command]
    opts = _options(argv[3:], {**flags, **SCOPE, **GLOBAL})
    for dest in (*required, "resource_group", "workspace"):
        if dest not in opts:
            raise Refused(f"the following arguments are required: {dest}")
    if opts.get("output", "json") not in OUTPUTS:
        raise Refused(f"argument --output/-o: invalid choice: {opts['output']!r}")
    if "query" in opts and opts["query"] != "status":
        raise Refused(f"az double: --query {opts['query']!r} is not played (only status)")
    return command, opts


def _options(words: list[str], table: dict[str, tuple[str, bool]]) -> dict[str, Any]:
    """Flags and their values; a flag given twice (but --set), unknown, or without its value
    is refused."""
    opts: dict[str, Any] = {"set": []}
    i = 0
    while i < len(words):
        word, joined = words[i], None
        if word.startswith("--") and "=" in word:  # --flag=VALUE: VALUE may be anything
            word, joined = word.split("=", 1)
        if word not in table:
            raise Refused(f"unrecognized arguments: {word}")
        dest, valued = table[word]
        if dest in opts and dest != "set":
            raise Refused(f"argument {word}: expected one argument only once")
        if joined is not None and not valued:
            raise Refused(f"argument {word}: ignored explicit argument {joined!r}")
        if joined is None and valued and (i + 1 >= len(words) or (
                words[i + 1].startswith("-") and not NUMBER.fullmatch(words[i + 1]))):
            raise Refused(f"argument {word}: expected one argument")  # as argparse says
        value: Any = joined if joined is not None else words[i + 1] if valued else True
        i += 1 if joined is not None or not valued else 2
        if dest != "set":
            opts[dest] = value
        elif "=" in value:
            opts["set"].append(value)
        else:
            raise Refused(f"usage error: --set expects KEY=VALUE, got {value!r}")
    return opts


@dataclass
class Job:
    name: str
    display_name: str
    document: dict[str, Any]
    states: list[str]
    created: dt.datetime
    argv: list[str]
    step: int = 0

    @property
    def status(self) -> str:
        return self.states[min(self.step, len(self.states) - 1)]

    def look(self) -> str:
        state = self.status
        self.step += 1
        return state

    @property
    def processes(self) -> int:
        nodes = int(self.document.get("resources", {}).get("instance_count", 1))
        dist = self.document.get("distribution") or {}
        return nodes * int(dist.get("process_count_per_instance", 1))

    def json(self, state: str) -> dict[str, Any]:
        return {"name": self.name, "display_name": self.display_name, "status": state,
                "type": "command", "experiment_name": self.document.get("experiment_name"),
                "creation_context": {"created_at": self.created.isoformat()}}


@dataclass
class AzDouble:
    script: Script = lambda display: ["NotStarted", "Queued", "Running", "Completed"]
    jobs: dict[str, Job] = field(default_factory=dict)
    calls: list[list[str]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)  # display names whose create fails
    fail_after_create: set[str] = field(default_factory=set)  # created, then az fails
    show_down: bool = False  # show fails as a network error would
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0
    server: Any = None

    @property
    def env(self) -> dict[str, str]:
        python = Path(sys.executable).parent
        return {"PATH": os.pathsep.join((str(BIN), str(python), os.environ["PATH"])),
                "AZ_DOUBLE_PORT": str(self.port)}

    def by_display(self, display: str) -> list[Job]:
        return [j for j in self.jobs.values() if j.display_name == display]

    def creates(self) -> list[list[str]]:
        return [c for c in self.calls if c[:3] == ["ml", "job", "create"]]

    def handle(self, cwd: str, argv: list[str]) -> tuple[int, str, str]:
        with self.lock:
            self.calls.append(argv)
            try:
                command, opts = parse(argv)
                return getattr(self, f"_{command}")(Path(cwd), opts)
            except Refused as exc:
                return exc.code, "", f"ERROR: {exc}\n"

    def _job(self, name: str) -> Job:
        if name not in self.jobs:
            raise Refused(f"(UserError) ResourceNotFound: job '{name}' could not be found.", 1)
        return self.jobs[name]

    def _create(self, cwd: Path, opts: dict[str, Any]) -> tuple[int, str, str]:
        from azure.ai.ml import load_job

        path = cwd / opts["file"]
        overrides = [dict([s.split("=", 1)]) for s in opts["set"]]
        try:
            entity = load_job(path, params_override=overrides)
        except Exception as exc:  # what az prints for a YAML Azure ML refuses
            raise Refused(f"{type(exc).__name__}: {exc}", 1) from None
        document = _document(path, overrides)
        name = opts.get("name") or f"job_{len(self.jobs):08x}"
        if name in self.jobs:
            raise Refused(f"(UserError) A job with name '{name}' already exists.", 1)
        display = str(entity.display_name)
        if display in self.refuse:
            raise Refused(f"(UserError) compute refused job {display} (test double)", 1)
        job = Job(name, display, document, list(self.script(display)),
                  dt.datetime.now(dt.UTC), ["ml", "job", "create", *opts["set"]])
        self.jobs[name] = job
        if display in self.fail_after_create:
            raise Refused("The read operation timed out (test double: job created)", 1)
        return 0, json.dumps(job.json(job.status), indent=2) + "\n", ""

    def _show(self, cwd: Path, opts: dict[str, Any]) -> tuple[int, str, str]:
        if self.show_down:
            raise Refused("HTTPSConnectionPool: Max retries exceeded (test double)", 1)
        job = self._job(opts["name"])
        state = job.look()
        if opts.get("query") == "status":
            return 0, (state if opts.get("output") == "tsv" else json.dumps(state)) + "\n", ""
        return 0, json.dumps(job.json(state), indent=2) + "\n", ""

    def _cancel(self, cwd: Path, opts: dict[str, Any]) -> tuple[int, str, str]:
        job = self._job(opts["name"])
        if job.status in FINAL:
            raise Refused(f"(UserError) Job {job.name} is already {job.status}", 1)
        job.states, job.step = ["CancelRequested", "Canceled"], 0
        return 0, "", ""

    def _log_lines(self, job: Job, rank: int) -> list[str]:
        return [f"rank {rank} of {job.processes} ({job.display_name}): step {i}"
                for i in range(150)]

    def _stream(self, cwd: Path, opts: dict[str, Any]) -> tuple[int, str, str]:
        job = self._job(opts["name"])
        text = f"RunId: {job.name}\n" + "".join(f"{line}\n" for line in self._log_lines(job, 0))
        return 0, text + f"\nExecution Summary\n=================\nRunId: {job.name}\n", ""

    def _list(self, cwd: Path, opts: dict[str, Any]) -> tuple[int, str, str]:
        limit = None if opts.get("all_results") else int(opts.get("max_results", 50))
        jobs = sorted(self.jobs.values(), key=lambda j: j.created, reverse=True)[:limit]
        return 0, json.dumps([j.json(j.status) for j in jobs], indent=2) + "\n", ""

    def _download(self, cwd: Path, opts: dict[str, Any]) -> tuple[int, str, str]:
        job = self._job(opts["name"])
        root = cwd / opts.get("path", ".") / "artifacts"
        logs = root / "user_logs"
        logs.mkdir(parents=True, exist_ok=True)
        for rank in range(job.processes):
            (logs / f"std_log_process_{rank}.txt").write_text(
                "".join(f"{line}\n" for line in self._log_lines(job, rank)))
        (root / "system_logs").mkdir(exist_ok=True)
        (root / "system_logs" / "lifecycler.log").write_text(f"job {job.name}\n")
        return 0, f"Downloading artifact azureml://jobs/{job.name}/artifacts to {root}\n", ""

    def serve(self) -> AzDouble:
        """Answer on a port of 127.0.0.1 (NUL-separated words, as bin/az speaks)."""
        double = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                count = int(self._word())
                words = [self._word() for _ in range(count)]
                code, out, err = double.handle(words[0], words[1:])
                self.wfile.write(f"{code}\0{out}\0{err}\0".encode())

            def _word(self) -> str:
                data = bytearray()
                while (byte := self.rfile.read(1)) not in (b"\0", b""):
                    data += byte
                return data.decode("utf-8", "surrogateescape")

        class Tcp(socketserver.ThreadingMixIn, socketserver.TCPServer):
            daemon_threads = True

        self.server = Tcp(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _document(path: Path, overrides: list[dict[str, str]]) -> dict[str, Any]:
    """The YAML as Azure ML receives it: the file, with the --set values in place."""
    import yaml

    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    for override in overrides:
        for key, value in override.items():
            node = document
            *parents, last = key.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = value
    return document
