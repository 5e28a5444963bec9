"""One exception hierarchy for every error a user can cause."""

from __future__ import annotations

import re
from dataclasses import dataclass

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def visible(text: str, keep: str = "") -> str:
    r"""``text`` with control characters (but those in ``keep``) shown as escapes.

    >>> visible("a\nb\x01"), visible("a\nb", keep="\n")
    ('a\\nb\\x01', 'a\nb')
    """
    return _CONTROL.sub(lambda c: c[0] if c[0] in keep else repr(c[0])[1:-1], text)


@dataclass(frozen=True, order=True)
class Problem:
    """One problem in a project file, printed as ``FILE:LINE:COL: path: message``."""

    file: str
    line: int
    col: int
    path: str
    message: str

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}:{self.col}: {self.path}: {self.message}"
        # One problem is one line, whatever a file name or value quoted in it holds.
        return visible(text)


class JobpackError(Exception):
    """Base of every error meant for the user; the CLI prints it without a traceback."""

    exit_status = 1

    def render(self) -> str:
        return str(self)


class ProjectError(JobpackError):
    """The project file (or a file it names) is invalid; carries every problem found."""

    exit_status = 2

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))

    def render(self) -> str:
        n = len(self.problems)
        return f"{self}\n{n} problem{'s' if n != 1 else ''} found; out/ was not changed"


class RenderError(JobpackError):
    """A template could not be rendered (a bug in a template or an override)."""


@dataclass(frozen=True)
class LintMessage:
    """One finding of shellcheck or hadolint against a generated file."""

    severity: str
    path: str
    line: int
    col: int
    code: str
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.severity}: {self.text} [{self.code}]"


class LintError(JobpackError):
    """Generated output failed a linter; nothing was written."""

    def __init__(self, messages: list[LintMessage]) -> None:
        self.messages = messages
        lines = [str(m) for m in messages]
        lines.append(f"{len(messages)} lint finding(s) at warning or above; out/ was not changed")
        super().__init__("\n".join(lines))
