"""The Run:ai write-up's whole workflow as one test, from the image to the clean-up.

The image is built with real podman from a base made offline, checked by hadolint and
pushed to a docker-registry on loopback; code and data go by lftp to a real FTP server
(pyftpdlib) into folders of the run; the workloads go to the runai test double, which
records what it is given and plays their states.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml
from conftest import PROJECTS, build
from test_images import _base_image, registry  # noqa: F401  (a fixture)
from test_runai import FTP_PASS, FTP_USER, TRAIN, RunaiDouble, flags, ftp, sh, tree  # noqa: F401

from generators.lint import hadolint_binary


def test_the_seed_workflow_from_image_to_clean_up(registry, ftp, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    where, podman_env = registry
    served, port = ftp
    tag = f"{where}/j3soon/runai-pytorch-mnist:v1"
    _base_image(tmp_path, f"{where}/base/busybox:1.35", podman_env)

    # The seed's project, its image built from a spec that carries the run.sh helper.
    work = tmp_path / "work"
    work.mkdir()
    project = yaml.safe_load((PROJECTS / "runai" / "project.yaml").read_text())
    project["images"]["mnist"] = {
        "dockerfile": {"from": f"{where}/base/busybox:1.35", "workdir": "/workspace",
                       "copy": [{"from": "mnist/", "to": "/workspace/mnist/"}],
                       "run_helper": True},
        "tags": [tag]}
    project["storage"]["nas"].update(path="/j3soon", port=port)
    (work / "project.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
    (work / "mnist").mkdir()
    (work / "mnist" / "main.py").write_text("print('train')\n")
    (work / "data" / "MNIST" / "raw").mkdir(parents=True)
    (work / "data" / "MNIST" / "raw" / "train-images.gz").write_bytes(b"\x1f\x8b" * 500)
    assert build(work / "project.yaml", work / "out").code == 0

    images = work / "out" / "images" / "mnist"
    lint = subprocess.run([hadolint_binary(), "--no-color", "--failure-threshold", "warning",
                           str(images / "Dockerfile")], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    for script in ("build.sh", "push.sh"):
        done = subprocess.run(["bash", str(images / script)], cwd=work, env=podman_env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{script}: {done.stderr[-2000:]}"
    assert done.stdout.startswith(f"{tag}@sha256:")  # push.sh: the pushed digest
    helper = subprocess.run(["podman", "run", "--rm", tag, "/run.sh", "echo one", "exit 3",
                             "echo never"], env=podman_env, capture_output=True, text=True)
    assert (helper.returncode, helper.stdout) == (3, "one\n")

    double = RunaiDouble(tmp_path / "runai")
    env = {**os.environ, **double.env, "FTP_USER": FTP_USER, "FTP_PASS": FTP_PASS,
           "STORAGE_NODE_IP": "127.0.0.1", "WANDB_API_KEY": "wandb-secret-1234",
           "RUN_ID": "v1"}
    sh(work, "sync/upload_code.sh", env=env)
    sh(work, "sync/upload_data.sh", env=env)
    assert tree(served / "code" / "v1") == tree(work / "mnist")
    assert tree(served / "data" / "v1") == tree(work / "data")

    runai = "runai/lab/"
    sh(work, runai + "submit_all.sh", env=env)
    submits = double.submits()
    assert [c[:3] for c in submits] == [["workspace", "submit", "j3soon-mnist-notebook"],
                                        *(["training", "submit", n] for n in TRAIN)]
    for argv in submits:
        assert flags(argv, "-i") == [tag] and flags(argv, "--image-pull-policy") == ["Always"]
    notebook, train = submits[0], submits[1]
    assert flags(notebook, "--external-url") == ["container=8888"]
    assert train[train.index("--"):][:2] == ["--", "/run.sh"]  # through the image's helper
    sh(work, runai + "submit_all.sh", env=env)
    assert len(double.submits()) == 7, "a second submit_all.sh submits nothing"

    failing = [TRAIN[1], TRAIN[4]]
    double.fail(*failing)
    sh(work, runai + "ctl.sh", "monitor", "--interval", "0", env=env)
    assert [c[2] for c in double.submits()[7:]] == failing, "exactly the failed ones again"

    logs = sh(work, runai + "ctl.sh", "logs", "0p5-1", "--tail", "2", env=env).stdout
    assert logs.splitlines() == [f"{TRAIN[2]}: log line {i}" for i in (9, 10)]
    sh(work, runai + "ctl.sh", "delete", "notebook", env=env)
    assert "j3soon-mnist-notebook" not in {w["name"] for w in double.workloads()}

    (served / "results" / "v1" / "train").mkdir(parents=True)
    (served / "results" / "v1" / "train" / "mnist_cnn.pt").write_bytes(b"\0weights" * 100)
    sh(work, "sync/download_results.sh", env=env)
    assert tree(work / "results" / "v1") == tree(served / "results" / "v1")

    sh(work, runai + "delete_all.sh", "--yes", env=env)
    assert double.workloads() == []
