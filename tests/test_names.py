"""Any valid name builds: job, cluster, sync, storage and parameter names that are also
commands or shell words (fold, test, time, if, done, ...) or odd but allowed spellings."""

from __future__ import annotations

import json
import subprocess

from conftest import build
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

WORDS = ["fold", "sort", "test", "time", "true", "false", "echo", "cd", "exit", "export",
         "local", "set", "if", "then", "do", "done", "in", "case", "esac", "function",
         "select", "until", "while", "for", "eval", "source", "alias", "read", "kill", "wait",
         "trap", "shift", "return", "printf", "declare", "typeset", "let", "exec", "jp_die",
         "jp_log", "usage", "PATH", "HOME", "IFS", "_", "a.b-c_d", "0", "9x", "x" * 64]
NAMES = st.one_of(st.sampled_from(WORDS), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}",
                                                        fullmatch=True))
PARAMS = st.one_of(st.sampled_from([w for w in WORDS if w.isidentifier()]),
                   st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True))


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@example(name="fold", param="time")
@example(name="test", param="done")
@given(NAMES, PARAMS.filter(lambda p: p not in ("project", "user", "job", "run_id")))
def test_any_valid_name_builds_and_runs(tmp_path_factory, name: str, param: str) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("names")
    project = {
        "project": "names",
        "storage": {name: {"local": "./store"}},
        "syncs": {name: {"from": "./data", "to": f"{name}:copy"}},
        "clusters": {name: {"kind": "slurm"}},
        "jobs": {name: {"cluster": name, "sweep": {"list": [{param: "v1"}, {param: "v 2"}]},
                        "command": f"printf '%s\\n' {{{{ {param} }}}} {{{{ job }}}}"}},
    }
    (folder / "project.yaml").write_text(json.dumps(project))
    result = build(folder / "project.yaml", folder / "out")
    if result.code == 2:  # a name the schema refuses is refused with a message
        assert "Traceback" not in result.stderr and "problem" in result.stderr
        return
    assert result.code == 0, result.stderr
    script = folder / "out" / "slurm" / name / f"{name}.sbatch"
    for index, value in enumerate(["v1", "v 2"]):
        out = subprocess.run(["bash", str(script), "--index", str(index)], cwd=folder,
                             capture_output=True, text=True, check=True).stdout
        assert out == f"{value}\n{name}\n"
    (folder / "data").mkdir()
    (folder / "data" / "f").write_text("x")
    subprocess.run(["bash", str(folder / "out" / "sync" / f"{name}.sh")], cwd=folder,
                   capture_output=True, check=True)
    assert (folder / "store" / "copy" / "f").read_text() == "x"
