"""A click group whose subcommands declared in other modules are imported when looked up.

`ir bundle verify` then does not import the S3 store nor the replay diff, and the collector's
`ir capture container` not the Kubernetes client of `ir capture pod`: tenths of a second on
every run. tests/test_cli_commands.py checks each table against what the modules register."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click


class LazyGroup(click.Group):
    """`elsewhere`: {subcommand: module of ir.cli that adds it to this group}, imported by `load`
    when the subcommand is looked up (the root group loads its modules its own way)."""

    def __init__(
        self, *args: Any, elsewhere: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.elsewhere: dict[str, Any] = dict(elsewhere or {})

    def load(self, name: str) -> None:
        importlib.import_module(f"ir.cli.{self.elsewhere[name]}")

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(self.elsewhere))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.elsewhere:
            self.load(cmd_name)
        return super().get_command(ctx, cmd_name)
