"""``jobpack schema``: a JSON Schema that editors can trust.

Every valid project validates against it (the test projects and the default example here;
the incremental-build property test checks every valid random change too), and projects
broken in their structure (an unknown key, a value of the wrong type, a kind that does not
exist) fail it, as they fail a build.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import PROJECTS, ROOT, jobpack

from generators.cli import main as jobpack_main
from generators.loader import parse_yaml

VALID = sorted(p.parent.name for p in PROJECTS.glob("*/project.yaml"))


@functools.cache
def validator() -> jsonschema.Draft202012Validator:
    result = jobpack("schema")
    assert result.code == 0, result.stderr
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def plain(value: Any) -> Any:
    """The project as JSON data (numbers that remember how they were written as numbers)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    for base in (int, float, str):
        if isinstance(value, base):
            return base(value)
    return value


def problems(text: str) -> list[str]:
    """What the schema says of a project file's text (empty: valid)."""
    data = parse_yaml(text, "project.yaml")[0]
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator().iter_errors(plain(data))]


@pytest.mark.parametrize("name", VALID)
def test_every_test_project_validates(name: str) -> None:
    assert problems((PROJECTS / name / "project.yaml").read_text(encoding="utf-8")) == []


def test_the_default_example_validates() -> None:
    assert problems((ROOT / "project.yaml").read_text(encoding="utf-8")) == []


def test_schema_is_deterministic_and_describes_every_kind() -> None:
    first, second = jobpack("schema").stdout, jobpack("schema").stdout
    assert first == second
    schema = json.loads(first)
    kinds = {v["$ref"].rsplit("/", 1)[1].split(".")[0]
             for v in schema["properties"]["clusters"]["additionalProperties"]["oneOf"]}
    assert {"slurm", "ngc"} <= kinds
    job = schema["$defs"]["Job"]["properties"]
    assert {"cluster", "command", "sweep", "resources", "config", "interactive"} <= set(job)
    assert schema["$defs"]["slurm.Cluster"]["properties"]["kind"] == {
        "const": "slurm", "description": "A slurm cluster."}
    assert schema["$defs"]["Job"]["description"]


def _broken(name: str) -> list[tuple[str, str]]:
    """Structural breakages of a valid project's text: (what, text)."""
    text = (PROJECTS / name / "project.yaml").read_text(encoding="utf-8")
    data = parse_yaml(text, "project.yaml")[0]
    cluster = next(iter(data["clusters"]))
    job = next(iter(data["jobs"]))

    def edit(change: Any) -> str:
        doc = json.loads(json.dumps(plain(data)))
        change(doc)
        return yaml.safe_dump(doc, sort_keys=False)

    return [
        ("unknown top-level key", edit(lambda d: d.update(bogus=1))),
        ("unknown cluster key", edit(lambda d: d["clusters"][cluster].update(bogus=1))),
        ("unknown job key", edit(lambda d: d["jobs"][job].update(bogus=1))),
        ("retries of the wrong type", edit(lambda d: d["jobs"][job].update(retries=[1]))),
        ("a kind that does not exist", edit(lambda d: d["clusters"][cluster].update(
            kind="nope"))),
        ("a job without a command", edit(lambda d: d["jobs"][job].pop("command"))),
        ("a command of the wrong type", edit(lambda d: d["jobs"][job].update(command=3))),
    ]


@pytest.mark.parametrize("name", VALID)
def test_structurally_broken_projects_fail_the_schema_and_the_build(
        name: str, tmp_path: Path) -> None:
    folder = tmp_path / name
    shutil.copytree(PROJECTS / name, folder)  # with its data files
    for what, text in _broken(name):
        assert problems(text), f"{name}: the schema accepts {what}"
        (folder / "project.yaml").write_text(text, encoding="utf-8")
        with contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()) as err:
            code = jobpack_main(["check", "-p", str(folder / "project.yaml"),
                                 "-o", str(folder / "out")])
        assert code == 2, f"{name}: jobpack accepts {what}"
        assert "project.yaml:" in err.getvalue()
