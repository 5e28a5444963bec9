"""Writing files: atomic replacement of state files, plain creation in a fresh tree, and
reading out/ without ever following a symlink."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .paths import step


def write_atomic(path: Path, text: str, *, executable: bool = False) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename, never half-written.

    A kill can leave the temporary file (``.NAME.*.tmp``) behind; the build only writes
    these in its state folder, where the next build removes them.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    step()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.chmod(tmp, 0o755 if executable else 0o644)
        step()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_new(path: Path, text: str, *, executable: bool = False) -> None:
    """Create ``path`` (in a tree that nothing reads until it is complete) and write it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    step()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                 0o755 if executable else 0o644)
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
    os.chmod(path, 0o755 if executable else 0o644)  # whatever the umask


def real_file(root: Path, rel: str, folders: set[str] | None = None) -> os.stat_result | None:
    """The stat of ``root/rel`` when it is a regular file reached through real folders
    (no symlink on the way below ``root``), else None. ``folders`` remembers the folders
    found real, for a caller that asks about many files."""
    known = set() if folders is None else folders
    here = str(root)
    parts = rel.split("/")
    try:
        for part in parts[:-1]:
            here = f"{here}/{part}"
            if here not in known:
                if not stat.S_ISDIR(os.lstat(here).st_mode):
                    return None
                known.add(here)
        st = os.lstat(f"{here}/{parts[-1]}")
    except (FileNotFoundError, NotADirectoryError):
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def same_file(root: Path, rel: str, text: str, executable: bool,
              folders: set[str] | None = None) -> bool:
    """Whether ``root/rel`` is a real regular file with exactly ``text`` and mode."""
    st = real_file(root, rel, folders)
    data = text.encode("utf-8")
    if st is None or st.st_size != len(data):
        return False
    if bool(st.st_mode & stat.S_IXUSR) != executable:
        return False
    with open(f"{root}/{rel}", "rb") as fh:
        return fh.read() == data


def unlink_below(root: Path, rel: str) -> bool:
    """Remove ``root/rel`` if it is a regular file reached through real folders, then the
    folders it leaves empty; never follows a symlink. Return whether it was removed."""
    parts = rel.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return False
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    fds: list[int] = []
    removed = False
    try:
        fds.append(os.open(root, flags))
        for part in parts[:-1]:
            fds.append(os.open(part, flags, dir_fd=fds[-1]))
        if not stat.S_ISREG(os.stat(parts[-1], dir_fd=fds[-1], follow_symlinks=False).st_mode):
            return False
        os.unlink(parts[-1], dir_fd=fds[-1])
        removed = True
        for i in range(len(parts) - 1, 0, -1):  # prune folders left empty
            os.rmdir(parts[i - 1], dir_fd=fds[i - 1])
    except OSError:  # missing, a symlink on the way, or a folder that is not empty
        pass
    finally:
        for fd in fds:
            os.close(fd)
    return removed
