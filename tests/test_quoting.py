"""Properties of the one quoting filter, checked against a real bash."""

from __future__ import annotations

import subprocess

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generators.shell import parse_text, shell_code, shquote, word_code

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
@given(TEXT, st.sampled_from(["{{ v }}", "'{{ v }}'", '"{{ v }}"', "$'{{ v }}'",
                              "x{{ v }}y", "'a'{{ v }}\"b\"", '"$(printf %s {{ v }})"']))
def test_placeholder_in_any_quote_context_arrives_exactly(value: str, context: str) -> None:
    code = f"{context} {context}"
    segments = shell_code(code, parse_text(code, vars_in_code=True)[0], {"v": value})
    assert len(segments) == 1 and isinstance(segments[0], str)
    expected = value
    if context.startswith('"$('):
        expected = value.rstrip("\n")  # command substitution drops trailing newlines
    wrap = {"x{{ v }}y": "x{}y", "'a'{{ v }}\"b\"": "a{}b"}.get(context, "{}")
    assert bash_args(segments[0]) == [wrap.format(expected)] * 2


@SETTINGS
@given(TEXT, TEXT)
def test_word_with_secret_reference_keeps_literal_text(before: str, after: str) -> None:
    text = before.replace("{", "(").replace("$", "%") + "${SECRET}" + after.replace("{", "(")
    code = word_code(parse_text(text)[0], {})
    assert len(code) == 1 and isinstance(code[0], str)
    got = subprocess.run(["bash", "-c", f"SECRET='s e' ; printf '%s\\0' {code[0]}"],
                         capture_output=True, check=True).stdout.decode().split("\0")[:-1]
    assert got == [text.replace("${SECRET}", "s e")]
