"""Plans: every file's template reads only its context, and contexts are plain JSON values."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import PROJECTS
from jinja2 import meta

from generators import registry
from generators.paths import builtin_templates
from generators.plan import is_plain
from generators.render import make_env

VALID = ["minimal", "full", "hostile", "ngc"]


def _templates(env: Any, name: str, seen: set[str]) -> set[str]:
    """``name`` and every template it extends, includes or imports."""
    if name not in seen:
        seen.add(name)
        source = env.loader.get_source(env, name)[0]
        for ref in meta.find_referenced_templates(env.parse(source)):
            if ref:
                _templates(env, ref, seen)
    return seen


@pytest.mark.parametrize("name", VALID)
def test_plan_contexts_are_plain_and_complete(name: str) -> None:
    loaded = registry.load(PROJECTS / name / "project.yaml")
    groups = registry.plan(loaded)
    assert groups[-1].key == "bundle"
    assert len({g.key for g in groups}) == len(groups)
    env = make_env((str(builtin_templates()),))
    for group in groups:
        for spec in group.files:
            assert is_plain(spec.context), spec.path
            json.dumps(spec.context)
            if spec.template is None:
                assert set(spec.context) == {"text"}, spec.path
                continue
            for template in _templates(env, spec.template, set()):
                source = env.loader.get_source(env, template)[0]
                free = meta.find_undeclared_variables(env.parse(source)) - {"sh"}
                assert free <= set(spec.context), (spec.path, template, free - set(spec.context))


def test_plan_lists_every_file_in_plan_md() -> None:
    loaded = registry.load(PROJECTS / "full" / "project.yaml")
    *groups, bundle = registry.plan(loaded)
    plan_md = next(f for f in bundle.files if f.path == "PLAN.md")
    listed = {f for f, _what in plan_md.context["files"]}
    assert {f.path for g in groups for f in g.files} <= listed
    assert "PLAN.md" in listed
