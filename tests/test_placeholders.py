"""Placeholders in shell code: the rewritten code, run by a real bash, never runs a value and
delivers it exactly; where it could not, the build refuses the value.

The lexer behind it is checked three ways: on arbitrary text (it never fails and accounts for
every placeholder), on the contexts users write (values arrive as they were written), and on
random code assembled from bash's quoting and nesting constructs with values that would run
if they ever became code (nothing runs, whatever the lexer made of the code).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from hostile import ATTACKS, SHAPES, hostile_values, tally
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generators.placeholders import (
    COMMENT,
    INERT,
    check_code,
    command_code,
    sites,
    value_problem,
)
from generators.shell import PLACEHOLDER

FAST = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
RUNS = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))

# Pieces of bash syntax, as a fuzzer assembles them.
FRAGMENTS = ["{{ v }}", " ", "\n", "'", '"', "$(", ")", "`", "${", "}", "$((", "))", "(", "#",
             "\\", "<<EOF\n", "<<'EOF'\n", "\nEOF\n", "case x in ", " in ", "x) ", ";; esac",
             "esac", "[[ ", " ]]", " -eq ", "$'", "|", ";", "&&", "=", "x", "echo", "printf %s",
             "[", "]", ":-", "/", "#", "{", "\t", "<<<", "bash -c ", "eval ", "let ", "((",
             "declare -a ", "printf -v ", "${!", "$", "'\"'", "\\\n", "for i in ", "; do ",
             "; done", "a=(", "|| ", "-c ", "f() { ", "function f ", "RANDOM=", "x=([",
             "declare -i n; n=", "source /dev/stdin ", "python -Ic ", "sbatch --wrap="]
ALPHABET = st.lists(st.sampled_from(FRAGMENTS), max_size=25).map("".join)


def _code() -> st.SearchStrategy[str]:
    """Well-formed bash built from its quoting and nesting constructs, with placeholders."""
    word = st.sampled_from(["{{ v }}", "x", "-n", "a=", "'q'", "\\;", "#c", "$x", "*"])

    def nest(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        words = st.lists(st.one_of(word, inner), min_size=1, max_size=4).map(" ".join)
        return st.one_of(
            words.map(lambda w: f'"{w}"'), words.map(lambda w: f"$({w})"),
            words.map(lambda w: f"`{w}`"), words.map(lambda w: f'"${{x:-{w}}}"'),
            words.map(lambda w: f"${{x:-{w}}}"), words.map(lambda w: f"$(( {w} ))"),
            words.map(lambda w: f"[[ {w} ]]"), words.map(lambda w: f"(( {w} ))"),
            words.map(lambda w: f"case {w} in {w}) echo {w};; esac"),
            words.map(lambda w: f"$(cat <<EOF\n{w}\nEOF\n)"),
            words.map(lambda w: f"# {w}\necho {w}"), words.map(lambda w: f"'{w}'"),
            words.map(lambda w: f"bash -c {w}"), words.map(lambda w: f"eval {w}"),
            words.map(lambda w: f"a[{w}]=1"), words.map(lambda w: f"printf -v {w} x"),
            words.map(lambda w: f"echo {w} | sh"), words.map(lambda w: f"declare -i y={w}"),
            words.map(lambda w: f"f() {{ {w}; }}; f"), words.map(lambda w: f"RANDOM={w}"),
            words.map(lambda w: f"x=([{w}]=1)"), words.map(lambda w: f"bash <<< {w}"),
            words.map(lambda w: f"declare -i n; n={w}"),
            words.map(lambda w: f"function g {{ {w}; }}; g"))

    return st.recursive(word, nest, max_leaves=12).map(lambda c: f"echo {c}")


def _run_each(code: str, values: list[str], workdir: Path) -> list[bytes]:
    """What ``code`` prints for each value, run by one bash with the value in jp_p_v (read
    from a file, never from code), in ``workdir``."""
    feed = workdir / "values.bin"
    feed.write_bytes(b"\0".join(v.encode("utf-8", "surrogateescape") for v in values) + b"\0")
    outs = workdir / "outs"
    outs.mkdir(exist_ok=True)
    runner = ('i=0; while IFS= read -r -d "" jp_p_v; do export jp_p_v; '
              '( cd "$1" && eval "$JP_CODE" ) >"$2/$i" 2>/dev/null </dev/null; i=$((i + 1)); '
              'done <"$3"')
    subprocess.run(["bash", "-c", runner, "_", str(workdir), str(outs), str(feed)],
                   env={**os.environ, "JP_CODE": code}, check=True, timeout=120)
    return [(outs / str(i)).read_bytes() for i in range(len(values))]


def _fields(out: bytes) -> list[str]:
    return out.decode("utf-8", "surrogateescape").split("\0")[:-1]


@FAST
@given(ALPHABET)
def test_lexer_reads_any_text_and_accounts_for_every_placeholder(code: str) -> None:
    found = sites(code)
    assert [s.start for s in found] == [m.start() for m in PLACEHOLDER.finditer(code)]
    rewritten = command_code(code)
    kept = sum(1 for s in found if s.quoting == COMMENT)
    assert len(PLACEHOLDER.findall(rewritten)) == kept
    assert "jp_p_v" in rewritten or len(found) == kept


@RUNS
@given(st.lists(hostile_values(), min_size=60, max_size=60))
def test_values_arrive_exactly_wherever_bash_expands(values: list[str]) -> None:
    """Every context of ``hostile.SHAPES`` accepts every value and delivers it as written."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for shape in SHAPES:
            assert check_code(shape.code, lambda _: values) == [], shape.code
            outs = _run_each(command_code(shape.code), values, work)
            for value, out in zip(values, outs, strict=True):
                assert _fields(out) == shape.expected(value), (shape.code, value)
        assert not (work / "PWNED").exists()
    tally("shell code run by bash", len(values))


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(ALPHABET, _code()))
def test_random_code_never_runs_a_value(code: str) -> None:
    """Whatever bash makes of the code, a value it accepts never runs: the attacks below
    create PWNED if they ever become code (arithmetic included)."""
    allowed = [v for v in ATTACKS[:5] + ["a[$(touch PWNED)]"]
               if not check_code(code, lambda _, v=v: [v])]
    if not allowed or not sites(code):
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        guarded = f"set +e; {command_code(code)}\n"
        try:
            _run_each(guarded, allowed, work)
        except subprocess.TimeoutExpired:
            pytest.skip("random code that does not end (e.g. reads a terminal)")
        assert not (work / "PWNED").exists(), (code, allowed)


REFUSED = [
    ("bash -c 'echo {{ v }}'", "parses again"),
    ("bash -c \"echo {{ v }}\"", "bash -c parses again"),
    ("sh -euc \"{{ v }}\"", "sh -c parses again"),
    ("eval echo {{ v }}", "eval parses again"),
    ("ssh -p 22 host echo {{ v }}", "ssh parses again"),
    ("echo {{ v }} | bash", "bash parses again"),
    ("python3 -c \"print('{{ v }}')\"", "python3 -c parses"),
    ("python3 -Ic \"print({{ v }})\"", "python3 -c parses"),
    ("perl -ne 'print {{ v }}'", "perl -e parses"),
    ("awk -v x=1 '{print \"{{ v }}\"}' f", "awk parses"),
    ("sed -e \"s/a/{{ v }}/\" f", "sed parses"),
    ("python <<EOF\nprint('{{ v }}')\nEOF", "python parses"),
    ("bash <<< {{ v }}", "bash parses again"),
    ("bash < <(echo {{ v }})", "bash parses again"),
    ("bash <(echo {{ v }})", "bash -c parses again"),
    ("source /dev/stdin <<EOF\n{{ v }}\nEOF", "source parses again"),
    ("trap -- \"echo {{ v }}\" EXIT", "trap parses again"),
    ("bash -c -x \"echo {{ v }}\"", "bash -c parses again"),
    ("sbatch --wrap=\"python t.py {{ v }}\"", "sbatch --wrap parses again"),
    ("f() { (( {{ v }} > 0 )); }; f", "arithmetic"),
    ("function f { let x={{ v }}; }", "arithmetic"),
    ("RANDOM={{ v }}", "arithmetic"),
    ("x=(a [{{ v }}]=1)", "arithmetic"),
    ("declare -i n\nn+={{ v }}", "arithmetic"),
    ("f() { printf -v {{ v }} x; }", "names a variable"),
    ("trap \"echo {{ v }}\" EXIT", "trap parses again"),
    ("echo '{{ v }}'", "single quotes"),
    ("echo $'{{ v }}'", "$'...' quotes"),
    ("echo $(( {{ v }} + 1 ))", "arithmetic"),
    ("(( {{ v }} > 1 ))", "arithmetic"),
    ("[[ {{ v }} -gt 1 ]]", "arithmetic"),
    ("let x={{ v }}", "arithmetic"),
    ("a[{{ v }}]=1", "arithmetic"),
    ("echo ${x:{{ v }}}", "arithmetic"),
    ("printf -v {{ v }} x", "names a variable"),
    ("declare -a x={{ v }}", "names a variable"),
    ("echo ${!{{ v }}}", "cannot name a variable"),
    ("cat <<'EOF'\n{{ v }}\nEOF", "quoted here-document"),
    ("echo \\{{ v }}", "backslash"),
    ("echo \"{{ v }}", "do not balance"),
]


@pytest.mark.parametrize(("code", "why"), REFUSED)
def test_unsafe_places_refuse_hostile_values_and_name_the_place(code: str, why: str) -> None:
    problems = check_code(code, lambda _: ["ok", "a b$(touch PWNED)"])
    assert len(problems) == 1, problems
    offset, message = problems[0]
    assert code[offset:].startswith("{{ v }}")
    assert message.startswith("'{{ v }}': ") and why in message


@pytest.mark.parametrize("code", [c for c, why in REFUSED if "again" in why or "quotes" in why])
def test_code_for_a_shell_takes_inert_values(code: str) -> None:
    assert check_code(code, lambda _: ["ok", "a-b_c.d/e:f=g,h@i%j+k"]) == []


@pytest.mark.parametrize("code", [c for c, why in REFUSED if why.endswith(" parses")])
def test_code_for_other_interpreters_takes_numbers_only(code: str) -> None:
    assert check_code(code, lambda _: ["1", "-2.5", "1e-3"]) == []
    assert check_code(code, lambda _: ["qx/id/"]) != []  # perl runs it; sed 'e' and awk alike


@pytest.mark.parametrize("code", ["echo $(( {{ v }} + 1 ))", "let x={{ v }}", "a[{{ v }}]=1"])
def test_arithmetic_takes_integers(code: str) -> None:
    assert check_code(code, lambda _: ["0", "-12", "+7"]) == []
    assert check_code(code, lambda _: ["x"]) != []


@RUNS
@given(st.lists(hostile_values().filter(INERT.fullmatch), min_size=1, max_size=30))
def test_inert_values_arrive_exactly_inside_single_quotes(values: list[str]) -> None:
    code = "printf '%s\\0' '<{{ v }}>' $'[{{ v }}]' \"$(bash -c 'printf %s {{ v }}')\""
    assert check_code(code, lambda _: values) == []
    with tempfile.TemporaryDirectory() as tmp:
        outs = _run_each(command_code(code), values, Path(tmp))
    for value, out in zip(values, outs, strict=True):
        assert _fields(out) == [f"<{value}>", f"[{value}]", value]


def test_a_value_is_refused_only_where_it_could_change_the_code() -> None:
    site = sites("echo '{{ v }}'")[0]
    assert value_problem(site, "a b") and value_problem(site, "it's")
    assert value_problem(site, "/data/run-1.2:x") is None
