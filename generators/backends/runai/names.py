"""Workload names: ``<user>-<project>-<job>[-<point>]``, each a DNS-1123 label that stays the
same for a point however the sweep around it changes."""

from __future__ import annotations

import hashlib
import re

LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
MAX = 63  # Kubernetes' limit on a label, which a workload name is
DIGEST = 9  # "h" and 8 hex digits: the key of a point whose values cannot name it


def base(user: str, project: str, job: str) -> str:
    """The name of a job's workload, or the start of each of its points' names.

    >>> base("j3soon", "mnist", "train")
    'j3soon-mnist-train'
    """
    return f"{user}-{project}-{job}"


def digest(row: tuple[str, ...]) -> str:
    """A point's key made from all its values.

    >>> digest(("0.1", "adam"))
    'hfb519fa7'
    """
    return "h" + hashlib.sha256("\0".join(row).encode()).hexdigest()[:DIGEST - 1]


def point_keys(names: tuple[str, ...], rows: tuple[tuple[str, ...], ...],
               room: int) -> list[str]:
    """A key per point, from its values (not its position): the values joined by '-' (in
    lowercase, '.' written 'p' and '_' written '-') when that is a label of at most ``room``
    characters, else a digest of them. Keys that two points would share are digests too.

    >>> point_keys(("seed",), (("1",), ("2",)), 40)
    ['1', '2']
    >>> point_keys(("lr", "opt"), (("0.1", "Adam_W"), ("a b", "c")), 40)
    ['0p1-adam-w', 'h84eff4df']
    >>> point_keys(("a", "b"), (("x-y", "z"), ("x", "y-z")), 40)
    ['hf25521cc', 'h869e7fec']
    >>> point_keys((), ((),), 40)
    ['']
    """
    keep = [i for i, n in enumerate(names) if not (n == "length" and "sequence" in names)]
    keys = []
    for row in rows:
        text = "-".join(row[i] for i in keep).lower().replace(".", "p").replace("_", "-")
        if text and not (LABEL.fullmatch(text) and len(text) <= room):
            text = digest(row)
        keys.append(text)
    seen: dict[str, int] = {}
    for key in keys:
        seen[key] = seen.get(key, 0) + 1
    keys = [digest(row) if seen[key] > 1 else key for key, row in zip(keys, rows, strict=True)]
    if len(set(keys)) != len(keys):  # a value that looks like another point's digest
        keys = [digest(row) for row in rows]
    return keys


def point_names(start: str, names: tuple[str, ...],
                rows: tuple[tuple[str, ...], ...]) -> list[str]:
    """The workload name of every point of a job whose names begin with ``start``.

    >>> point_names("u-p-train", ("seed",), (("1",), ("2",)))
    ['u-p-train-1', 'u-p-train-2']
    >>> point_names("u-p-nb", (), ((),))
    ['u-p-nb']
    """
    keys = point_keys(names, rows, MAX - len(start) - 1)
    return [f"{start}-{key}" if key else start for key in keys]


def problem(name: str, sweep: bool) -> str | None:
    """Why ``name`` cannot start the names of a job's workloads (None when it can).

    >>> problem("u-p-train", False) is None
    True
    >>> problem("u-p-my_job", False).split(":")[0]
    "'u-p-my_job' is not a DNS-1123 label"
    >>> problem("u-" + "x" * 52, True).split(", ")[-1]
    'so at most 53 here'
    """
    if not LABEL.fullmatch(name):
        return (f"{name!r} is not a DNS-1123 label: lowercase letters, digits and '-', "
                "starting and ending with a letter or digit")
    most = MAX - DIGEST - 1 if sweep else MAX
    if len(name) > most:
        return (f"{name!r} has {len(name)} characters; a Run:ai workload name has at most "
                f"{MAX}" + (f", and a sweep adds '-<point>' (up to {DIGEST + 1}), so at most "
                            f"{most} here" if sweep else ""))
    return None
