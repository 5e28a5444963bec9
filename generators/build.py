"""The build, as the actions of doit tasks: plan, render each group, lint each script, publish.

Everything lives in the state folder (``.jobpack/<out name>/`` beside out/):
- ``plan.json``: the groups, their files and the templates each group's render loads, and
  what the project read besides project.yaml;
- ``ctx/<group>.json``: the templates and contexts of a group's files, written only when
  they change; a group is rendered again exactly when this file or one of its templates
  changes, which doit decides from their contents;
- ``build/``: every file as render last wrote it (the files lint checks);
- ``rendered/<group>.json``: sha256, mode and linter of each file a group's render wrote;
- ``state.json``: what the last publish put into out/.
out/ is touched only by ``publish``, after every render and lint succeeded, and then in one
step (see publish.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any, NamedTuple

from . import __version__
from .context import dump_context, load_context, sha256_text
from .errors import JobpackError, LintError, Problem, ProjectError
from .files import real_file, same_file, write_atomic
from .paths import (
    RENDER_CODE,
    STATE_FORMAT,
    Paths,
    group_file,
    is_runtime,
    read_json,
    read_state,
    signature,
    stat_record,
    stat_signature,
    step,
    template_dirs,
)
from .plan import FileSpec, Group, file_header

MANIFEST = "MANIFEST.sha256"


class Built(NamedTuple):
    """A file as a full build writes it."""

    text: str
    executable: bool = False


def _env(paths: Paths) -> Any:
    """The Jinja environment of the project's template folders (Jinja is imported here, and
    only by a build that renders or reads a template)."""
    from .render import make_env

    return make_env(tuple(str(d) for d in template_dirs(paths.project.parent)))


def plan_groups(paths: Paths) -> tuple[Any, list[Group]]:
    """The loaded project and every group of files it builds; a file written by two groups
    is a problem of the project."""
    from .registry import load, plan

    loaded = load(paths.project)
    loaded.out = paths.out
    groups = plan(loaded)
    owners: dict[str, Group] = {}
    problems: list[Problem] = []
    for group in groups:
        for spec in group.files:
            other = owners.setdefault(spec.path.lower(), group)  # case-insensitive too
            if other is not group:
                problems.append(loaded.source.problem(group.owner, (
                    f"writes {spec.path}, which {'.'.join(map(str, other.owner))} also writes")))
    if problems:
        raise ProjectError(problems)
    return loaded, groups


def _spec_json(spec: FileSpec) -> dict[str, Any]:
    return {"path": spec.path, "template": spec.template, "context": spec.context,
            "executable": spec.executable, "lint": spec.lint}


def _contexts_text(specs: tuple[FileSpec, ...] | list[FileSpec]) -> str:
    """A group's context file: its specs as ``dump_context`` writes a list of them. The
    text of a verbatim file is a plain string, written without the walk that looks for
    ``Safe`` strings: in a sweep of one config file per point, nearly all of the context."""
    return "[" + ",".join(
        json.dumps(_spec_json(s), sort_keys=True, ensure_ascii=True, separators=(",", ":"))
        if s.verbatim and set(s.context) == {"text"} and type(s.context["text"]) is str
        else dump_context(_spec_json(s))
        for s in specs) + "]"


def _closure(paths: Paths, group: Group, cache: dict[str | None, list[str] | None],
             every: list[str]) -> list[str]:
    files: set[str] = set()
    for spec in group.files:
        if not spec.template:
            continue
        if spec.template not in cache:
            from .render import template_closure

            cache[spec.template] = template_closure(_env(paths), spec.template)
        found = cache[spec.template]
        files.update(every if found is None else found)
    return sorted(files)


def run_plan(paths: Paths) -> str:
    """Task ``plan``: validate the project, write each group's contexts where they changed,
    and plan.json; remove what belonged to groups that are gone."""
    step.begin("plan")
    sources = signature(paths)  # before reading: a change while planning plans again
    loaded, groups = plan_groups(paths)
    templates = paths.template_files()
    every = [str(p) for p in templates]
    known = stat_signature(templates)
    last = read_json(paths.plan)
    # Which templates each template loads, kept while no template file changed.
    cache: dict[str | None, list[str] | None] = (
        dict(last.get("closures", {})) if last.get("templates") == known else {})
    entries: list[dict[str, Any]] = []
    changed = 0
    for group in groups:
        name = group_file(group.key)
        text = _contexts_text(group.files)
        target = paths.contexts / name
        if not (target.exists() and target.read_text(encoding="utf-8") == text):
            write_atomic(target, text)
            changed += 1
        entries.append({"key": group.key, "file": name,
                        "files": [[s.path, s.executable, s.lint, s.verbatim]
                                  for s in group.files],
                        "templates": _closure(paths, group, cache, every)})
    inputs = {str(p.relative_to(paths.project.parent)): stat_record(p)
              for p in loaded.inputs[1:]}
    write_atomic(paths.plan, json.dumps({
        "format": STATE_FORMAT, "version": __version__, "groups": entries, "inputs": inputs,
        "sources": sources, "templates": known,
        "closures": {k: v for k, v in sorted(cache.items(), key=lambda kv: str(kv[0])) if k},
        "header": file_header(paths.project.name)}, sort_keys=True))
    _prune(paths, {group_file(g.key) for g in groups},
           {f.path for g in groups for f in g.files if not f.verbatim})
    return f"plan: {len(groups)} group(s), {changed} changed"


def _prune(paths: Paths, keep: set[str], files: set[str]) -> None:
    """Drop the contexts and records of groups no longer planned, and every file of build/
    that is not among ``files``."""
    for folder in (paths.contexts, paths.rendered):
        if folder.is_dir():
            for entry in os.listdir(folder):
                if entry not in keep:
                    step()
                    (folder / entry).unlink(missing_ok=True)
    if paths.build.is_dir():
        for here, _dirs, names in os.walk(paths.build):
            rel = Path(here).relative_to(paths.build)
            for name in names:
                if (rel / name).as_posix() not in files:
                    step()
                    os.unlink(os.path.join(here, name))


def plan_entries(paths: Paths) -> list[dict[str, Any]]:
    """The groups of the last plan (empty before the first)."""
    plan = read_json(paths.plan)
    return plan.get("groups", []) if plan.get("format") == STATE_FORMAT else []


def render_group(paths: Paths, key: str, name: str, templates: list[str]) -> str:
    """Task ``render:<key>``: render the group's files from its contexts into build/,
    writing only files whose text changed, then its record (sha256, mode, linter, size,
    mtime and inputs digest of each file).

    A file whose inputs (its spec, ``templates``, the group's template files, and the
    render code) have the digest its last render recorded, and which is still in build/ as
    written then, is not rendered again: rendering is a pure function of those inputs. So
    when only a verbatim file of a group changed (a point of a sweep table), Jinja is not
    even imported."""
    step.begin("render")
    specs = load_context((paths.contexts / name).read_text(encoding="utf-8"))
    last = read_json(paths.rendered / name)
    base: list[Any] = []  # the digest of the templates and render code, once needed
    env: Any = None
    build = str(paths.build)
    record: dict[str, list[Any]] = {}
    folders: set[str] = set()
    written = 0
    for spec in specs:
        exe = bool(spec["executable"])
        if is_verbatim(spec):
            # Its text is in the context file already: publish writes it from there.
            data = spec["context"]["text"].encode("utf-8")
            record[spec["path"]] = [hashlib.sha256(data).hexdigest(), exe, None, None, None]
            continue
        if not base:
            base.append(_inputs_digest(templates))
        inputs = sha256_text(base[0] + dump_context(spec))
        target = f"{build}/{spec['path']}"
        st = _lstat(target)
        before = last.get(spec["path"])
        if st is not None and before is not None and len(before) == 6 and \
                before[5] == inputs and [st.st_size, st.st_mtime_ns] == before[3:5] and \
                stat.S_ISREG(st.st_mode) and bool(st.st_mode & stat.S_IXUSR) == exe:
            record[spec["path"]] = before
            continue
        if env is None:
            from .render import render_spec

            env = _env(paths)
        data = render_spec(env, spec["template"], spec["context"]).encode("utf-8")
        if st is None or not _holds(target, st, data, exe):
            st = _create(target, data, exe, folders)
            written += 1
        record[spec["path"]] = [hashlib.sha256(data).hexdigest(), exe, spec["lint"],
                                st.st_size, st.st_mtime_ns, inputs]
    write_atomic(paths.rendered / name, json.dumps(record, sort_keys=True))
    return f"render {key}: {written} of {len(specs)} file(s) changed"


def _inputs_digest(templates: list[str]) -> str:
    """sha256 of what a render reads besides its spec: the given template files and the
    render code (its file_dep beyond the context file)."""
    digest = hashlib.sha256()
    for path in [*templates, *RENDER_CODE]:
        with open(path, "rb") as fh:
            data = fh.read()
        digest.update(f"{path}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def is_verbatim(spec: dict[str, Any]) -> bool:
    """``FileSpec.verbatim`` of a spec as the context file holds it."""
    return spec["template"] is None and not spec["lint"]


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _holds(path: str, st: os.stat_result, data: bytes, exe: bool) -> bool:
    """Whether the regular file at ``path`` (stat ``st``) has exactly ``data`` and mode."""
    if not stat.S_ISREG(st.st_mode) or st.st_size != len(data) or \
            bool(st.st_mode & stat.S_IXUSR) != exe:
        return False
    with open(path, "rb") as fh:
        return fh.read() == data


def _create(path: str, data: bytes, exe: bool, folders: set[str], *,
            fresh: bool = False) -> os.stat_result:
    """A new file (a new inode: the old one may be linked into out/, which must not change
    outside a publish) with ``data``; a render cut short is not recorded, so the next build
    renders again."""
    folder = path.rpartition("/")[0]
    if folder not in folders:
        os.makedirs(folder, exist_ok=True)
        folders.add(folder)
    step()
    if not fresh:  # in a fresh folder (the stage) there is nothing to remove
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    mode = 0o755 if exe else 0o644
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        _write_all(fd, data)
        os.fchmod(fd, mode)  # whatever the umask
        return os.fstat(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def lint_file(paths: Paths, rel: str, linter: str) -> str:
    """Task ``lint:<file>``: check one rendered script (a text that passed before, in any
    project, is not checked again)."""
    step.begin("lint")
    from .lint import check_cached

    found = check_cached(linter, paths.build, rel)
    if found:
        out_name = paths.out.name
        raise LintError([type(m)(m.severity, f"{out_name}/{m.path}", m.line, m.col, m.code,
                                 m.text) for m in found])
    return f"lint {rel}: passed {linter}"


def _bundle_files(paths: Paths) -> tuple[dict[str, list[Any]], dict[str, dict[str, Any]],
                                         _Verbatim]:
    """Every planned file with its record, the groups as the state records them, and the
    texts of the verbatim files."""
    files: dict[str, list[Any]] = {}
    groups: dict[str, dict[str, Any]] = {}
    texts = _Verbatim(paths)
    for entry in plan_entries(paths):
        record = read_json(paths.rendered / entry["file"])
        groups[entry["key"]] = {"files": {p: [record[p][0], 0, 0] for p, *_ in entry["files"]}}
        files.update({p: record[p] for p, *_ in entry["files"]})
        texts.owner.update({p: entry["file"] for p, *_ in entry["files"]})
    return files, groups, texts


class _Verbatim:
    """The text of a verbatim file (see ``is_verbatim``), from its group's context file,
    which is read once and only when one of its files is needed."""

    def __init__(self, paths: Paths):
        self.paths = paths
        self.owner: dict[str, str] = {}
        self.texts: dict[str, dict[str, str]] = {}

    def __call__(self, rel: str, sha: str) -> bytes:
        name = self.owner[rel]
        if name not in self.texts:
            specs = load_context((self.paths.contexts / name).read_text(encoding="utf-8"))
            self.texts[name] = {s["path"]: s["context"]["text"] for s in specs
                                if is_verbatim(s)}
        data = self.texts[name].get(rel, "").encode("utf-8")
        if hashlib.sha256(data).hexdigest() != sha:
            raise JobpackError(f"{self.paths.contexts / name} changed during the build "
                               "(another build?); build again")
        return data


def publish(paths: Paths) -> str:
    """Task ``bundle``: out/ becomes the planned files plus MANIFEST.sha256, in one step;
    files no longer built are not in the new tree."""
    step.begin("publish")
    from .manifest import manifest
    from .publish import publish as publish_tree

    files, groups, texts = _bundle_files(paths)
    old = read_state(paths).get("files", {})
    folders: set[str] = set()
    changed = [p for p, record in files.items()
               if not _published(paths, p, record, old.get(p), folders, texts)]
    if os.path.lexists(paths.stage):
        shutil.rmtree(paths.stage)
    made: set[str] = set()
    build, stage = str(paths.build), str(paths.stage)
    for rel in changed:
        sha, exe, _lint, size = files[rel][:4]
        if size is None:
            _create(f"{stage}/{rel}", texts(rel, sha), exe, made, fresh=True)
        else:
            _stage(f"{build}/{rel}", f"{stage}/{rel}", made)
    plan = read_json(paths.plan)
    text = manifest(plan["header"], {p: r[0] for p, r in files.items()})
    groups["bundle"] = groups.get("bundle", {"files": {}})
    groups["bundle"]["files"][MANIFEST] = [sha256_text(text), 0, 0]
    state = {"format": STATE_FORMAT, "version": __version__, "groups": groups}
    written, removed = publish_tree(paths, changed, sorted(files), text, state)
    return f"bundle: {written} file(s) written, {removed} removed, in {paths.out}"


def _stage(source: str, dest: str, made: set[str]) -> None:
    """A rendered file into the stage: a hard link (render never changes a file in place,
    so out/ cannot change through it), or a copy where the file system has no links."""
    folder = dest.rpartition("/")[0]
    if folder not in made:
        os.makedirs(folder, exist_ok=True)
        made.add(folder)
    step()
    try:
        os.link(source, dest, follow_symlinks=False)
    except OSError:
        shutil.copy2(source, dest, follow_symlinks=False)


def _published(paths: Paths, rel: str, record: list[Any], old: list[Any] | None,
               folders: set[str], texts: _Verbatim) -> bool:
    """Whether out/ already holds this text: as recorded (same sha, size and mtime), or
    byte for byte."""
    sha, exe, _lint, size = record[:4]
    st = real_file(paths.out, rel, folders)
    if st is None:
        return False
    if old and old[0] == sha and [st.st_size, st.st_mtime_ns] == old[1:] and \
            bool(st.st_mode & stat.S_IXUSR) == exe:
        return True
    if size is None:
        data = texts(rel, sha)
    else:
        with open(f"{paths.build}/{rel}", "rb") as fh:
            data = fh.read()
    return bool(st.st_mode & stat.S_IXUSR) == exe and st.st_size == len(data) and \
        _holds(f"{paths.out}/{rel}", st, data, exe)


def expected_files(paths: Paths) -> dict[str, Built]:
    """Every file a full build of the project would write: its text and whether it is
    executable. Rendered exactly as the build renders (from the contexts as JSON)."""
    from .manifest import manifest
    from .render import render_spec

    _loaded, groups = plan_groups(paths)
    env = _env(paths)
    files: dict[str, Built] = {}
    for group in groups:
        for spec in load_context(dump_context([_spec_json(s) for s in group.files])):
            files[spec["path"]] = Built(render_spec(env, spec["template"], spec["context"]),
                                        bool(spec["executable"]))
    digests = {p: sha256_text(b.text) for p, b in files.items()}
    files[MANIFEST] = Built(manifest(file_header(paths.project.name), digests))
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
              if not same_file(paths.out, p, *want[p])]
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


def clean_out(paths: Paths, dryrun: bool = False) -> None:
    """``doit clean`` of the bundle task: remove every file the last publish wrote to out/
    (and the folders it leaves empty), never through a symlink, nothing else; with
    ``dryrun`` only say which."""
    from .files import unlink_below

    state = read_state(paths)
    for rel in sorted(state.get("files", {})):
        if dryrun:
            if real_file(paths.out, rel):
                print(f"bundle - would remove {paths.out / rel}")
        elif unlink_below(paths.out, rel):
            print(f"bundle - removed {paths.out / rel}")
    if not dryrun:
        (paths.state / "state.json").unlink(missing_ok=True)
