"""Properties of the one quoting filter, checked against a real bash."""

from __future__ import annotations

import subprocess

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generators.shell import parse_text, shquote, tsv_cell, word_ref

# Any text a YAML string can hold, except NUL (which no shell argument can carry).
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               max_size=40)
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def bash_args(code: str) -> list[str]:
    """The arguments bash passes to printf for the shell code ``code``."""
    out = subprocess.run(["bash", "-c", f"printf '%s\\0' {code}"], capture_output=True,
                         check=True).stdout
    return out.decode("utf-8", "surrogateescape").split("\0")[:-1]


@SETTINGS
@given(TEXT)
def test_shquote_round_trips_through_bash(value: str) -> None:
    assert bash_args(shquote(value)) == [value]


@SETTINGS
@given(TEXT)
def test_shquote_is_one_line_without_tabs(value: str) -> None:
    """Rows of a params table stay one line each, whatever the values hold."""
    quoted = shquote(value)
    assert "\n" not in quoted and "\t" not in quoted and "\r" not in quoted


@SETTINGS
@given(st.lists(TEXT, min_size=1, max_size=5))
def test_tsv_cells_read_back_exactly_with_printf_b(values: list[str]) -> None:
    """A row of cells is one line without tabs inside cells, and printf %b restores each."""
    row = "\t".join(tsv_cell(v) for v in values)
    assert "\n" not in row and "\r" not in row and row.count("\t") == len(values) - 1
    script = 'for c in "$@"; do printf "%b\\0" "$c"; done'
    out = subprocess.run(["bash", "-c", script, "_", *row.split("\t")], capture_output=True,
                         check=True).stdout
    assert out.decode("utf-8", "surrogateescape").split("\0")[:-1] == values


@SETTINGS
@given(TEXT, TEXT)
def test_word_with_secret_reference_keeps_literal_text(before: str, after: str) -> None:
    text = before.replace("{", "(").replace("$", "%") + "${SECRET}" + after.replace("{", "(")
    code = word_ref(parse_text(text)[0])
    got = subprocess.run(["bash", "-c", f"SECRET='s e' ; printf '%s\\0' {code}"],
                         capture_output=True, check=True).stdout.decode().split("\0")[:-1]
    assert got == [text.replace("${SECRET}", "s e")]
