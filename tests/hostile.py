"""Hostile values for property tests, and the shell code shapes they are placed in.

A value is hostile when it holds what would break naive quoting or run as code: quotes,
``$( )``, backticks, ``;|&``, globs, ``~``, ``#``, ``%``, braces, brackets, backslashes,
newlines, CR, leading dashes, here-document delimiters, long or non-ASCII text. Every code
shape prints what it received as NUL-terminated fields, and ``expected`` says what that must
be for a value, so a test can run the generated code with bash and compare.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hypothesis import strategies as st

# Hostile values run through generated code in this test session (reported at the end).
TALLY: dict[str, int] = {}


def tally(where: str, count: int) -> None:
    TALLY[where] = TALLY.get(where, 0) + count


SPECIAL = "$()`'\";|&*?~#%{}[]!<>=,:\\\n\r\t -/^"
ATTACKS = ["$(touch PWNED)", "`touch PWNED`", "a[$(touch PWNED)]", "'; touch PWNED; '",
           '"; touch PWNED; "', "\nEOF\ntouch PWNED\n", "USAGE\ntouch PWNED", "-n", "--help",
           "$HOME ${HOME} $1 $@ !!", "\\", "'", '"', "", " ", "*", "~", "#", "}", "{{ v }}",
           "${UNSET:-x}", "a\\nb", "%s%n", "\r", "esac", "EOF", ";;", ")", "x\n"]


def hostile_text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Strings made mostly of characters that matter to bash, plus any other text."""
    chars = st.one_of(st.sampled_from(SPECIAL),
                      st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
    return st.text(chars, max_size=max_size)


def hostile_values() -> st.SearchStrategy[str]:
    """One hostile value: an attack, random special text, both joined, or a long one."""
    attack = st.sampled_from(ATTACKS)
    joined = st.tuples(hostile_text(12), attack, hostile_text(12)).map("".join)
    long = st.tuples(attack, st.integers(200, 2000)).map(lambda t: (t[0] + "ü '") * (
        t[1] // (len(t[0]) + 3) + 1))
    return st.one_of(attack, hostile_text(), joined, long)


@dataclass(frozen=True)
class Shape:
    """Shell code with ``{{ v }}`` that prints fields, and the fields a value must give."""

    code: str
    expected: Callable[[str], list[str]]


def _cut(value: str) -> str:
    """What a command substitution keeps of text: trailing newlines are dropped."""
    return value.rstrip("\n")


# Places where bash expands, so any value must arrive exactly (or as bash itself would
# deliver a literal there). Each prints with printf '%s\0'.
SHAPES = [
    Shape("printf '%s\\0' {{ v }} \"{{ v }}\" x{{ v }}y \"a {{ v }} b\"",
          lambda v: [v, v, f"x{v}y", f"a {v} b"]),
    Shape("# don't forget \"this\": {{ v }}\nprintf '%s\\0' {{ v }}", lambda v: [v]),
    Shape("printf '%s\\0' \"$(case a in a) printf %s {{ v }};; esac)\"", lambda v: [_cut(v)]),
    Shape("printf '%s\\0' \"$(cat <<EOF\n<{{ v }}>\nEOF\n)\"", lambda v: [f"<{v}>"]),
    Shape("cat <<-EOF | tr -d '\\n'; printf '\\0'\n\t{{ v }}\n\tEOF",
          lambda v: [v.replace("\n", "")]),
    Shape("printf '%s\\0' \"${UNSET:-{{ v }}}\" ${UNSET:-{{ v }}} \"${UNSET:-\"{{ v }}\"}\"",
          lambda v: [v, v, v]),
    Shape("x=hello; printf '%s\\0' \"${x/l/{{ v }}}\" \"${x#{{ v }}}\"",
          lambda v: ["he" + v + "lo", "hello"[len(v):] if "hello".startswith(v) else "hello"]),
    Shape("printf '%s\\0' \"`printf %s {{ v }}`\" \"$(printf '%s' \"{{ v }}\")\"",
          lambda v: [_cut(v), _cut(v)]),
    Shape("case {{ v }} in {{ v }}) printf '%s\\0' match;; *) printf '%s\\0' no;; esac",
          lambda v: ["match"]),
    Shape("[[ {{ v }} == \"{{ v }}\" ]] && printf '%s\\0' eq; a=({{ v }}); printf '%s\\0' ${#a[@]}",
          lambda v: ["eq", "1"]),
    Shape("for x in {{ v }}; do printf '%s\\0' \"$x\"; done", lambda v: [v]),
    Shape("f() { printf '%s\\0' \"$@\"; }; f {{ v }} \\\n  \"{{ v }}\"", lambda v: [v, v]),
    Shape("printf '%s\\0' a#{{ v }} \"$(echo) {{ v }}\"", lambda v: [f"a#{v}", f" {v}"]),
    Shape("x={{ v }}; y=\"{{ v }}\"; printf '%s\\0' \"$x\" \"$y\" \"$(cat <<<{{ v }})\"",
          lambda v: [v, v, _cut(v)]),
    Shape("{ printf '%s\\0' {{ v }}; } | cat; (printf '%s\\0' {{ v }})", lambda v: [v, v]),
]


def dockerfile_instructions(text: str) -> list[str]:
    """The instruction keywords of a Dockerfile, as a builder reads it: comment lines
    skipped, a line ending in a backslash continued by the next. A value that made an
    instruction of its own, or joined two, changes this list."""
    out, logical = [], ""
    for line in text.split("\n"):
        if not logical and (not line.strip() or line.lstrip().startswith("#")):
            continue
        logical += line
        if logical.endswith("\\"):
            logical = logical[:-1]
            continue
        out.append(logical.split(None, 1)[0])
        logical = ""
    return out
