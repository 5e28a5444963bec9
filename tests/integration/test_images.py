"""Image scripts for real: podman as the docker CLI, a docker-registry on loopback.

rehost.sh pulls, tags and pushes; build.sh builds an image from a Dockerfile spec on a base
made offline (a busybox root file system, imported, pushed to the registry, pulled back by
the build), push.sh pushes it, and the run.sh helper runs inside it with ``podman run``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import build

from generators.lint import hadolint_binary


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def registry(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A registry on 127.0.0.1 and the environment podman needs to use it (vfs storage in
    tmp_path, the registry marked insecure)."""
    if shutil.which("podman") is None or shutil.which("docker-registry") is None:
        reason = "needs podman and docker-registry; tests/install-deps.sh installs them"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    port = _port()
    (tmp_path / "registry.yml").write_text(
        f"version: 0.1\nstorage: {{filesystem: {{rootdirectory: {tmp_path}/data}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\nlog: {{level: error}}\n")
    server = subprocess.Popen(["docker-registry", "serve", str(tmp_path / "registry.yml")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (tmp_path / "storage.conf").write_text(
        f'[storage]\ndriver = "vfs"\nrunroot = "{tmp_path}/run"\n'
        f'graphroot = "{tmp_path}/graph"\n')
    (tmp_path / "registries.conf").write_text(
        f'[[registry]]\nlocation = "127.0.0.1:{port}"\ninsecure = true\n')
    # Containers run with runc, no network and bounded limits (what works without systemd
    # and cgroup delegation); builds run their RUN lines in a chroot.
    (tmp_path / "containers.conf").write_text(
        '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
        'netns = "none"\n[engine]\nruntime = "runc"\n')
    env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(tmp_path / "storage.conf"),
           "CONTAINERS_REGISTRIES_CONF": str(tmp_path / "registries.conf"),
           "CONTAINERS_CONF": str(tmp_path / "containers.conf"), "BUILDAH_ISOLATION": "chroot",
           "XDG_RUNTIME_DIR": str(tmp_path / "xdg"), "DOCKER": "podman"}
    deadline = time.monotonic() + 20
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
        assert time.monotonic() < deadline, "the registry did not start"
        time.sleep(0.1)
    yield f"127.0.0.1:{port}", env
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=10)


_ACCEPT = ("application/vnd.oci.image.manifest.v1+json, "
           "application/vnd.docker.distribution.manifest.v2+json")


def _config_digest(registry: str, repo: str, tag: str) -> str:
    request = urllib.request.Request(f"http://{registry}/v2/{repo}/manifests/{tag}",
                                     headers={"Accept": _ACCEPT})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return str(json.load(reply)["config"]["digest"])


def _manifest_digest(registry: str, repo: str, tag: str) -> str:
    request = urllib.request.Request(f"http://{registry}/v2/{repo}/manifests/{tag}",
                                     headers={"Accept": _ACCEPT}, method="HEAD")
    with urllib.request.urlopen(request, timeout=10) as reply:
        return str(reply.headers["Docker-Content-Digest"])


def test_rehost_pulls_tags_and_pushes_every_tag(registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    where, env = registry
    source = f"{where}/public/zeroflow:latest"
    tree = tmp_path / "rootfs"
    tree.mkdir()
    (tree / "hello.txt").write_text("hello from the source image\n")
    tarball = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-cf", str(tarball), "-C", str(tree), "."], check=True)
    for argv in (["podman", "import", str(tarball), source], ["podman", "push", source],
                 ["podman", "rmi", source]):
        subprocess.run(argv, env=env, check=True, capture_output=True)
    (tmp_path / "project.yaml").write_text(f"""project: img
images:
  zoo:
    source: {source}
    tags: [{where}/nvidian/scene-flow-zoo:latest, {where}/mirror/zoo:v1]
""")
    assert build(tmp_path / "project.yaml", tmp_path / "out").code == 0
    script = tmp_path / "out" / "images" / "zoo" / "rehost.sh"
    dry = subprocess.run(["bash", str(script), "--dry-run"], env=env, capture_output=True,
                         text=True, check=True)
    assert dry.stdout.splitlines()[0] == f"+ podman pull {source}"
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True,
                          check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr
    want = _config_digest(where, "public/zeroflow", "latest")
    assert _config_digest(where, "nvidian/scene-flow-zoo", "latest") == want
    assert _config_digest(where, "mirror/zoo", "v1") == want


FAKE_TOOLS = {
    # The base has no network and no package manager: these stand in for them and record
    # what the Dockerfile's RUN lines asked for.
    "usr/bin/apt-get": '#!/bin/sh\nmkdir -p /var/log/fake /var/lib/apt/lists\n'
                       'echo "apt-get $*" >>/var/log/fake/apt.log\n'
                       '[ "$1" != update ] || touch /var/lib/apt/lists/fetched\n',
    "usr/bin/pip": '#!/bin/sh\nmkdir -p /var/log/fake\necho "pip $*" >>/var/log/fake/pip.log\n'
                   'prev=\nfor a; do [ "$prev" != -r ] || cat "$a" >>/var/log/fake/pip.log; '
                   'prev=$a; done\n',
    "usr/sbin/useradd": '#!/bin/sh\nfor name; do :; done\n'
                        '! grep -q "^$name:" /etc/passwd || '
                        '{ echo "useradd: user \'$name\' already exists" >&2; exit 9; }\n'
                        'echo "$name:x:1000:1000::/home/$name:/bin/sh" >>/etc/passwd\n'
                        'echo "$name:x:1000:" >>/etc/group\nmkdir -p "/home/$name"\n'
                        'chown 1000:1000 "/home/$name"\n',
}
# Values that would run, or start an instruction, if they were not quoted for the Dockerfile.
HOSTILE_ENV = {"QUOTES": "it's \"quoted\" \\\"",
               "SUBST": "$(touch /PWNED) `touch /PWNED` $${HOME} $$HOME ${ 1",
               "SPACES": "  two  spaces  ", "BACKSLASH": "a\\b\\", "TAB": "a\tb",
               "HASH": "# hadolint ignore=DL3002", "WIDE": "ü ✓",
               "ESCAPE": "\\ RUN touch /PWNED \\",
               # a reference the builder expands, as ENV does: PATH grows, RUN lines still work
               "PATH": "/opt/extra bin:$PATH"}
# What each reads back in the image ($$ is one literal $).
SEEN_ENV = {**HOSTILE_ENV, "SUBST": "$(touch /PWNED) `touch /PWNED` ${HOME} $HOME ${ 1",
            "PATH": "/opt/extra bin:/usr/sbin:/usr/bin:/bin"}
HOSTILE_FILE = "we ird 'q' \"d\" $(touch PWNED) ${HOME}.txt"
HOSTILE_DEST = "/data/$(touch PWNED) 'q' \"d\" \\x.txt"
WORKDIR = "/work space/app $(touch PWNED)"


def _base_image(tmp_path: Path, ref: str, env: dict[str, str]) -> None:
    """A busybox root file system with the fake tools, imported and pushed as ``ref``, then
    removed here so that the build pulls it from the registry."""
    root = tmp_path / "base"
    for folder in ("bin", "usr/bin", "usr/sbin", "etc", "tmp", "root"):
        (root / folder).mkdir(parents=True)
    shutil.copy("/bin/busybox", root / "bin" / "busybox")
    applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (root / "bin" / applet).symlink_to("busybox")
    for rel, text in FAKE_TOOLS.items():
        (root / rel).write_text(text)
        (root / rel).chmod(0o755)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                         "nobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    tarball = tmp_path / "base.tar"
    subprocess.run(["tar", "-cf", str(tarball), "-C", str(root), "."], check=True)
    for argv in (["podman", "import", "--change", "ENV PATH=/usr/sbin:/usr/bin:/bin",
                  str(tarball), ref], ["podman", "push", ref], ["podman", "rmi", ref]):
        subprocess.run(argv, env=env, check=True, capture_output=True)


def _project(folder: Path, where: str) -> Path:
    folder.mkdir()
    (folder / "src").mkdir()
    (folder / "src" / "main.py").write_text("print('training')\n")
    (folder / HOSTILE_FILE).write_text("hostile name\n")
    (folder / "requirements.txt").write_text("numpy==1.26.4\n")
    (folder / "secrets.env").write_text("HF_TOKEN=never-in-an-image\n")
    spec = {
        "from": f"{where}/base/busybox:1.35",
        "apt": ["lftp=4.9.2-2+b1", "git"],
        "pip": ["tqdm==4.66.4", "torchvision>=0.17,<0.19"],
        "requirements": "requirements.txt",
        "copy": [{"from": "src/", "to": "/workspace/src/"},
                 {"from": HOSTILE_FILE, "to": HOSTILE_DEST}],
        "env": HOSTILE_ENV, "workdir": WORKDIR, "user": "app", "run_helper": True,
        "entrypoint": ["/run.sh"],
    }
    # An account the base has already, whose group is not named after it.
    plain = {"from": f"{where}/base/busybox:1.35", "user": "nobody", "workdir": "/work",
             "run_helper": True, "entrypoint": ["/run.sh"]}
    project = {"project": "mnist", "images": {
        "mnist": {"dockerfile": spec,
                  "tags": [f"{where}/j3soon/mnist:v1", f"{where}/mirror/mnist:v1"]},
        "plain": {"dockerfile": plain, "tags": [f"{where}/j3soon/plain:v1"]}}}
    (folder / "project.yaml").write_text(yaml.safe_dump(project, allow_unicode=True))
    return folder / "project.yaml"


def _run(argv: list[str], env: dict[str, str], cwd: Path | None = None,
         timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False,
                          timeout=timeout)


def test_build_push_and_run_helper(registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    where, env = registry
    _base_image(tmp_path, f"{where}/base/busybox:1.35", env)
    project = _project(tmp_path / "project", where)
    assert build(project, tmp_path / "out").code == 0
    folder = tmp_path / "out" / "images" / "mnist"

    lint = _run([hadolint_binary(), "--no-color", "--failure-threshold", "warning",
                 str(folder / "Dockerfile")], env)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    built = _run(["bash", str(folder / "build.sh")], env, cwd=project.parent)
    assert built.returncode == 0, built.stderr
    image_id = built.stdout.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id), built.stdout
    tag = f"{where}/j3soon/mnist:v1"
    inspect = _run(["podman", "image", "inspect", "--format", "{{.Id}}", tag], env)
    assert f"sha256:{inspect.stdout.strip()}" == image_id

    pushed = _run(["bash", str(folder / "push.sh")], env)
    assert pushed.returncode == 0, pushed.stderr
    lines = pushed.stdout.splitlines()
    assert lines == [f"{where}/{repo}:v1@{_manifest_digest(where, repo, 'v1')}"
                     for repo in ("j3soon/mnist", "mirror/mnist")]

    # The image as the Dockerfile spec says: packages asked for as given, caches cleaned,
    # env values and the hostile path byte-exact, the user, the working folder, no secrets.
    probe = ('printf "%s\\0" "$(id -un)" "$PWD" "$(cat /var/log/fake/apt.log)" '
             '"$(cat /var/log/fake/pip.log)" "$(ls -A /var/lib/apt/lists)" '
             '"$(ls -A /tmp)" "$(cat /workspace/src/main.py)" '
             f'"$(cat {shlex.quote(HOSTILE_DEST)})" "$(ls -A /workspace)"; '
             + " ".join(f'printf "%s\\0" "${k}";' for k in HOSTILE_ENV)
             + ' [ ! -e /PWNED ] && [ ! -e PWNED ] && ! grep -rqs never-in-an-image / '
             '--exclude-dir=proc --exclude-dir=sys')
    seen = _run(["podman", "run", "--rm", "--entrypoint", "/bin/sh", tag, "-c", probe], env)
    assert seen.returncode == 0, seen.stderr
    fields = seen.stdout.split("\0")[:-1]
    assert fields[:9] == [
        "app", WORKDIR,
        "apt-get update\napt-get install -y --no-install-recommends lftp=4.9.2-2+b1 git",
        "pip install --no-cache-dir -r /run/jobpack/requirements.txt tqdm==4.66.4 "
        "torchvision>=0.17,<0.19\nnumpy==1.26.4",
        "", "", "print('training')", "hostile name", "src"]
    assert fields[9:] == list(SEEN_ENV.values())

    # The seed's /run.sh "cmd1" "cmd2" ...: in order, in one shell, stopping at a failure.
    ok = _run(["podman", "run", "--rm", tag, "cd /workspace/src", "echo one; pwd",
               "test -f main.py && echo three"], env)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == "one\n/workspace/src\nthree\n"
    logged = re.findall(r"^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\] run\.sh: step (\d)/3: (.*)$",
                        ok.stderr, re.M)
    assert logged == [("1", "cd /workspace/src"), ("2", "echo one; pwd"),
                      ("3", "test -f main.py && echo three")]
    failed = _run(["podman", "run", "--rm", tag, "echo first", "echo second; sh -c 'exit 7'",
                   "echo never"], env)
    assert failed.returncode == 7, failed.stderr
    assert failed.stdout == "first\nsecond\n"
    assert "step 2/3 failed with exit status 7" in failed.stderr
    assert "step 3/3" not in failed.stderr


    # No layer of the image holds the requirements file: pip read it through a bind mount.
    archive = tmp_path / "image.tar"
    assert _run(["podman", "save", "--format", "docker-archive", "-o", str(archive), tag],
                env).returncode == 0
    layers = tmp_path / "layers"
    layers.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(layers)], check=True)
    listed = [subprocess.run(["tar", "-tf", str(layer)], capture_output=True, text=True,
                             check=True).stdout.splitlines()
              for layer in sorted(layers.rglob("*.tar"))]
    assert len(listed) >= 3
    held = [name for names in listed for name in names if name.endswith("requirements.txt")]
    assert held == [], held

    # podman stop: SIGTERM reaches the running step (it says so), and the container stops
    # before the grace period ends (no SIGKILL).
    step = "sh -c 'sleep 300 & trap \"echo got TERM; kill $!; exit 0\" TERM; echo ready; wait'"
    started = _run(["podman", "run", "-d", "--name", "stopme", tag, "echo one", step,
                    "echo never"], env)
    assert started.returncode == 0, started.stderr
    deadline = time.monotonic() + 60
    while "ready" not in _run(["podman", "logs", "stopme"], env).stdout:
        assert time.monotonic() < deadline, "the step did not start"
        time.sleep(0.2)
    began = time.monotonic()
    stopped = _run(["podman", "stop", "-t", "5", "stopme"], env)
    took = time.monotonic() - began
    assert stopped.returncode == 0, stopped.stderr
    logs = _run(["podman", "logs", "stopme"], env)
    status = _run(["podman", "inspect", "--format", "{{.State.ExitCode}}", "stopme"], env)
    _run(["podman", "rm", "-f", "stopme"], env)
    assert "got TERM" in logs.stdout and "never" not in logs.stdout, logs.stdout + logs.stderr
    assert "step 2/3 stopped by SIGTERM" in logs.stderr
    assert status.stdout.strip() == "143" and took < 5, (status.stdout, took)

    # The entrypoint /run.sh given the command /run.sh "STEP": its own name is no step.
    named = _run(["podman", "run", "--rm", tag, "/run.sh", "echo only"], env)
    assert named.returncode == 0 and named.stdout == "only\n", named.stderr

    # An account the base has already is used as it is (useradd would refuse it).
    plain_built = _run(["bash", str(tmp_path / "out" / "images" / "plain" / "build.sh")], env,
                       cwd=project.parent)
    assert plain_built.returncode == 0, plain_built.stderr
    who = _run(["podman", "run", "--rm", f"{where}/j3soon/plain:v1",
                "id -un; stat -c %U .; pwd"], env)
    assert who.returncode == 0, who.stderr
    assert who.stdout == "nobody\nnobody\n/work\n"
