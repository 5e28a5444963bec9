"""Publishing a build: out/ is replaced by a complete new tree in one step.

The stage folder (``.jobpack/<out>/stage/``, beside out/ on the same file system) becomes the
new out/:

1. ``publish`` copies there the rendered files (render wrote them, lint checked them)
   that out/ does not hold yet;
2. ``assemble`` adds every unchanged file as a hard link to the one in out/ (the same
   inode, so its mtime stays), writes MANIFEST.sha256, and mirrors everything jobpack did
   not write (ledger.tsv, logs/, lock files, ...): folders are created, everything else is
   hard-linked, so a script appending to its ledger or holding a lock on it keeps using
   the same file before and after the switch;
3. a journal (``publish.json``) records the new tree's inode, then out/ and the stage are
   exchanged in one system call (``renameat2(RENAME_EXCHANGE)`` on Linux,
   ``renamex_np(RENAME_SWAP)`` on macOS). Where the file system cannot exchange, out/ is
   renamed aside and the stage renamed in its place; the journal lets the next build
   complete those two renames;
4. ``finish`` carries into the new out/ whatever scripts created, replaced or removed in
   the old one during steps 2-3, records the build state and deletes the old tree.

After a kill at any moment out/ is the old bundle or the new one. The next build calls
``recover`` first: before the exchange it discards the stage, after it it finishes 4.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import stat
import sys
from pathlib import Path
from typing import Any

from .errors import JobpackError
from .files import real_file, same_file, write_atomic, write_new
from .paths import Paths, read_json, read_state, step

MANIFEST = "MANIFEST.sha256"
# What write_atomic of earlier jobpack versions left in out/ when killed.
_OLD_TMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


class PublishError(JobpackError):
    """out/ holds something in the way of the new bundle, or the file system failed; out/
    was not changed."""

    def render(self) -> str:
        return f"jobpack: {self}"


def written_before(paths: Paths) -> set[str]:
    """Files of out/ that jobpack wrote: the recorded state and the manifest in out/."""
    files = set(read_state(paths).get("files", {}))
    if real_file(paths.out, MANIFEST):
        lines = (paths.out / MANIFEST).read_text(encoding="utf-8", errors="replace")
        for line in lines.splitlines()[1:]:
            sha, _, rel = line.partition("  ")
            if len(sha) == 64 and rel:
                files.add(rel)
    return files | {MANIFEST}


def leftover_temporaries(out: Path) -> list[str]:
    """Temporary files that builds of earlier jobpack versions left in out/ when killed."""
    found = []
    for here, _dirs, files in os.walk(out):
        rel = os.path.relpath(here, out)
        found += [os.path.normpath(os.path.join(rel, name)).replace(os.sep, "/")
                  for name in files if _OLD_TMP.match(name)
                  and not os.path.islink(os.path.join(here, name))]
    return found


def _parents(files: set[str]) -> set[str]:
    dirs: set[str] = set()
    for rel in files:
        parts = rel.split("/")
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
    return dirs


class _Assembly:
    """Step 2: complete the stage from out/, one walk of out/ that never follows a link."""

    def __init__(self, paths: Paths, bundle: set[str], staged: set[str], old: set[str]):
        self.out, self.stage = paths.out, str(paths.stage)  # strings: thousands of files
        self.bundle, self.staged, self.old = bundle, staged, old
        self.bundle_dirs = _parents(bundle)
        self.old_dirs = _parents(old)
        self.made = {""} | _parents(staged)
        self.mirrored: dict[str, int] = {}
        self.dirs: list[str] = []
        self.removed = 0

    def run(self) -> None:
        if self.out.is_dir():
            self._walk(str(self.out), "")
        missing = sorted(r for r in self.bundle if not os.path.lexists(f"{self.stage}/{r}"))
        if missing:
            raise PublishError(f"{self.out / missing[0]} changed while the build ran; "
                               "run the build again (out/ was not changed)")

    def _walk(self, folder: str, rel_dir: str) -> None:
        with os.scandir(folder) as entries:
            for e in entries:
                rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
                if e.is_dir(follow_symlinks=False):
                    self._folder(rel, e)
                else:
                    self._other(rel, e)

    def _folder(self, rel: str, e: os.DirEntry[str]) -> None:
        if rel in self.bundle:
            raise PublishError(f"{self.out / rel} is a folder where jobpack writes a file; "
                               "move it away and build again (out/ was not changed)")
        if rel not in self.bundle_dirs and rel not in self.old_dirs:
            self._mkdir(rel, e.stat(follow_symlinks=False).st_mode)
            self.dirs.append(rel)
        self._walk(e.path, rel)

    def _other(self, rel: str, e: os.DirEntry[str]) -> None:
        regular = e.is_file(follow_symlinks=False)
        if rel in self.bundle_dirs:
            raise PublishError(f"{self.out / rel} is not a folder (a symlink or a file) where "
                               "jobpack writes a folder; remove it and build again (out/ was not "
                               "changed)")
        if rel in self.bundle:
            if rel not in self.staged and regular:
                self._link(e.path, rel, bundle=True)
        elif rel in self.old and regular:
            self.removed += 1
        elif not (regular and _OLD_TMP.match(e.name)):
            self._link(e.path, rel, bundle=False)

    def _mkdir(self, rel: str, mode: int = 0o755) -> None:
        if rel in self.made:
            return
        self._mkdir(rel.rpartition("/")[0])
        step()
        os.mkdir(f"{self.stage}/{rel}")
        os.chmod(f"{self.stage}/{rel}", stat.S_IMODE(mode))
        self.made.add(rel)

    def _link(self, source: str, rel: str, *, bundle: bool) -> None:
        self._mkdir(rel.rpartition("/")[0])
        step()
        dest = f"{self.stage}/{rel}"
        try:
            os.link(source, dest, follow_symlinks=False)
        except OSError:
            if bundle:  # a file system without hard links: a copy keeps the mtime
                shutil.copy2(source, dest, follow_symlinks=False)
            return  # what scripts wrote moves across after the exchange instead
        if not bundle:
            self.mirrored[rel] = os.lstat(dest).st_ino


def publish(paths: Paths, staged: list[str], bundle: list[str], manifest: str,
            state: dict[str, Any]) -> tuple[int, int]:
    """Replace out/ with the stage completed to the whole bundle; return the number of
    files written and removed. The stage holds ``staged``; ``bundle`` lists every file."""
    old = written_before(paths)
    new = set(bundle) | {MANIFEST}
    same_manifest = same_file(paths.out, MANIFEST, manifest, False)
    gone = [r for r in old - new if real_file(paths.out, r)] or leftover_temporaries(paths.out)
    if not staged and same_manifest and not gone and paths.out.is_dir():
        _write_state(paths, state)  # nothing in out/ changes: record the state only
        _remove(paths.stage)
        return 0, 0
    os.makedirs(paths.stage, exist_ok=True)
    if not same_manifest:
        write_new(paths.stage / MANIFEST, manifest)
        staged = [*staged, MANIFEST]
    work = _Assembly(paths, new, set(staged), old)
    work.run()
    if paths.out.is_dir():
        os.chmod(paths.stage, stat.S_IMODE(os.lstat(paths.out).st_mode))
    journal = {"tree": os.lstat(paths.stage).st_ino, "skip": sorted(old | new),
               "mirrored": work.mirrored, "dirs": work.dirs, "state": state}
    write_atomic(paths.journal, json.dumps(journal))
    _switch(paths)
    finish(paths, journal)
    return len(staged), work.removed


def _switch(paths: Paths) -> None:
    """Step 3: the stage becomes out/; out/ (if any) goes to the stage or the old path."""
    step()
    if not os.path.lexists(paths.out):
        os.rename(paths.stage, paths.out)
    elif not exchange(paths.stage, paths.out):
        os.rename(paths.out, paths.old)
        step()
        os.rename(paths.stage, paths.out)


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step; False where the system or file system cannot."""
    if os.environ.get("JOBPACK_TEST_EXCHANGE") == "off":
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
        at_fdcwd, rename_exchange = -100, 2
        rc = libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b),
                            rename_exchange)
    elif sys.platform == "darwin" and hasattr(libc, "renamex_np"):
        rename_swap = 2
        rc = libc.renamex_np(os.fsencode(a), os.fsencode(b), rename_swap)
    else:
        return False
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def finish(paths: Paths, journal: dict[str, Any]) -> None:
    """Step 4, also after a kill: carry over what scripts changed, record the state."""
    if os.path.lexists(paths.stage) and not os.path.lexists(paths.old):
        step()  # after an exchange the stage path holds the replaced out/
        os.rename(paths.stage, paths.old)
    if os.path.lexists(paths.old):
        _Sweep(paths, journal).run()
        step()
        os.rename(paths.old, paths.trash)
    _write_state(paths, journal["state"])
    step()
    paths.journal.unlink(missing_ok=True)
    _remove(paths.trash)
    _remove(paths.stage)


def _write_state(paths: Paths, state: dict[str, Any]) -> None:
    files = {}
    out = str(paths.out)
    for group in state["groups"].values():
        for rel, rec in group["files"].items():
            st = os.lstat(f"{out}/{rel}")
            rec[1:] = [st.st_size, st.st_mtime_ns]
            files[rel] = rec
    write_atomic(paths.state / "state.json", json.dumps({**state, "files": files},
                                                        sort_keys=True))


def _remove(tree: Path) -> None:
    if os.path.lexists(tree):
        step()
        shutil.rmtree(tree)  # removes links, never follows them


class _Sweep:
    """Carry into out/ what changed in the replaced tree while the stage was assembled."""

    def __init__(self, paths: Paths, journal: dict[str, Any]):
        self.old, self.out, self.kept = paths.old, paths.out, paths.state / "kept"
        self.skip = set(journal["skip"])
        self.skip_dirs = _parents(self.skip)  # folders of jobpack's files, old or new
        self.mirrored: dict[str, int] = journal["mirrored"]
        self.dirs: list[str] = journal["dirs"]
        self.seen: set[str] = set()

    def run(self) -> None:
        self._walk("")
        for rel, ino in self.mirrored.items():  # removed from the old tree meanwhile
            now = _lstat(self.out / rel)
            if rel not in self.seen and now and now.st_ino == ino:
                step()
                os.unlink(self.out / rel)
        for rel in sorted(set(self.dirs) - self.seen, reverse=True):
            with contextlib.suppress(OSError):  # not empty, or gone
                os.rmdir(self.out / rel)

    def _walk(self, rel_dir: str) -> None:
        with os.scandir(self.old / rel_dir) as entries:
            for e in entries:
                rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
                regular = e.is_file(follow_symlinks=False)
                if regular and (rel in self.skip or _OLD_TMP.match(e.name)):
                    continue
                self.seen.add(rel)
                now = _lstat(self.out / rel)
                if not e.is_dir(follow_symlinks=False):
                    self._other(rel, e.inode(), now)
                elif now is None and rel not in self.skip_dirs:
                    self._move(rel)  # a folder made meanwhile: all of it is the scripts'
                elif now is None or stat.S_ISDIR(now.st_mode):
                    # a folder of files no longer built: only what scripts left in it
                    # comes across, into a folder made when something does
                    self._walk(rel)
                else:
                    self._keep(rel)

    def _other(self, rel: str, ino: int, now: os.stat_result | None) -> None:
        linked = self.mirrored.get(rel)
        if now is None:
            if ino != linked:  # made or replaced in the old tree meanwhile
                self._move(rel)
        elif now.st_ino == ino:
            return
        elif now.st_ino == linked:  # replaced in the old tree meanwhile
            step()
            os.replace(self.old / rel, self.out / rel)
        else:
            self._keep(rel)

    def _move(self, rel: str) -> None:
        self._parent(rel)
        step()
        if (self.old / rel).is_dir() and not (self.old / rel).is_symlink():
            os.rename(self.old / rel, self.out / rel)
            return
        try:
            os.link(self.old / rel, self.out / rel, follow_symlinks=False)
        except FileExistsError:
            self._keep(rel)
            return
        os.unlink(self.old / rel)

    def _parent(self, rel: str) -> None:
        """Create the folders above ``rel`` in out/ that the new tree does not have."""
        parent = rel.rpartition("/")[0]
        if parent and _lstat(self.out / parent) is None:
            self._parent(parent)
            step()
            os.mkdir(self.out / parent)

    def _keep(self, rel: str) -> None:
        """Both trees changed the same path: out/ keeps its own, the old one is kept aside."""
        dest = self.kept / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        step()
        os.replace(self.old / rel, dest)
        print(f"jobpack: {self.out / rel} changed while the build published; the version "
              f"from before is in {dest}", file=sys.stderr)


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def recover(paths: Paths) -> None:
    """Finish or undo what a killed build left in the state folder; out/ ends up the old
    or the new bundle, complete, and no temporary file remains."""
    step.begin("recover")
    for tmp in paths.state.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    journal = read_json(paths.journal)
    if journal:
        tree = journal["tree"]
        out, stage = _lstat(paths.out), _lstat(paths.stage)
        if out is None and stage is not None and stage.st_ino == tree:
            step()  # out/ was renamed aside: the complete new tree takes its place
            os.rename(paths.stage, paths.out)
        elif out is None or out.st_ino != tree:
            _undo(paths)
            return
        finish(paths, journal)
    else:
        _remove(paths.stage)  # a publish that never switched
    _remove(paths.trash)


def _undo(paths: Paths) -> None:
    """The switch never happened: drop the stage, keep out/ as it is."""
    if not os.path.lexists(paths.out) and os.path.lexists(paths.old):
        step()
        os.rename(paths.old, paths.out)
    _remove(paths.stage)
    paths.journal.unlink(missing_ok=True)
