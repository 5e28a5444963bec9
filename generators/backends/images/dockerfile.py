"""Project values in a Dockerfile: each through the quoting of the place it stands in.

A builder reads a Dockerfile instruction by instruction, one line each (a line ending in
the escape character ``\\`` goes on), and expands ``$NAME``, quotes and backslashes in the
words of ENV, WORKDIR, COPY and USER, but not in the exec form of ENTRYPOINT, nor in RUN
(which the image's shell reads). So:

- ENV values and WORKDIR are one word of double-quoted runs with ``"`` and ``$`` escaped,
  and escaped backslashes between them (``word``); the checks refuse a line break in them,
  which no Dockerfile can carry;
- COPY sources and destinations are JSON arrays whose items are escaped for the builder's
  expansion first (``copy_args``);
- ENTRYPOINT is a JSON array, taken as it is (``exec_form``);
- RUN lines hold package names and paths as shell words (``shell.shquote``), which the
  checks keep to package and path characters anyway.

Every line that carries a value ends with a character of jobpack's (``"`` or ``]``), never
with a value's own backslash, so no value can continue an instruction or start one.
"""

from __future__ import annotations

import json
import posixpath
import re
from typing import Any

from ...project import model as m
from ...project.images import bad_char, env_parts
from ...shell import Safe, shquote

REQUIREMENTS = "/run/jobpack/requirements.txt"  # where pip reads the requirements file
HELPER = "/run.sh"
# The named build context build.sh gives the builder: the bundle folder of the image, which
# holds the run.sh helper (the project folder, the main context, may not hold the bundle).
HELPER_CONTEXT = "jobpack"
_ESCAPED = re.compile(r'(["$])')
_ESCAPED_COPY = re.compile(r"([\\\"'$])")


def word(value: str) -> Safe:
    r"""``value`` as one word of ENV or WORKDIR, read back byte-exact: double-quoted runs with
    ``"`` and ``$`` escaped, each backslash an escaped one between them (hadolint's parser
    misreads a backslash before a quote inside quotes, so none stands there).

    >>> print(word('a "b" $(id) ${HOME}'), word("a\\b\\"))
    "a \"b\" \$(id) \${HOME}" "a"\\"b"\\""
    """
    if bad_char(value) is not None:
        raise ValueError(f"a Dockerfile word cannot hold {value!r}")
    return Safe("\\\\".join('"' + _ESCAPED.sub(r"\\\1", part) + '"'
                              for part in value.split("\\")))


def env_word(value: str) -> Safe:
    r"""``value`` as one ENV word whose ``$NAME`` and ``${NAME}`` references the builder
    expands (``env_parts``); everything else is read back byte-exact (``word``).

    >>> print(env_word("/opt/bin:$PATH $$x $(id)"))
    "/opt/bin:""${PATH}"" \$x \$(id)"
    """
    parts = [f'"${{{text}}}"' if reference else word(text)
             for text, reference in env_parts(value)]
    return Safe("".join(parts) if parts else word(""))


def exec_form(items: list[str]) -> Safe:
    r"""A JSON array for ENTRYPOINT: the builder passes its items to the program unexpanded.
    Each backslash is written ``\u005c``: hadolint's parser of this form misreads ``\\``
    before a quote or at the end (every JSON reader takes either).

    >>> print(exec_form(["/run.sh", "a\nb", "$HOME", "ü\\"]))
    ["/run.sh", "a\nb", "$HOME", "\u00fc\u005c"]
    """
    text = json.dumps(items, ensure_ascii=True)
    return Safe(re.sub(r"\\(.)", lambda m: "\\u005c" if m[1] == "\\" else m[0], text))


def copy_args(items: list[str]) -> Safe:
    r"""A JSON array for COPY: each item escaped for the builder's expansion of quotes, ``$``
    and backslashes, so that it names exactly that path. Other characters are written as
    they are (hadolint's parser of COPY takes no ``\u`` escapes; the checks keep control
    characters out of paths).

    >>> print(copy_args(["a b ü", "/d'$x"]))
    ["a b ü", "/d\\'\\$x"]
    """
    return Safe(json.dumps([_ESCAPED_COPY.sub(r"\\\1", i) for i in items], ensure_ascii=False))


# Words a shell reads as its own when they stand bare, where a package or user name may.
KEYWORDS = frozenset(["if", "then", "else", "elif", "fi", "case", "esac", "for", "select",
                      "while", "until", "do", "done", "in", "function", "time", "coproc"])


def run_word(value: str) -> Safe:
    """``value`` as one word of a RUN line (``shquote``, and quoted when a shell keyword).

    >>> run_word("git"), run_word("esac"), run_word("a>=1")
    ('git', "'esac'", "'a>=1'")
    """
    return Safe(f"'{value}'") if value in KEYWORDS else shquote(value)


def _user(user: str | int | None, workdir: str | None) -> dict[str, Any] | None:
    """How the image gets its user: a login name is created (with a group of its own), a
    UID[:GID] is used as it is; the working folder is made theirs."""
    if user is None:
        return None
    text = str(user)
    named = not text.split(":")[0].isdigit()
    owner = text
    # An account the base has already is used as it is; else it is made with useradd, or
    # with busybox's adduser where the base has no useradd (alpine, busybox).
    made = f"useradd --create-home --user-group {run_word(text)}"
    busybox = f"adduser -D {run_word(text)}"
    steps = [f"{{ id -u {run_word(text)} >/dev/null 2>&1 || {{ if command -v useradd "
             f">/dev/null 2>&1; then {made}; else {busybox}; fi; }}; }}"] if named else []
    if workdir is not None:
        steps.append(f"mkdir -p -- {shquote(workdir)} && chown {run_word(owner)} "
                     f"{shquote(workdir)}")
    return {"name": text, "chown": owner, "run": Safe(" && ".join(steps)) if steps else None}


def context(name: str, spec: m.ImageBuild, header: list[str]) -> dict[str, Any]:
    """What Dockerfile.j2 reads for image ``name`` (every value already quoted)."""
    pip = [run_word(p) for p in spec.pip]
    if spec.requirements is not None:
        pip.insert(0, Safe(f"-r {REQUIREMENTS}"))
    return {
        "header": header,
        "name": name,
        "base": Safe(spec.from_),  # a reference: letters, digits and ._/:@- only (checked)
        "env": [Safe(f"{key}={env_word(m._scalar_text(value))}")
                for key, value in spec.env.items()],
        "apt": [run_word(p) for p in spec.apt],
        "apt_unpinned": any("=" not in p for p in spec.apt),
        # A bind mount for the one RUN that reads it: no layer holds the file. The checks
        # keep the path to characters the mount's comma-separated options take as they are.
        "requirements": Safe(f"--mount=type=bind,source={posixpath.normpath(spec.requirements)}"
                             f",target={REQUIREMENTS}")
        if spec.requirements is not None else None,
        "pip": pip,
        "pip_unpinned": any(not re.search(r"[=<>!~]", p) for p in spec.pip),
        "user": _user(spec.user, spec.workdir),
        "workdir": word(spec.workdir) if spec.workdir is not None else None,
        "copies": [copy_args([posixpath.normpath(c.from_), c.to]) for c in spec.copy_],
        "helper": copy_args(["run.sh", HELPER]) if spec.run_helper else None,
        "helper_context": HELPER_CONTEXT,
        "entrypoint": exec_form(spec.entrypoint) if spec.entrypoint else None,
        "ports": [int(p) for p in spec.ports],
    }
