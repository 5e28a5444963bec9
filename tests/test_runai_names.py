"""Run:ai workload names: each a DNS-1123 label of at most 63 characters, a function of its
point alone (a sweep that grows renames none of its points), and distinct for distinct
points."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from generators.backends.runai import names

LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
START = "j3soon-mnist-train"
# Values as a sweep has them (text): lookalikes, plain words, numbers, anything at all
VALUES = st.one_of(st.sampled_from(["0.5", "0p5", "Adam", "adam", "a_b", "a-b", "1", ""]),
                   st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True),
                   st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}|p[0-9])?", fullmatch=True),
                   st.from_regex(r"h[0-9a-f]{8}", fullmatch=True),
                   st.text(min_size=0, max_size=30))


def rows(width: int) -> st.SearchStrategy[list[tuple[str, ...]]]:
    return st.lists(st.tuples(*[VALUES] * width), min_size=1, max_size=12, unique=True)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 3).flatmap(lambda w: st.tuples(st.just(w), rows(w), rows(w))),
       st.sampled_from([START, "u-" + "x" * 50]))
def test_names_are_labels_distinct_and_stable(case: tuple[int, list[tuple[str, ...]],
                                                            list[tuple[str, ...]]],
                                              start: str) -> None:
    width, some, more = case
    params = tuple(f"p{i}" for i in range(width))
    alone = names.point_names(start, params, tuple(some))
    grown = names.point_names(start, params, tuple(some + [r for r in more if r not in some]))
    for name in grown:
        assert LABEL.fullmatch(name) and len(name) <= names.MAX, name
    assert len(set(grown)) == len(grown), "two points share a name"
    assert grown[:len(alone)] == alone, "a point was renamed when the sweep grew"


def test_lookalike_values_keep_their_names() -> None:
    """``0.5`` is ``0p5`` whatever else the sweep holds; the value ``0p5`` and a value in
    another case get names of their own."""
    first = names.point_names(START, ("lr",), (("0.5",),))
    grown = names.point_names(START, ("lr",), (("0.5",), ("0p5",), ("Adam",), ("adam",)))
    assert grown[0] == first[0] == f"{START}-0p5"
    assert len(set(grown)) == 4 and grown[3] == f"{START}-adam"
