"""Run the real ``ngc batch`` CLI code of ngcsdk 3.169.4 offline, as a test double.

The argparse tree, the argument checks and the job-request builder are ngcsdk's own; the
CLI runs up to its first HTTP request, which is caught instead of sent. Replaced, and why:

* ``argcomplete``, ``ngcpygo``, ``ngccli.cacerts``: imported by the CLI, not in the wheel.
* ``clicommand.trace_command``: OpenTelemetry tracing around every command; identity here.
* Environment while building: a dummy ``NGC_CLI_API_KEY`` (else ``--org/--ace/--team`` are
  hidden and rejected), an empty temporary ``NGC_CLI_HOME`` and no other ``NGC_*`` variable,
  so no user configuration is read.
* ``JobsAPI._check_job_args`` (remote ACE and image look-ups): no-op.
* ``Configuration.validate_configuration``: no-op. Offline it only checks the configuration,
  which has no org here, so it would reject every command without ``--org`` (it also rejects
  ``--format_type csv`` for most commands; that check is lost).
* ``Connection.make_api_request``: raises ``_Request`` instead of sending.

The CLI keeps ``--org/--ace/--team/--format_type/--debug`` in its configuration object, not
in the namespace; that state is reset before every call. The parser is built once (~1 s).
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import sys
import tempfile
import types
from contextlib import redirect_stderr, redirect_stdout
from functools import cache
from typing import Any
from unittest import mock


class _Request(BaseException):
    """An HTTP request the CLI tried to send (a BaseException, so the CLI cannot swallow it)."""

    def __init__(self, verb: str, endpoint: str, payload: str | None = None, **_: Any) -> None:
        super().__init__(verb, endpoint)
        self.verb, self.payload = verb, payload


def _send(*args: Any, **kwargs: Any) -> Any:
    raise _Request(*args, **kwargs)


@cache
def _cli() -> tuple[argparse.ArgumentParser, Any, dict[str, Any], Any]:
    """Build the ``ngc`` parser; return it, its configuration and that configuration's state."""
    cacerts = types.ModuleType("ngccli.cacerts")
    cacerts.__file__ = os.devnull
    ngccli = types.ModuleType("ngccli")
    ngccli.cacerts = cacerts  # type: ignore[attr-defined]
    stubs = {
        "argcomplete": types.ModuleType("argcomplete"),
        "ngcpygo": mock.MagicMock(),
        "ngccli": ngccli,
        "ngccli.cacerts": cacerts,
    }
    for name, module in stubs.items():
        sys.modules.setdefault(name, module)
    home = tempfile.TemporaryDirectory(prefix="ngc-home-")
    with mock.patch.dict(os.environ):
        for key in [key for key in os.environ if key.startswith("NGC_")]:
            del os.environ[key]
        os.environ.update(NGC_CLI_API_KEY="offline-dummy", NGC_CLI_HOME=home.name)
        from ngcbase.command import clicommand

        clicommand.trace_command = lambda **_: lambda func: func  # type: ignore[assignment]
        import basecommand.command.all_commands  # noqa: F401  (registers the commands)
        from ngcbase.api.configuration import _ConfigAttribute
        from ngcbase.command.basecli import BaseCLIRunner
        from ngcsdk import APIClient

        client = APIClient()
        parser = BaseCLIRunner(client).get_parser()
    client.config.validate_configuration = lambda *args, **kwargs: None
    client.connection.make_api_request = _send
    state = {k: v for k, v in vars(client.config).items() if isinstance(v, _ConfigAttribute)}
    return parser, client.config, state, home  # home: kept alive until exit


def _argparse_error(stderr: str) -> str:
    """Drop the usage block argparse prints before ``<prog>: error: <message>``."""
    return "\n".join(ln for ln in stderr.splitlines() if not ln.startswith(("usage:", " ")))


def _invoke(argv: list[str]) -> _Request | None:
    """Run ``ngc *argv`` as the CLI does, up to its first HTTP request, and return that request.

    Raise ValueError with the message the CLI would print if it rejects the command.
    """
    parser, config, state, _ = _cli()
    from basecommand.api.jobs import JobsAPI  # only after _cli() has set up the environment

    vars(config).update({key: copy.copy(value) for key, value in state.items()})
    stderr = io.StringIO()
    with (
        mock.patch.object(sys, "argv", ["ngc", *argv]),  # error messages spell flags from it
        mock.patch.object(JobsAPI, "_check_job_args"),
        redirect_stdout(io.StringIO()),
        redirect_stderr(stderr),
    ):
        try:
            args = parser.parse_args(argv)
            args.func(args)
        except _Request as request:
            return request
        except SystemExit as exc:  # argparse prints usage and "<prog>: error: <message>"
            message = _argparse_error(stderr.getvalue())
            raise ValueError(message or f"ngc exited with status {exc.code}") from None
        except Exception as exc:  # the CLI prints str(exc) and exits with status 1
            raise ValueError(str(exc)) from None
    return None


def parse_batch_run(argv: list[str]) -> dict[str, Any]:
    """Return the JSON body ``ngc batch run *argv`` would POST; ValueError if it rejects argv."""
    request = _invoke(["batch", "run", *argv])
    if request is None or request.verb != "POST" or request.payload is None:
        raise RuntimeError(f"ngc batch run needs the server before submitting: {request!r}")
    body: dict[str, Any] = json.loads(request.payload)
    return body


def parse_batch(subcommand: str, argv: list[str]) -> argparse.Namespace:
    """Validate ``ngc batch <subcommand> *argv`` (info, list, kill, exec, log, ...).

    Runs the real parser and the command's own checks up to its first HTTP request; raises
    ValueError with the CLI's message if it rejects argv. Returns the namespace as parsed
    (the command consumes and mutates its own copy), with ``org/team/ace/format_type`` set
    to the values the CLI would use.
    """
    argv = ["batch", subcommand, *argv]
    _invoke(argv)
    parser, config, _, _ = _cli()
    args = parser.parse_args(argv)
    args.org, args.team, args.ace = config.org_name, config.team_name, config.ace_name
    args.format_type = config.format_type
    return args
