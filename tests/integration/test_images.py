"""rehost.sh for real: podman as the docker CLI, a docker-registry on loopback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import build


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
    env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(tmp_path / "storage.conf"),
           "CONTAINERS_REGISTRIES_CONF": str(tmp_path / "registries.conf"),
           "XDG_RUNTIME_DIR": str(tmp_path / "xdg"), "DOCKER": "podman"}
    deadline = time.monotonic() + 20
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
        assert time.monotonic() < deadline, "the registry did not start"
        time.sleep(0.1)
    yield f"127.0.0.1:{port}", env
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=10)


def _config_digest(registry: str, repo: str, tag: str) -> str:
    request = urllib.request.Request(
        f"http://{registry}/v2/{repo}/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json, "
                           "application/vnd.docker.distribution.manifest.v2+json"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return str(json.load(reply)["config"]["digest"])


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
