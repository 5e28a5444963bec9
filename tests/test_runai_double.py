"""The runai test double holds to the v2 grammar of the CLI reference: what it refuses."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "tests" / "doubles"))
from runai_double import run  # noqa: E402

BASE = ["-p", "proj", "-i", "docker.io/x/y:1"]


@pytest.mark.parametrize("argv", [
    ["training", "submit", "a", *BASE, "--gpu", "1"],  # legacy flag
    ["training", "submit", "a", *BASE, "-g", "0.5"],  # portions need --gpu-request-type
    ["training", "submit", "a", *BASE, "-g", "0"],
    ["training", "submit", "a", *BASE, "-g", "1", "--gpu-request-type", "portion",
     "--gpu-portion-request", "0.5"],
    ["training", "submit", "a", *BASE, "--gpu-request-type", "memory"],
    ["training", "submit", "a", *BASE, "--gpu-portion-request", "0.5"],
    ["training", "submit", "a", *BASE, "--name-prefix", "u"],
    ["training", "submit", "My_Job", *BASE],
    ["training", "submit", "a" * 64, *BASE],
    ["training", "submit", "a", "-i", "img"],  # no project
    ["training", "submit", "a", *BASE, "--preemptible"],
    ["workspace", "submit", "a", *BASE, "--runs", "2"],
    ["training", "submit", "a", *BASE, "-e", "no-equals"],
    ["training", "submit", "a", *BASE, "--nfs", "path=/a,server=b"],
    ["training", "submit", "a", *BASE, "--nfs", "path=/a,server=b,mountpath=/c,ro"],
    ["training", "submit", "a", *BASE, "--existing-pvc", "name=x,path=/d"],
    ["training", "submit", "a", *BASE, "--port", "container=99999"],
    ["training", "submit", "a", *BASE, "--cpu-memory-request", "16GB"],
    ["training", "submit", "a", *BASE, "--image-pull-policy", "always"],
    ["training", "submit", "a", *BASE, "--backoff-limit"],
    ["training", "submit", "a", *BASE, "-i", "again"],
    ["training", "submit", "a", *BASE, "--command"],
    ["training", "submit", "a", "b", *BASE],
    ["training", "run", "a", *BASE],
    ["workload", "delete", "a", "-p", "proj", "--type", "job"],
    # generation C: --environment names an environment asset, not a variable
    ["training", "submit", "a", *BASE, "--environment", "A=1"],
    *(["training", "submit", "a", *BASE, "--cpu-core-request", v]
      for v in ("nan", "inf", "-1", "0")),
    ["workspace", "submit", "a", *BASE, "--backoff-limit", "1"],  # training only
    ["training", "submit", "a", *BASE, "--label", "no-value"],
    ["training", "submit", "a", *BASE, "--label", "k=has space"],
])
def test_refuses(tmp_path: Path, argv: list[str]) -> None:
    code, _out, err = run(tmp_path, argv)
    assert code == 1 and err.startswith("Error: "), (argv, err)


def test_accepts_the_grammar_and_records_calls(tmp_path: Path) -> None:
    ok = [
        ["workspace", "submit", "w", *BASE, "--gpu-request-type", "portion",
         "--gpu-portion-request", "0.5", "--preemptible", "--external-url", "container=8888",
         "-e", "A=x=y\nz", "--environment-variable", "B=", "--command", "--", "bash", "-c", "x"],
        ["training", "standard", "submit", "t", *BASE, "-g", "2", "--nfs",
         "path=/a,server=10.0.0.5,mountpath=/mnt,readwrite", "--existing-pvc",
         "claimname=d,path=/d", "--node-pools", "a", "--node-pools", "b", "--backoff-limit=1",
         "--cpu-core-request", "0.5", "--cpu-memory-request", "1.5Gi"],
        ["training", "submit", "m", *BASE, "--gpu-request-type", "memory",
         "--gpu-memory-request", "20G", "--port", "service-type=NodePort,container=80"],
        ["training", "submit", *BASE, "--name-prefix", "u"],
    ]
    for argv in ok:
        assert run(tmp_path, argv)[0] == 0, run(tmp_path, argv)
    code, _, err = run(tmp_path, ["training", "submit", "t", *BASE])
    assert code == 1 and "already exists" in err
    assert run(tmp_path, ["training", "list", "-p", "proj", "--json"])[1].count('"name"') == 3
    assert run(tmp_path, ["workload", "delete", "t", "m", "-p", "proj", "--type", "training",
                          "-y"])[0] == 0
    assert run(tmp_path, ["training", "delete", "t", "-p", "proj"])[0] == 1  # gone already
    calls = [line for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert '"A=x=y\\nz"' in calls[0]


def test_repeated_values_are_never_split(tmp_path: Path) -> None:
    argv = ["training", "submit", "c", *BASE, "-e", "A=1,B=2", "-e", "C=3", "--label",
            "jobpack-run=v1", "--label", "k=v"]
    assert run(tmp_path, argv)[0] == 0
    described = run(tmp_path, ["training", "describe", "c", "-p", "proj", "-o", "json"])[1]
    assert '"jobpack-run": "v1"' in described
    out = run(tmp_path, ["training", "describe", "c", "-p", "proj"])[1]
    assert "  A=1,B=2\n  C=3\n" in out
