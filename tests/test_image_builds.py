"""Images built from a Dockerfile spec, without a container engine: whatever the values, the
Dockerfile keeps its instructions (a value is refused, or stays a value); the bundle's
files; the run.sh helper runs its steps in order in every POSIX shell an image may have,
and stops at the first failure with its status. (tests/integration/test_images.py builds,
pushes and runs a real image.)"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import PROJECTS, build, copy_project
from hostile import ATTACKS, hostile_values, tally
from hostile import dockerfile_instructions as instructions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


BENIGN = ["ARG", "FROM", "ENV", "RUN", "RUN", "RUN", "WORKDIR", "COPY", "COPY", "USER",
          "ENTRYPOINT"]


def test_instructions_of_the_benign_spec(tmp_path: Path) -> None:
    text = _dockerfile(tmp_path, _spec())
    assert text is not None
    assert instructions(text) == BENIGN


def _placed(where: str, value: str, tmp_path: Path) -> str | None:
    spec = _spec()
    PLACES[where](spec, value)
    return _dockerfile(tmp_path, spec, value if where == "copy source" else None)


def _expected(where: str) -> list[str]:
    return [*BENIGN[:8], "COPY", *BENIGN[8:]] if where.startswith("copy") else BENIGN


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


# What the checks refuse, each at its FILE:LINE:COL ----------------------------------------


def _problems(folder: Path, spec: dict[str, Any], **top: Any) -> list[str]:
    """The problems of a project with image img built from ``spec`` (``top``: more top-level
    keys, or tags=...), as 'PATH: MESSAGE'; [] when it builds."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "src").mkdir(exist_ok=True)
    (folder / "src" / "main.py").write_text("print(1)\n")
    tags = top.pop("tags", ["a/img:1"])
    project = {"project": "p", **top, "images": {"img": {"dockerfile": spec, "tags": tags}}}
    (folder / "project.yaml").write_text(yaml.safe_dump(project, allow_unicode=True))
    try:
        expected_files(Paths(folder / "project.yaml", folder / "out"))
    except ProjectError as exc:
        assert exc.problems and all(p.line >= 1 and p.col >= 1 for p in exc.problems)
        return [f"{p.path}: {p.message}" for p in exc.problems]
    return []


def test_a_secret_is_never_given_a_value_in_image_env(tmp_path: Path) -> None:
    spec = _spec()
    spec["env"]["HF_AUTH"] = "hf_literal_token"
    found = _problems(tmp_path, spec, secrets=["HF_AUTH"])
    assert len(found) == 1 and found[0].startswith("images.img.dockerfile.env.HF_AUTH: "
                                                   "'HF_AUTH' is a secret"), found


@pytest.mark.parametrize("copied", ["secrets.env", "out", "out/slurm", "deploy", ".jobpack",
                                    "deploy/sub"])
def test_secrets_and_bundles_are_never_copied(copied: str, tmp_path: Path) -> None:
    (tmp_path / "out" / "slurm").mkdir(parents=True)
    (tmp_path / "out" / "MANIFEST.sha256").write_text("")
    (tmp_path / "out" / "slurm" / "secrets.env").write_text("A=1\n")
    (tmp_path / "deploy" / "sub").mkdir(parents=True)
    (tmp_path / "deploy" / "sub" / "secrets.env").write_text("A=1\n")
    (tmp_path / ".jobpack").mkdir()
    (tmp_path / "secrets.env").write_text("A=1\n")
    spec = _spec()
    spec["copy"].append({"from": copied, "to": "/x"})
    found = _problems(tmp_path, spec)
    assert len(found) == 1 and "an image never holds secrets or a bundle" in found[0], found
    assert found[0].startswith("images.img.dockerfile.copy[1].from: ")


@pytest.mark.parametrize("user", ["0", "00", "000:1000", "0:0", "root", 0])
def test_root_in_any_spelling_is_refused(user: str | int, tmp_path: Path) -> None:
    spec = _spec()
    spec["user"] = user
    assert _problems(tmp_path, spec) == [
        "images.img.dockerfile.user: the user an image runs as is not root (give a login name "
        "such as 'app', or a UID)"]


@pytest.mark.parametrize("ref", ["a/b@sha256:" + "0" * 32, "a/b@md5:" + "0" * 32,
                                 "a/b:1@sha256:" + "0" * 63, "a/b@sha512:" + "0" * 64])
def test_digests_are_sha256_or_sha512(ref: str, tmp_path: Path) -> None:
    spec = _spec()
    spec["from"] = ref
    found = _problems(tmp_path, spec)
    assert len(found) == 1 and "a digest is sha256:" in found[0], found
    spec["from"] = "a/b@sha512:" + "a" * 128
    assert _problems(tmp_path / "ok", spec) == []


@pytest.mark.parametrize("tag", ["a/img", "a/img:latest", "localhost:5000/img"])
def test_a_built_image_is_pushed_to_an_explicit_tag(tag: str, tmp_path: Path) -> None:
    found = _problems(tmp_path, _spec(), tags=["a/img:1", tag])
    assert len(found) == 1 and found[0].startswith(
        "images.img.tags[1]: ") and "give the tag explicitly, other than latest" in found[0]


def test_env_references_expand_as_dockerfile_env_does(tmp_path: Path) -> None:
    spec = _spec()
    spec["env"] = {"PATH": "/opt/bin:$PATH", "B": "${HOME}/x $$HOME $(id) $1"}
    text = _dockerfile(tmp_path, spec)
    assert text is not None
    assert 'ENV B="${HOME}""/x \\$HOME \\$(id) \\$1" \\\n    PATH="/opt/bin:""${PATH}"\n' in text
    assert _hadolint(tmp_path, text) == []
    spec["env"] = {"A": "/a", "PATH": "$A/bin:$PATH"}
    assert _problems(tmp_path / "other", spec) == [
        "images.img.dockerfile.env.PATH: $A names another key of this env; a value sees the "
        "variables of the base image (and its own old value), not the others set here (write "
        "$$ for a literal $)"]


def test_a_requirements_path_the_mount_cannot_take_is_refused(tmp_path: Path) -> None:
    spec = _spec()
    spec["requirements"] = "req,uirements.txt"
    found = _problems(tmp_path, spec)
    assert len(found) == 1 and found[0].startswith("images.img.dockerfile.requirements: ")


def test_requirements_are_mounted_for_pip_not_copied(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("numpy==1.26.4\n")
    spec = _spec()
    spec["requirements"] = "./requirements.txt"
    text = _dockerfile(tmp_path, spec)
    assert text is not None
    assert "RUN --mount=type=bind,source=requirements.txt,target=/run/jobpack/requirements" \
           ".txt \\\n    pip install --no-cache-dir -r /run/jobpack/requirements.txt " \
           "tqdm==4.66.4\n" in text
    assert "requirements.txt" not in "".join(line for line in text.splitlines()
                                              if line.startswith("COPY"))
    assert _hadolint(tmp_path, text) == []


_REGISTRIES = st.sampled_from(["", "localhost/", "localhost:5000/", "nvcr.io/", "reg.io:443/",
                               "127.0.0.1:5000/", "my-reg.example.com:8080/"])
_COMPONENTS = st.from_regex(r"[a-z0-9]{1,4}(?:(?:[._]|__|-+)[a-z0-9]{1,3})?", fullmatch=True)
_TAGS = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}", fullmatch=True)


@st.composite
def _references(draw: st.DrawFn) -> str:
    ref = draw(_REGISTRIES) + "/".join(draw(st.lists(_COMPONENTS, min_size=1, max_size=3)))
    tag = draw(st.one_of(st.none(), _TAGS))
    digest = draw(st.one_of(st.none(), st.just("sha256:" + "ab" * 32)))
    return ref + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


@settings(max_examples=40, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ref=_references())
def test_every_accepted_base_passes_hadolint(ref: str, tmp_path: Path) -> None:
    folder = tmp_path / f"r{abs(hash(ref))}"
    spec = _spec()
    spec["from"] = ref
    text = _dockerfile(folder, spec)
    if text is not None:
        assert f"ARG JP_BASE={ref}\nFROM ${{JP_BASE}}\n" in text
        assert _hadolint(folder, text) == [], text
        tally("Dockerfile: base accepted", 1)
    shutil.rmtree(folder, ignore_errors=True)


def test_an_existing_account_is_used_as_it_is(tmp_path: Path) -> None:
    spec = _spec()
    spec["user"] = "nobody"
    text = _dockerfile(tmp_path, spec)
    assert text is not None
    assert "RUN { id -u nobody >/dev/null 2>&1 || { if command -v useradd >/dev/null 2>&1; " \
           "then useradd --create-home --user-group nobody; else adduser -D nobody; fi; }; } " \
           "&& mkdir -p -- /workspace && chown nobody /workspace\n" in text


# The scripts: here-documents, and docker without BuildKit ---------------------------------


@settings(max_examples=12, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(lines=st.lists(st.one_of(st.sampled_from(["USAGE", "  USAGE", "USAGE_1", "\tUSAGE "]),
                                st.text(st.characters(blacklist_categories=("Cs",)),
                                        max_size=20)), min_size=1, max_size=4))
def test_no_description_closes_a_usage_text(lines: list[str], tmp_path: Path) -> None:
    """Whatever a description says, every script builds (shellcheck passes) and its -h
    prints the whole description."""
    folder = tmp_path / f"d{abs(hash(tuple(lines)))}"
    folder.mkdir()
    (folder / "src").mkdir()
    description = "\n".join(lines)
    project = {"project": "p", "images": {
        "img": {"description": description, "dockerfile": {"from": "a/b:1"},
                "tags": ["a/img:1"]},
        "re": {"description": description, "source": "a/b:1", "tags": ["a/re:1"]}}}
    (folder / "project.yaml").write_text(yaml.safe_dump(project, allow_unicode=True))
    result = build(folder / "project.yaml", folder / "out")
    if result.code == 2 and re.search(r"project\.yaml:\d+:\d+: ", result.stderr):
        shutil.rmtree(folder, ignore_errors=True)
        return  # a character a description may not hold, refused where it stands
    assert result.code == 0, result.stderr
    for script in ("img/build.sh", "img/push.sh", "re/rehost.sh"):
        shown = subprocess.run(["bash", str(folder / "out" / "images" / script), "-h"],
                               capture_output=True, text=True, check=True).stdout
        for line in lines:
            if line.strip() and line.isprintable():
                assert f"  {line.rstrip()}\n" in shown, (script, shown)
        assert shown.rstrip().endswith("show this help"), shown
    tally("usage text: description built", 1)
    shutil.rmtree(folder, ignore_errors=True)


def _fake_docker(folder: Path, buildx: bool) -> dict[str, str]:
    """A docker on PATH that records its arguments; with ``buildx``, it has BuildKit."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "docker"
    script.write_text(
        "#!/bin/sh\nprintf '%s\\n' \"$*\" >>\"$FAKE_LOG\"\n"
        "case $1 in --version) echo 'Docker version 24.0.7'; exit 0 ;; esac\n"
        + ("" if buildx else "[ \"$1\" != buildx ] || { echo \"docker: 'buildx' is not a "
           "docker command.\" >&2; exit 1; }\n")
        + "prev=\nfor a; do [ \"$prev\" != --iidfile ] || echo sha256:" + "0" * 64
        + " >\"$a\"; prev=$a; done\n")
    script.chmod(0o755)
    import os
    return {**os.environ, "PATH": f"{folder}:{os.environ['PATH']}", "DOCKER": "docker",
            "FAKE_LOG": str(folder / "log")}


@pytest.mark.parametrize("buildx", [False, True])
def test_docker_builds_with_buildkit_only(buildx: bool, tmp_path: Path) -> None:
    project = copy_project("images", tmp_path / "p")
    assert build(project, tmp_path / "out").code == 0
    env = _fake_docker(tmp_path / "bin", buildx)
    proc = subprocess.run(["bash", str(tmp_path / "out" / "images" / "mnist" / "build.sh")],
                          cwd=project.parent, env=env, capture_output=True, text=True,
                          check=False, timeout=60)
    calls = (tmp_path / "bin" / "log").read_text().splitlines()
    if not buildx:
        assert proc.returncode == 1
        assert "no BuildKit builder" in proc.stderr and "buildx plugin" in proc.stderr
        assert not [c for c in calls if c.startswith(("build ", "buildx build"))], calls
    else:
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == f"sha256:{'0' * 64}\n"
        built = [c for c in calls if c.startswith("buildx build")]
        assert len(built) == 1 and built[0].startswith("buildx build --load --file "), calls
        assert "--build-context jobpack=" in built[0]


# The run.sh helper: early loop exits, multi-line steps, its own name, signals ------------


@pytest.mark.parametrize("shell", SHELLS, ids=[s[0] for s in SHELLS])
@pytest.mark.parametrize("leaving", ["break", "continue", "echo two; continue"])
def test_helper_step_leaving_the_steps_fails(shell: list[str], leaving: str,
                                             helper: Path) -> None:
    proc = _helper(shell, helper, "echo one", leaving, "echo three")
    assert proc.returncode == 1, proc.stderr
    assert "three" not in proc.stdout
    assert "step 2/3 left the list of steps (break or continue); stopping" in _steps(proc.stderr)
    last = _helper(shell, helper, "echo one", leaving)
    assert last.returncode == 1 and "all 2 steps done" not in last.stderr


@pytest.mark.parametrize("shell", SHELLS, ids=[s[0] for s in SHELLS])
def test_helper_logs_a_multiline_step_on_one_line(shell: list[str], helper: Path) -> None:
    proc = _helper(shell, helper, "echo a\necho b\n\necho c")
    assert proc.returncode == 0 and proc.stdout == "a\nb\nc\n"
    assert _steps(proc.stderr)[0] == "step 1/1: echo a\\necho b\\n\\necho c"


@pytest.mark.parametrize("shell", SHELLS, ids=[s[0] for s in SHELLS])
def test_helper_takes_its_own_name_first_as_no_step(shell: list[str], helper: Path) -> None:
    """ENTRYPOINT [/run.sh] with the command /run.sh "STEP" runs STEP alone."""
    proc = _helper(shell, helper, "/run.sh", "echo one")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "one\n" and _steps(proc.stderr)[0] == "step 1/1: echo one"
    assert _helper(shell, helper, "/run.sh", "--dry-run", "false").returncode == 0


@pytest.mark.parametrize("shell", SHELLS, ids=[s[0] for s in SHELLS])
@pytest.mark.parametrize("leader", [True, False], ids=["group-leader", "in-a-group"])
def test_helper_passes_sigterm_to_the_running_step(shell: list[str], leader: bool,
                                                   helper: Path, tmp_path: Path) -> None:
    ready, got = tmp_path / "ready", tmp_path / "got"
    step = (f"sh -c 'sleep 300 >/dev/null 2>&1 & trap \"kill $!; echo TERM >{got}; exit 0\" "
            f"TERM; touch {ready}; wait'")
    proc = subprocess.Popen([*shell, str(helper), "echo one", step, "echo never"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=leader)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert got.read_text() == "TERM\n" and out == "one\n"
    assert "step 2/3 stopped by SIGTERM" in _steps(err)


@pytest.mark.parametrize("shell", SHELLS, ids=[s[0] for s in SHELLS])
def test_helper_steps_read_its_input(shell: list[str], helper: Path) -> None:
    proc = subprocess.run([*shell, str(helper), "read -r x; echo \"1[$x]\"", "cat"],
                          input="a\nb\n", capture_output=True, text=True, timeout=30,
                          check=False)
    assert proc.returncode == 0 and proc.stdout == "1[a]\nb\n", proc.stderr


# Platform, ports, apt releases, and what PLAN.md says --------------------------------------


def test_platform_ports_and_apt_releases(tmp_path: Path) -> None:
    spec = _spec()
    spec.update(platform="linux/arm64/v8", ports=[8888, 6006])
    spec["apt"] = ["git/bookworm-backports", "curl=7.88.1-10", "lftp"]
    project = _write(tmp_path / "p", spec)
    result = build(project, tmp_path / "out")
    assert result.code == 0, result.stderr
    folder = tmp_path / "out" / "images" / "img"
    text = (folder / "Dockerfile").read_text()
    assert "git/bookworm-backports curl=7.88.1-10 lftp \\\n" in text
    assert "\nEXPOSE 8888 6006\nUSER app\n" in text
    dry = subprocess.run(["bash", str(folder / "build.sh"), "--dry-run"], cwd=project.parent,
                         capture_output=True, text=True, check=True).stdout
    assert " --platform linux/arm64/v8 " in dry
    plan = (tmp_path / "out" / "PLAN.md").read_text()
    assert "3 apt (2 unpinned); 1 pip;" in plan, plan
    for key, value, message in [
            ("platform", "amd64", "'amd64' is not a platform"),
            ("ports", [0], "0: a port is a number from 1 to 65535"),
            ("apt", ["git/"], "'git/': '' is not a release name")]:
        bad = _spec()
        bad[key] = value
        found = _problems(tmp_path / key, bad)
        assert len(found) == 1 and message in found[0], found
