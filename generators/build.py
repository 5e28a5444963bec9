"""The build: render changed groups, lint them, then publish them with the bundle files.

Stages share a state directory (``.jobpack/<out name>/`` beside out/):
- ``state.json``: per group its slice digest and files (sha256, size, mtime) as published;
- ``stage/`` + ``pending.json``: what ``render`` produced and ``bundle`` will publish;
- ``lint.json``: sha256 of script contents that passed the linter, never checked twice.
out/ is touched only by ``publish``, after ``render`` and ``lint`` succeeded, and then in
one step (see publish.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from . import __version__
from . import registry as backends
from .errors import LintError, Problem, ProjectError
from .files import real_file, same_file, write_atomic, write_new
from .paths import (
    CODE_DIR,
    STATE_FORMAT,
    Paths,
    files_intact,
    is_runtime,
    read_json,
    read_state,
    stat_record,
    template_dirs,
)
from .plan import Artifact, Group, file_header
from .render import digest_files, make_env, render, sha256_text


def _group_digest(group: Group, code: str) -> str:
    files = [[f.path, f.template, f.context, f.executable, f.lint] for f in group.files]
    blob = json.dumps(files, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(f"{code}\0{group.key}\0{blob}".encode()).hexdigest()


def _render(env: Any, group: Group) -> list[Artifact]:
    """The files of a group: templates rendered with their contexts, texts as they are."""
    return [Artifact(f.path, f.context["text"] if f.template is None
                     else render(env, f.template, f.context), f.executable, f.lint)
            for f in group.files]


def render_all(paths: Paths, loaded: Any, *,
               only_changed: bool) -> tuple[dict[str, Any], list[Artifact], int]:
    """Render groups (all, or those whose digest or files changed).

    Returns the new per-group state (files without stat), the rendered artifacts and the
    number of groups rendered.
    """
    env = make_env(tuple(str(d) for d in template_dirs(paths.project.parent)))
    code = digest_files(paths.code_files(), [CODE_DIR, *template_dirs(paths.project.parent)])
    old = read_state(paths).get("groups", {}) if only_changed else {}
    new: dict[str, Any] = {}
    arts: list[Artifact] = []
    owners: dict[str, Group] = {}
    problems: list[Problem] = []
    rendered = 0
    *groups, bundle = backends.plan(loaded)
    for group in groups:
        digest = _group_digest(group, code)
        prev = old.get(group.key)
        if prev and prev["digest"] == digest and files_intact(paths.out, prev["files"]):
            new[group.key] = prev
            produced = list(prev["files"])
        else:
            rendered += 1
            out = _render(env, group)
            arts += out
            new[group.key] = {"digest": digest, "files": {
                a.path: [sha256_text(a.text), 0, 0] for a in out}}
            produced = [a.path for a in out]
        for path in produced:
            other = owners.setdefault(path.lower(), group)
            if other is not group:  # also on case-insensitive file systems
                problems.append(loaded.source.problem(group.owner, (
                    f"writes {path}, which {'.'.join(map(str, other.owner))} also writes")))
    if problems:
        raise ProjectError(problems)
    bundle_arts = _render(env, bundle)
    arts += bundle_arts
    new["bundle"] = {"digest": "", "files": {a.path: [sha256_text(a.text), 0, 0]
                                             for a in bundle_arts}}
    return new, arts, rendered


def stage_render(paths: Paths) -> str:
    """Stage 1: validate, render what changed into the stage; out/ is not touched."""
    loaded = backends.load(paths.project)
    groups, arts, rendered = render_all(paths, loaded, only_changed=True)
    old_files = read_state(paths).get("files", {})
    folders: set[str] = set()
    changed = [a for a in arts
               if not same_file(paths.out, a.path, a.text, a.executable, folders)]
    keep = {p for g in groups.values() for p in g["files"]}
    removed = sorted(set(old_files) - keep - {"MANIFEST.sha256"})
    paths.pending.unlink(missing_ok=True)  # the stage is incomplete from here on
    if os.path.lexists(paths.stage):
        shutil.rmtree(paths.stage)
    for art in changed:
        write_new(paths.stage / art.path, art.text, executable=art.executable)
    inputs = {str(p.relative_to(paths.project.parent)): stat_record(p)
              for p in loaded.inputs[1:]}
    write_atomic(paths.pending, json.dumps({
        "write": [[a.path, a.executable, a.lint] for a in changed], "delete": removed,
        "groups": groups, "inputs": inputs,
        "header": file_header(paths.project.name)}, indent=1, sort_keys=True))
    return f"render: {rendered} group(s) rendered, {len(changed)} file(s) changed, " \
           f"{len(removed)} to remove"


def stage_lint(paths: Paths) -> str:
    """Stage 2: shellcheck staged scripts whose content was never checked before."""
    pending = read_json(paths.pending)
    cache_path = paths.state / "lint.json"
    passed = set(read_json(cache_path).get("passed", []))
    todo: dict[str, str] = {}
    for rel, _exe, lint in pending.get("write", []):
        if lint == "shellcheck":
            sha = hashlib.sha256((paths.stage / rel).read_bytes()).hexdigest()
            if sha not in passed:
                todo[rel] = sha
    if todo:
        from .lint import shellcheck

        found = shellcheck(paths.stage, sorted(todo))
        if found:
            out_name = paths.out.name
            raise LintError([type(m)(m.severity, f"{out_name}/{m.path}", m.line, m.col, m.code,
                                     m.text) for m in found])
        write_atomic(cache_path, json.dumps({"passed": sorted(passed | set(todo.values()))}))
    return f"lint: {len(todo)} script(s) checked with shellcheck"


def publish(paths: Paths) -> str:
    """Stage 3: the stage, completed with MANIFEST.sha256 and the unchanged files,
    replaces out/ in one step; files no longer built are not in the new tree."""
    pending = read_json(paths.pending)
    if not pending:
        return "bundle: nothing to publish"
    from .manifest import manifest
    from .publish import publish as publish_tree

    groups = pending["groups"]
    digests = {p: f[0] for g in groups.values() for p, f in g["files"].items()}
    text = manifest(pending["header"], digests)
    groups["bundle"]["files"]["MANIFEST.sha256"] = [sha256_text(text), 0, 0]
    state = {"format": STATE_FORMAT, "version": __version__, "groups": groups,
             "inputs": pending["inputs"]}
    written, removed = publish_tree(paths, [w[0] for w in pending["write"]], sorted(digests),
                                    text, state)
    return f"bundle: {written} file(s) written, {removed} removed, in {paths.out}"


def expected_files(paths: Paths) -> dict[str, Artifact]:
    """Every file a full build of the project would write."""
    loaded = backends.load(paths.project)
    _groups, arts, _ = render_all(paths, loaded, only_changed=False)
    files = {a.path: a for a in arts}
    digests = {p: sha256_text(a.text) for p, a in files.items()}
    from .manifest import manifest

    text = manifest(file_header(paths.project.name), digests)
    files["MANIFEST.sha256"] = Artifact("MANIFEST.sha256", text)
    return files


def stale_files(paths: Paths) -> tuple[list[str], list[str]]:
    """What ``jobpack check`` reports about out/: files a build would write or remove
    (missing, changed, or written by an earlier build and no longer built), and files
    jobpack did not write (``extra``), which builds leave alone. Run-time files are not
    reported."""
    from .publish import leftover_temporaries, written_before

    want = expected_files(paths)
    have = set(_walk(paths.out))
    stale = [f"missing: {p}" for p in sorted(set(want) - have)]
    stale += [f"changed: {p}" for p in sorted(set(want) & have)
              if not same_file(paths.out, p, want[p].text, want[p].executable)]
    ours = {p for p in written_before(paths) if real_file(paths.out, p)}
    ours |= set(leftover_temporaries(paths.out))
    extra = sorted(have - set(want))
    stale += [f"old:     {p}" for p in extra if p in ours]
    return stale, [f"extra:   {p}" for p in extra if p not in ours and not is_runtime(p)]


def _walk(out: Path) -> list[str]:
    """Every entry of out/ that is not a folder, as a relative path; links not followed."""
    found = []
    for here, dirs, files in os.walk(out):
        rel = Path(here).relative_to(out)
        found += [(rel / n).as_posix() for n in files]
        found += [(rel / d).as_posix() for d in dirs if os.path.islink(os.path.join(here, d))]
    return found


def clean(paths: Paths) -> str:
    """Remove every regular file the build recorded, and the build state. Nothing is
    followed through a symlink, and nothing the build did not write is removed."""
    from .files import unlink_below

    state = read_state(paths)
    removed = sum(unlink_below(paths.out, rel) for rel in state.get("files", {}))
    for name in ("state.json", "pending.json", "lint.json"):  # doit.json stays: doit owns it
        (paths.state / name).unlink(missing_ok=True)
    if os.path.lexists(paths.stage):
        shutil.rmtree(paths.stage)
    return f"clean: removed {removed} file(s) from {paths.out}"
