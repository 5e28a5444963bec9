"""A job's sweep expanded into points: names of its parameters and one row per point."""

from __future__ import annotations

import itertools
import math
import re

from ..loader import Loc, parse_json
from . import model as m
from .checker import BUILTINS, Checker, Loaded, Points, is_number, text_problem

# At most this many points per sweep: far beyond real use, and small enough that a mistaken
# product is refused at once instead of exhausting memory.
MAX_POINTS = 100_000


def sweep_points(ck: Checker, loaded: Loaded, loc: Loc, job: m.Job) -> Points:
    """The points of a job's sweep (one empty point without a sweep); problems go to ``ck``."""
    sweep = job.sweep
    if sweep is None:
        return Points()
    sloc = (*loc, "sweep")
    errors_before = len(ck.problems)
    sources: list[Points] = []
    if sweep.sequences is not None:
        sources.append(_sequences(ck, loaded, (*sloc, "sequences"), sweep.sequences))
    if sweep.points is not None:
        sources.append(_point_list(ck, (*sloc, "list"), sweep.points))
    if sweep.matrix is not None:
        sources.append(_matrix(ck, (*sloc, "matrix"), sweep.matrix))
    if not sources:
        ck.add(sloc, "a sweep needs at least one of matrix, list or sequences")
        return Points()
    names = _param_names(ck, sloc, sources)
    if not _few_enough(ck, sloc, [s.size for s in sources]):
        return Points(tuple(names), ())
    rows = list(sources[0].rows) if len(sources) == 1 else [  # one source: its rows as they are
        tuple(itertools.chain.from_iterable(combo))
        for combo in itertools.product(*(s.rows for s in sources))]
    if not rows and len(ck.problems) == errors_before:
        ck.add(sloc, "the sweep has no points")
    numeric = tuple(sorted({n for s in sources for n in s.numeric}))
    return Points(tuple(names), tuple(rows), numeric)


def _few_enough(ck: Checker, loc: Loc, sizes: list[int]) -> bool:
    """Whether a product of ``sizes`` points stays within MAX_POINTS (computed before any
    point is, so that a huge matrix is refused at once instead of exhausting memory)."""
    total = math.prod(sizes)
    if total > MAX_POINTS:
        ck.add(loc, f"the sweep has {total} points; at most {MAX_POINTS} are supported "
               "(split the job, or sweep inside the job)")
    return total <= MAX_POINTS


def _param_names(ck: Checker, loc: Loc, sources: list[Points]) -> list[str]:
    names: list[str] = []
    for n in (n for src in sources for n in src.names):
        if n in names:
            ck.add(loc, f"parameter {n!r} is defined by two sweep sources")
        if n in BUILTINS:
            ck.add(loc, f"parameter {n!r} would hide the built-in '{{{{ {n} }}}}'")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", n):
            ck.add(loc, f"parameter name {n!r} is not an identifier of at most "
                   f"{m.NAME_MAX} characters")
        names.append(n)
    return names


def _matrix(ck: Checker, loc: Loc, matrix: dict[str, list[m.Scalar]]) -> Points:
    for key, values in matrix.items():
        if not values:
            ck.add((*loc, key), "a matrix axis needs at least one value")
    if not _few_enough(ck, loc, [len(v) for v in matrix.values()]):
        return Points(tuple(matrix), ())
    rows = itertools.product(*([m._scalar_text(v) for v in vals] for vals in matrix.values()))
    return Points(tuple(matrix), tuple(rows), tuple(sorted(
        k for k, vals in matrix.items() if vals and all(is_number(v) for v in vals))))


def _point_list(ck: Checker, loc: Loc, points: list[dict[str, m.Scalar]]) -> Points:
    if not points:
        return Points((), ())
    names = tuple(points[0])
    for i, point in enumerate(points):
        if set(point) != set(names):
            ck.add((*loc, i), f"every point must set the same parameters ({', '.join(names)})")
    rows = tuple(tuple(m._scalar_text(p.get(n, "")) for n in names) for p in points)
    return Points(names, rows, tuple(sorted(
        n for n in names if all(is_number(p.get(n)) for p in points))))


def _sequences(ck: Checker, loaded: Loaded, loc: Loc, rel: str) -> Points:
    empty = Points(("sequence", "length"), ())
    if rel.startswith("/"):
        ck.add(loc, f"sequences file {rel!r}: give the path relative to the project file")
        return empty
    found, data = ck.data_file(loc, rel, f"sequences file {rel!r}", parse_json)
    if not found:
        return empty
    if not isinstance(data, dict) or not data:
        ck.add(loc, f"sequences file {rel!r} must be a non-empty JSON object "
               "{\"<sequence>\": <length>, ...}")
        return empty
    bad = [k for k, v in data.items() if isinstance(v, bool) or not isinstance(v, int) or v < 0]
    if bad:
        ck.add(loc, f"sequences file {rel!r}: length of {_short(bad[0])} is not a "
               "non-negative integer" + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))
    for name in data if not "".join(data).isprintable() else ():  # printable: all fine
        if problem := text_problem(name, m.VALUE):
            ck.add(loc, f"sequences file {rel!r}: the sequence name {_short(name)} {problem}")
            return empty
    if not _few_enough(ck, loc, [len(data)]):
        return empty
    return Points(("sequence", "length"), tuple((k, str(v)) for k, v in data.items()),
                  ("length",))


def _short(text: str) -> str:
    r"""A value for a message: quoted, escaped, and cut when long.

    >>> _short("a\nb"), len(_short("x" * 100))
    ("'a\\nb'", 63)
    """
    shown = repr(text)
    return shown if len(shown) <= 60 else shown[:60] + "..."
