"""``jobpack diff``: what a build would change in out/, as a unified diff.

The diff is in git's format (``git apply`` in the folder above out/ makes out/ what a
build would write, modes included).

The review of a change before committing it: the files a build would write, change or
remove, compared with what out/ holds now. Files that scripts create at run time (ledgers,
logs, locks) and files jobpack never wrote are not part of the bundle and not shown.
"""

from __future__ import annotations

import difflib
import os
import stat
from collections.abc import Iterator

from .build import expected_files
from .files import real_file
from .paths import Paths

# ANSI colours of diff lines, as git colours them.
_COLOURS = {"+": "\033[32m", "-": "\033[31m", "@": "\033[36m", "h": "\033[1m"}
_RESET = "\033[0m"


def bundle_diff(paths: Paths) -> list[str]:
    """The lines (without line ends) of a unified diff from out/ to what a build writes."""
    from .publish import written_before

    want = expected_files(paths)
    out = paths.out
    lines: list[str] = []
    folders: set[str] = set()
    for rel in sorted(want):
        lines += _file_diff(paths, rel, want[rel].text, want[rel].executable, folders)
    for rel in sorted(written_before(paths) - set(want)):
        if real_file(out, rel, folders):
            old = _read(paths, rel)
            st = os.lstat(f"{out}/{rel}")
            mode = "100755" if st.st_mode & stat.S_IXUSR else "100644"
            lines += [f"diff {_label(paths, rel)}", f"deleted file mode {mode}",
                      *_unified(old, "", f"a/{_name(paths, rel)}", "/dev/null")]
    return lines


def _name(paths: Paths, rel: str) -> str:
    return f"{paths.out.name}/{rel}"


def _label(paths: Paths, rel: str) -> str:
    return f"--git a/{_name(paths, rel)} b/{_name(paths, rel)}"


def _read(paths: Paths, rel: str) -> str:
    with open(f"{paths.out}/{rel}", "rb") as fh:
        return fh.read().decode("utf-8", errors="replace")


def _file_diff(paths: Paths, rel: str, text: str, executable: bool,
               folders: set[str]) -> list[str]:
    name = _name(paths, rel)
    mode = "100755" if executable else "100644"
    if os.path.lexists(f"{paths.out}/{rel}") and real_file(paths.out, rel, folders) is None:
        return [f"diff {_label(paths, rel)}",
                f"{name} is not a regular file (or lies behind a symlink); a build replaces it",
                *_unified("", text, "/dev/null", f"b/{name}")]
    st = real_file(paths.out, rel, folders)
    if st is None:
        return [f"diff {_label(paths, rel)}", f"new file mode {mode}",
                *_unified("", text, "/dev/null", f"b/{name}")]
    old = _read(paths, rel)
    head = [f"diff {_label(paths, rel)}"]
    if bool(st.st_mode & stat.S_IXUSR) != executable:
        head += [f"old mode {'100755' if st.st_mode & stat.S_IXUSR else '100644'}",
                 f"new mode {mode}"]
    body = _unified(old, text, f"a/{name}", f"b/{name}")
    return head + body if (body or len(head) > 1) else []


def _unified(old: str, new: str, a: str, b: str) -> list[str]:
    lines = list(difflib.unified_diff(old.splitlines(keepends=True),
                                      new.splitlines(keepends=True), a, b))
    out = []
    for line in lines:
        if line.endswith("\n"):
            out.append(line[:-1])
        else:  # the last line of a file without a line end
            out += [line, "\\ No newline at end of file"]
    return out


def coloured(lines: list[str]) -> Iterator[str]:
    """The diff's lines with git's colours."""
    for line in lines:
        key = "h" if line.startswith(("+++", "---", "diff ")) else line[:1]
        colour = _COLOURS.get(key)
        yield f"{colour}{line}{_RESET}" if colour else line
