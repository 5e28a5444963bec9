"""The build: render changed groups, lint them, then publish into out/ with the bundle files.

Stages share a state directory (``.jobpack/<out name>/`` beside out/):
- ``state.json``: per group its slice digest and files (sha256, size, mtime) as published;
- ``stage/`` + ``pending.json``: what ``render`` produced and ``bundle`` will publish;
- ``lint.json``: sha256 of script contents that passed the linter, never checked twice.
out/ is touched only by ``publish``, after ``render`` and ``lint`` succeeded.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from . import __version__
from .base import Artifact, Context, Generator, Group, file_header
from .errors import LintError, Problem, ProjectError
from .paths import (
    CODE_DIR,
    RUNTIME_FILES,
    STATE_FORMAT,
    Paths,
    files_intact,
    read_json,
    read_state,
    stat_record,
    template_dirs,
)
from .render import digest_files, make_env, sha256_text, write_atomic, write_if_changed


def generators() -> list[Generator]:
    from .images import ImagesGenerator
    from .ngc import NgcGenerator
    from .slurm import SlurmGenerator
    from .sync import SyncGenerator

    return [SlurmGenerator(), NgcGenerator(), SyncGenerator(), ImagesGenerator()]


def make_context(paths: Paths) -> Context:
    dirs = tuple(str(d) for d in template_dirs(paths.project.parent))
    return Context(make_env(dirs), paths.project.name)


def _group_digest(group: Group, code: str) -> str:
    blob = json.dumps(group.slice, sort_keys=True, default=repr, ensure_ascii=False)
    return hashlib.sha256(f"{code}\0{group.key}\0{blob}".encode()).hexdigest()


def _on_disk(out: Path, art: Artifact) -> bool:
    try:
        return (out / art.path).read_bytes() == art.text.encode()
    except FileNotFoundError:
        return False


def render_all(paths: Paths, loaded: Any, *,
               only_changed: bool) -> tuple[dict[str, Any], list[Artifact], int]:
    """Render groups (all, or those whose digest or files changed).

    Returns the new per-group state (files without stat), the rendered artifacts and the
    number of groups rendered.
    """
    ctx = make_context(paths)
    code = digest_files(paths.code_files(), [CODE_DIR, *template_dirs(paths.project.parent)])
    old = read_state(paths).get("groups", {}) if only_changed else {}
    new: dict[str, Any] = {}
    arts: list[Artifact] = []
    owners: dict[str, Group] = {}
    problems: list[Problem] = []
    rendered = 0
    for gen in generators():
        for group in gen.groups(loaded, ctx):
            digest = _group_digest(group, code)
            prev = old.get(group.key)
            if prev and prev["digest"] == digest and files_intact(paths.out, prev["files"]):
                new[group.key] = prev
                produced = list(prev["files"])
            else:
                rendered += 1
                out = group.render()
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
    bundle_arts = _bundle_files(loaded, ctx, sorted(p for g in new.values() for p in g["files"]))
    arts += bundle_arts
    new["bundle"] = {"digest": "", "files": {a.path: [sha256_text(a.text), 0, 0]
                                             for a in bundle_arts}}
    return new, arts, rendered


def _bundle_files(loaded: Any, ctx: Context, files: list[str]) -> list[Artifact]:
    from .bundle import plan, secrets_example

    return [plan(loaded, ctx, files), secrets_example(loaded, ctx)]


def stage_render(paths: Paths) -> str:
    """Stage 1: validate, render what changed into the stage; out/ is not touched."""
    from .validate import load_project

    loaded = load_project(paths.project)
    groups, arts, rendered = render_all(paths, loaded, only_changed=True)
    old_files = read_state(paths).get("files", {})
    changed = [a for a in arts if not _on_disk(paths.out, a)]
    keep = {p for g in groups.values() for p in g["files"]}
    removed = sorted(set(old_files) - keep - {"MANIFEST.sha256"})
    if paths.stage.exists():
        shutil.rmtree(paths.stage)
    for art in changed:
        write_atomic(paths.stage / art.path, art.text, executable=art.executable)
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
    """Stage 3: move staged files into out/, remove stale ones, write MANIFEST.sha256."""
    pending = read_json(paths.pending)
    if not pending:
        return "bundle: nothing to publish"
    out = paths.out
    written = 0
    for rel, executable, _lint in pending["write"]:
        text = (paths.stage / rel).read_text(encoding="utf-8")
        written += write_if_changed(out / rel, text, executable=executable)
    for rel in pending["delete"]:
        (out / rel).unlink(missing_ok=True)
        _prune(out, (out / rel).parent)
    groups = pending["groups"]
    digests = {p: f[0] for g in groups.values() for p, f in g["files"].items()}
    from .bundle import manifest

    text = manifest(pending["header"], digests)
    written += write_if_changed(out / "MANIFEST.sha256", text)
    groups["bundle"]["files"]["MANIFEST.sha256"] = [sha256_text(text), 0, 0]
    files = {}
    for g in groups.values():
        for rel, rec in g["files"].items():
            st = (out / rel).stat()
            rec[1:] = [st.st_size, st.st_mtime_ns]
            files[rel] = rec
    state = {"format": STATE_FORMAT, "version": __version__, "groups": groups, "files": files,
             "inputs": pending["inputs"]}
    write_atomic(paths.state / "state.json", json.dumps(state, indent=1, sort_keys=True))
    shutil.rmtree(paths.stage, ignore_errors=True)
    paths.pending.unlink()
    return f"bundle: {written} file(s) written, {len(pending['delete'])} removed, in {out}"


def _prune(out: Path, folder: Path) -> None:
    while folder != out and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def expected_files(paths: Paths) -> dict[str, str]:
    """Every file a full build of the project would write, with its text."""
    from .bundle import manifest
    from .validate import load_project

    loaded = load_project(paths.project)
    groups, arts, _ = render_all(paths, loaded, only_changed=False)
    texts = {a.path: a.text for a in arts}
    digests = {p: sha256_text(t) for p, t in texts.items()}
    texts["MANIFEST.sha256"] = manifest(file_header(paths.project.name), digests)
    return texts


def stale_files(paths: Paths) -> list[str]:
    """Files of out/ that differ from what the project builds (missing, changed or extra)."""
    want = expected_files(paths)
    have = set()
    if paths.out.is_dir():
        for p in paths.out.rglob("*"):
            rel = p.relative_to(paths.out).as_posix()
            if p.is_file() and not any(rel == r or rel.endswith("/" + r) or f"/{r}/" in f"/{rel}"
                                       for r in RUNTIME_FILES):
                have.add(rel)
    stale = [f"missing: {p}" for p in sorted(set(want) - have)]
    stale += [f"changed: {p}" for p in sorted(set(want) & have)
              if (paths.out / p).read_bytes() != want[p].encode()]
    stale += [f"extra:   {p}" for p in sorted(have - set(want))]
    return stale


def clean(paths: Paths) -> str:
    """Remove every file the build recorded, and the build state."""
    state = read_state(paths)
    for rel in state.get("files", {}):
        (paths.out / rel).unlink(missing_ok=True)
        _prune(paths.out, (paths.out / rel).parent)
    for name in ("state.json", "pending.json", "lint.json"):  # doit.json stays: doit owns it
        (paths.state / name).unlink(missing_ok=True)
    shutil.rmtree(paths.stage, ignore_errors=True)
    return f"clean: removed {len(state.get('files', {}))} file(s) from {paths.out}"
