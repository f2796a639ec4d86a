"""`ir`: the root command. Errors become exit codes here and only here."""

from __future__ import annotations

import importlib
import os
import sys
from typing import NoReturn

import click

from ir import __version__
from ir.cli.lazygroup import LazyGroup
from ir.cli.output import emit_json, json_requested, remember_output
from ir.errors import ExitCode, IrError

# The command tree, loaded on demand: running `ir capture container` imports the modules of
# `capture` only, not serve, replay or the playbooks (a third of a second of imports saved on
# every run). Each module lists its top-level click commands in `COMMANDS`; a group may load
# its own subcommands on demand too (`ir.cli.lazygroup.LazyGroup`).
# tests/test_cli_commands.py checks these tables against what the modules register.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "bundle": ("bundle",),
    "capture": ("capture",),
    "collector": ("collector",),
    "keys": ("keys",),
    "playbook": ("playbook",),
    "quarantine": ("respond",),
    "release": ("respond",),
    "replace": ("respond",),
    "replay": ("replay",),
    "serve": ("serve",),
}

HELP = """ir: capture forensic evidence from containers and Kubernetes pods, package it as signed,
hashed bundles, respond (quarantine, replace) and replay the evidence offline.

\b
Typical first response:
  ir capture pod web-7f9c -n shop --case INC-42 --reason "falco: shell in container"
  ir bundle verify evidence/INC-42/<id>.tar --public-key ir-signing.pub
  ir replay evidence/INC-42/<id>.tar summary

\b
Exit codes: 0 ok; 1 evidence incomplete, partial or tampered; 2 bad input;
3 store failed (evidence kept in the local spool); 4 cluster/runtime API error (also: no
Ready replacement in time); 5 refused by a safety gate; 6 evidence intact but its origin not
proven; 70 internal error; 130 interrupted. The cause of a non-zero exit is the last line
of the output (in -o json: "errors").
"""


class _RootGroup(LazyGroup):
    """The root group: a command's modules are imported, and their COMMANDS added, when it is
    looked up."""

    def load(self, name: str) -> None:
        load_commands(name)


@click.group(
    cls=_RootGroup,
    elsewhere=COMMAND_MODULES,
    help=HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="ir")
def cli() -> None:
    pass


def load_commands(*names: str) -> None:
    """Import the modules of top-level commands `names` (all when none) and add their commands."""
    for name in names or tuple(COMMAND_MODULES):
        for module_name in COMMAND_MODULES[name]:
            module = importlib.import_module(f"ir.cli.{module_name}")
            for command in getattr(module, "COMMANDS", ()):
                if command.name not in cli.commands:
                    cli.add_command(command)


def _fail(code: ExitCode, message: str, label: str = "error: ") -> NoReturn:
    """End the command with `code`: the cause on stderr's last line and, when `-o json` was
    asked for, as the `errors` of a JSON document on stdout (a script reads one place)."""
    click.echo(f"ir: {label}{message}", err=True)
    if json_requested():
        emit_json({"exit_code": int(code), "errors": [message]})
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    remember_output("text")  # until the command's -o says otherwise
    try:
        code = cli.main(args=argv, prog_name="ir", standalone_mode=False)
    except click.exceptions.Abort:
        _fail(ExitCode.INTERRUPTED, "interrupted", "")
    except click.exceptions.ClickException as exc:
        exc.show()
        if json_requested():
            emit_json({"exit_code": int(ExitCode.USAGE), "errors": [exc.format_message()]})
        sys.exit(ExitCode.USAGE)
    except IrError as exc:
        _fail(exc.exit_code, exc.message)
    except KeyboardInterrupt:
        _fail(ExitCode.INTERRUPTED, "interrupted", "")
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(ExitCode.OK)
    except Exception as exc:  # noqa: BLE001 -- one line, never a traceback, unless asked
        if os.environ.get("IR_DEBUG"):
            raise
        _fail(
            ExitCode.INTERNAL,
            f"{type(exc).__name__}: {exc} (set IR_DEBUG=1 for a traceback)",
            "internal error: ",
        )
    sys.exit(int(code) if isinstance(code, int) else ExitCode.OK)


if __name__ == "__main__":
    main()
