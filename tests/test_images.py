"""Images built from a Dockerfile spec, without a container engine: whatever the values, the
Dockerfile keeps its instructions (a value is refused, or stays a value); the bundle's
files; the run.sh helper runs its steps in order in every POSIX shell an image may have,
and stops at the first failure with its status. (tests/integration/test_images.py builds,
pushes and runs a real image.)"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import PROJECTS, build
from hostile import ATTACKS, hostile_values, tally
from hostile import dockerfile_instructions as instructions
from hypothesis import HealthCheck, given, settings

from generators.build import expected_files
from generators.errors import ProjectError
from generators.paths import Paths

SPEC: dict[str, Any] = {
    "from": "nvcr.io/nvidia/pytorch:24.01-py3",
    "apt": ["git"], "pip": ["tqdm==4.66.4"],
    "copy": [{"from": "src", "to": "/workspace/src"}],
    "env": {"A": "1"}, "workdir": "/workspace", "user": "app", "run_helper": True,
    "entrypoint": ["/run.sh"],
}
# Where a hostile value goes: (path in the spec, how the value is placed there).
PLACES = {
    "env value": lambda spec, v: spec["env"].update(B=v),
    "copy destination": lambda spec, v: spec["copy"].append({"from": "src", "to": "/d/" + v}),
    "copy source": lambda spec, v: spec["copy"].append({"from": v, "to": "/d/x"}),
    "workdir": lambda spec, v: spec.update(workdir="/w/" + v),
    "entrypoint argument": lambda spec, v: spec.update(entrypoint=["/run.sh", v]),
    "pip package": lambda spec, v: spec["pip"].append(v),
    "apt package": lambda spec, v: spec["apt"].append(v),
    "user": lambda spec, v: spec.update(user=v),
}


def _write(folder: Path, spec: dict[str, Any], source: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "src").mkdir(exist_ok=True)
    (folder / "src" / "main.py").write_text("print(1)\n")
    if source is not None and "\0" not in source and "/" not in source and source not in (
            "", ".", ".."):
        with contextlib.suppress(OSError):
            (folder / source).write_text("x\n")
    project = {"project": "p", "images": {"img": {"dockerfile": spec, "tags": ["a/img:1"]}}}
    (folder / "project.yaml").write_text(yaml.safe_dump(project, allow_unicode=True))
    return folder / "project.yaml"


def _dockerfile(folder: Path, spec: dict[str, Any], source: str | None = None) -> str | None:
    """The Dockerfile of ``spec``, or None when the build refuses it (with FILE:LINE:COL)."""
    project = _write(folder, spec, source)
    try:
        files = expected_files(Paths(project, folder / "out"))
    except ProjectError as exc:
        assert exc.problems and all(p.line >= 1 and p.col >= 1 for p in exc.problems)
        return None
    return files["images/img/Dockerfile"].text


def _spec() -> dict[str, Any]:
    return yaml.safe_load(yaml.safe_dump(SPEC))


BENIGN = ["FROM", "ENV", "RUN", "RUN", "RUN", "WORKDIR", "COPY", "COPY", "USER", "ENTRYPOINT"]


def test_instructions_of_the_benign_spec(tmp_path: Path) -> None:
    text = _dockerfile(tmp_path, _spec())
    assert text is not None
    assert instructions(text) == BENIGN


def _placed(where: str, value: str, tmp_path: Path) -> str | None:
    spec = _spec()
    PLACES[where](spec, value)
    return _dockerfile(tmp_path, spec, value if where == "copy source" else None)


def _expected(where: str) -> list[str]:
    return [*BENIGN[:7], "COPY", *BENIGN[7:]] if where.startswith("copy") else BENIGN


@pytest.mark.parametrize("where", sorted(PLACES))
@pytest.mark.parametrize("value", ATTACKS, ids=[repr(a)[:30] for a in ATTACKS])
def test_attack_is_refused_or_stays_a_value(where: str, value: str, tmp_path: Path) -> None:
    text = _placed(where, value, tmp_path)
    if text is not None:
        assert instructions(text) == _expected(where), text
        assert _hadolint(tmp_path, text) == [], text
        tally("Dockerfile: attack built", 1)


@pytest.mark.parametrize("where", sorted(PLACES))
@settings(max_examples=40, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(value=hostile_values())
def test_hostile_value_is_refused_or_stays_a_value(where: str, value: str,
                                                   tmp_path: Path) -> None:
    folder = tmp_path / f"h{abs(hash(value))}"
    text = _placed(where, value, folder)
    if text is not None:
        assert instructions(text) == _expected(where), text
        assert _hadolint(folder, text) == [], text
        tally("Dockerfile: hostile value built", 1)
    shutil.rmtree(folder, ignore_errors=True)


def _hadolint(folder: Path, text: str) -> list[str]:
    """hadolint's findings at warning or above, as the build gets them."""
    from generators.lint import hadolint

    (folder / "Dockerfile").write_text(text)
    return [f"{m.line}: {m.code} {m.text}" for m in hadolint(folder, "Dockerfile")]


def test_hostile_values_pass_hadolint(tmp_path: Path) -> None:
    """The real build (hadolint included) accepts quoted values in every place at once."""
    spec = _spec()
    value = "x'\"$(touch PWNED)`touch PWNED`;#\\ ${HOME} $1 \\"
    spec["env"]["B"] = value
    spec["workdir"] = "/w/" + value
    spec["entrypoint"] = ["/run.sh", value]
    spec["copy"].append({"from": "x'\"$(touch PWNED) (v2)+x.txt", "to": "/d/" + value})
    project = _write(tmp_path / "p", spec, "x'\"$(touch PWNED) (v2)+x.txt")
    result = build(project, tmp_path / "out")
    assert result.code == 0, result.stderr
    assert "passed hadolint" in result.stdout
    text = (tmp_path / "out" / "images" / "img" / "Dockerfile").read_text()
    assert instructions(text) == _expected("copy source")
    assert not list(tmp_path.rglob("PWNED"))


def test_newline_in_an_env_value_is_refused(tmp_path: Path) -> None:
    spec = _spec()
    spec["env"]["B"] = "ok\nRUN touch /PWNED"
    project = _write(tmp_path, spec)
    result = build(project, tmp_path / "out")
    assert result.code == 2
    assert re.search(r"project\.yaml:\d+:\d+: images\.img\.dockerfile\.env\.B: the value holds "
                     r"a newline \(U\+000A\)", result.stderr), result.stderr


def test_hadolint_refusal_fails_the_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Dockerfile hadolint rejects at warning is refused like a shellcheck finding."""
    from generators import lint

    (tmp_path / "Dockerfile").write_text("FROM a/b:latest\nUSER root\n")
    found = lint.hadolint(tmp_path, "Dockerfile")
    assert [(m.code, m.line) for m in found] == [("DL3007", 1), ("DL3002", 2)]
    monkeypatch.setenv("HADOLINT_IGNORE", "DL3007,DL3002")
    (tmp_path / ".hadolint.yaml").write_text("ignored: [DL3007, DL3002]\n")
    assert [m.code for m in lint.hadolint(tmp_path, "Dockerfile")] == ["DL3007", "DL3002"]


# The run.sh helper -------------------------------------------------------------------------

SHELLS = [argv for argv in (["dash"], ["busybox", "sh"], ["bash", "--posix"])
          if shutil.which(argv[0])]


@pytest.fixture(scope="module")
def helper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("helper")
    files = expected_files(Paths(PROJECTS / "images" / "project.yaml", folder / "out"))
    path = folder / "run.sh"
    path.write_text(files["images/mnist/run.sh"].text)
    return path


def _helper(shell: list[str], helper: Path, *args: str,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*shell, str(helper), *args], capture_output=True, text=True,
                          cwd=cwd, timeout=30, check=False)


def _steps(stderr: str) -> list[str]:
    return re.findall(r"^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\] run\.sh: (.*)$", stderr, re.M)


@pytest.mark.parametrize("shell", SHELLS, ids=[s[0] for s in SHELLS])
def test_helper_runs_steps_in_order_in_one_shell(shell: list[str], helper: Path,
                                                 tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    proc = _helper(shell, helper, "cd sub && x=kept", "pwd; echo \"$x\"", "echo 'three \"3\"'",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{tmp_path / 'sub'}\nkept\nthree \"3\"\n"
    steps = _steps(proc.stderr)
    assert steps[0] == "step 1/3: cd sub && x=kept"
    assert [s for s in steps if re.fullmatch(r"step \d/3 done in \d+s", s)] == [
        f"step {n}/3 done in 0s" for n in (1, 2, 3)]
    assert steps[-1] == "all 3 steps done"


@pytest.mark.parametrize("shell", SHELLS, ids=[s[0] for s in SHELLS])
@pytest.mark.parametrize(("failing", "status"), [("sh -c 'exit 7'", 7), ("false", 1),
                                                 ("exit 3", 3), ("no_such_command_x", 127)])
def test_helper_stops_at_the_first_failure(shell: list[str], failing: str, status: int,
                                           helper: Path) -> None:
    proc = _helper(shell, helper, "echo one", failing, "echo never")
    assert proc.returncode == status, proc.stderr
    assert proc.stdout == "one\n"
    steps = _steps(proc.stderr)
    assert f"step 2/3: {failing}" in steps
    assert any(s.startswith("step 2/3 ") and str(status) in s and "stopping" in s
               for s in steps), steps
    assert not any(s.startswith("step 3/3") for s in steps)


@pytest.mark.parametrize("shell", SHELLS, ids=[s[0] for s in SHELLS])
def test_helper_options(shell: list[str], helper: Path, tmp_path: Path) -> None:
    assert _helper(shell, helper, "-h").stdout.startswith("Usage: /run.sh")
    dry = _helper(shell, helper, "--dry-run", f"touch {tmp_path}/made", "false")
    assert dry.returncode == 0 and not (tmp_path / "made").exists()
    assert [s for s in _steps(dry.stderr)] == [f"step 1/2: touch {tmp_path}/made",
                                               "step 2/2: false"]
    dashed = _helper(shell, helper, "--", "-h")  # a command that looks like an option
    assert "step 1/1: -h" in _steps(dashed.stderr)
    nothing = _helper(shell, helper)
    assert nothing.returncode == 2 and "Usage" in nothing.stderr
