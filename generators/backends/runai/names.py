"""Workload names: ``<user>-<project>-<job>[-<point>]``, each a DNS-1123 label that depends on
its point alone: adding, removing or reordering other points of the sweep never changes it.

A point's key is its values joined by '-' when that spelling is exact and can be read back:
every value is lowercase letters and digits (``adam``, ``3``) or a decimal number written with
'p' for its point (``0.5`` is ``0p5``). Any other point gets a readable part (its values in
lowercase, other characters as '-', cut to fit) and a short hash of all its values
(``-h`` and 8 hex digits). A value that could be mistaken for one of those spellings
(``0p5``, ``h1234abcd``) is hashed too, so two points never share a name."""

from __future__ import annotations

import hashlib
import re

LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
MAX = 63  # Kubernetes' limit on a label, which a workload name is
DIGEST = 9  # "h" and 8 hex digits: the key of a point whose values cannot name it
# A hash and the '-' before it, after a point's readable part
ROOM = DIGEST + 1
PLAIN = re.compile(r"[a-z0-9]+")
DECIMAL = re.compile(r"[0-9]+\.[0-9]+")
# Spellings a plain value may not have: a decimal's, or a hash's
AMBIGUOUS = re.compile(r"[0-9]+p[0-9]+|h[0-9a-f]{8}")


def base(user: str, project: str, job: str) -> str:
    """The name of a job's workload, or the start of each of its points' names.

    >>> base("j3soon", "mnist", "train")
    'j3soon-mnist-train'
    """
    return f"{user}-{project}-{job}"


def digest(row: tuple[str, ...]) -> str:
    """A hash of all of a point's values.

    >>> digest(("0.1", "adam"))
    'hfb519fa7'
    """
    return "h" + hashlib.sha256("\0".join(row).encode()).hexdigest()[:DIGEST - 1]


def _exact(value: str) -> str | None:
    """The spelling of a value in a name when it can be read back exactly (else None)."""
    if DECIMAL.fullmatch(value):
        return value.replace(".", "p")
    if PLAIN.fullmatch(value) and not AMBIGUOUS.fullmatch(value):
        return value
    return None


def point_key(names: tuple[str, ...], row: tuple[str, ...], room: int) -> str:
    """The key of one point (its values ``row`` of the parameters ``names``), at most
    ``room`` characters (at least DIGEST), from the point alone.

    >>> point_key(("seed",), ("1",), 40), point_key(("lr", "opt"), ("0.1", "adam"), 40)
    ('1', '0p1-adam')
    >>> point_key(("lr", "opt"), ("0.1", "Adam_W"), 40)
    '0p1-adam-w-h557513c2'
    >>> point_key(("v",), ("0p5",), 40), point_key(("v",), ("a b",), 10)
    ('0p5-h01a9cc5b', 'hc8687a08')
    >>> point_key((), (), 40)
    ''
    """
    if not row:
        return ""
    keep = [i for i, n in enumerate(names) if not (n == "length" and "sequence" in names)]
    exact = [_exact(row[i]) for i in keep]
    text = "-".join(e or "" for e in exact)
    if all(exact) and len(text) <= room:
        return text
    parts = [e or row[i].lower() for e, i in zip(exact, keep, strict=True)]
    readable = re.sub(r"[^a-z0-9]+", "-", "-".join(parts))[:room - ROOM].strip("-")
    return f"{readable}-{digest(row)}" if readable else digest(row)


def point_keys(names: tuple[str, ...], rows: tuple[tuple[str, ...], ...],
               room: int) -> list[str]:
    """The key of every point (see ``point_key``)."""
    return [point_key(names, row, room) for row in rows]


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
