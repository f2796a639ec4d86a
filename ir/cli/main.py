"""`ir`: the root command. Errors become exit codes here and only here."""

from __future__ import annotations

import importlib
import os
import sys

import click

from ir import __version__
from ir.errors import ExitCode, IrError

# Each module registers its commands on import (a list `COMMANDS` of click commands).
COMMAND_MODULES = (
    "bundle",
    "keys",
    "capture",
    "capture_pod",
    "respond",
    "playbook",
    "serve",
    "replay",
    "transfer",
    "collector",
)

HELP = """ir: capture forensic evidence from containers and Kubernetes pods, package it as signed,
hashed bundles, respond (quarantine, replace) and replay the evidence offline.

\b
Typical first response:
  ir capture pod web-7f9c -n shop --case INC-42 --reason "falco: shell in container"
  ir bundle verify evidence/INC-42/<id>.tar --public-key ir-signing.pub
  ir replay evidence/INC-42/<id>.tar summary

\b
Exit codes: 0 ok; 1 evidence failed verification or is partial/incomplete; 2 bad input;
3 store failed (evidence kept in the local spool); 4 cluster/runtime API error;
5 refused by a safety gate; 130 interrupted.
"""


@click.group(
    help=HELP, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(__version__, prog_name="ir")
def cli() -> None:
    pass


def _register() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"ir.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("ir."):
                continue  # that room is not built yet
            raise
        for command in getattr(module, "COMMANDS", ()):
            cli.add_command(command)


_register()


def main(argv: list[str] | None = None) -> None:
    try:
        code = cli.main(args=argv, prog_name="ir", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("ir: interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(ExitCode.USAGE)
    except IrError as exc:
        click.echo(f"ir: error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("ir: interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(ExitCode.OK)
    except Exception as exc:  # noqa: BLE001 -- one line, never a traceback, unless asked
        if os.environ.get("IR_DEBUG"):
            raise
        click.echo(
            f"ir: internal error: {type(exc).__name__}: {exc} (set IR_DEBUG=1 for a traceback)",
            err=True,
        )
        sys.exit(ExitCode.INTERNAL)
    sys.exit(int(code) if isinstance(code, int) else ExitCode.OK)


if __name__ == "__main__":
    main()
