"""The root command's table of command modules (ir/cli/main.py:COMMAND_MODULES) against what the
modules register: every command reachable, none loaded by a command that does not need it."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import click

import ir.cli
from ir.cli.lazygroup import LazyGroup
from ir.cli.main import COMMAND_MODULES, cli, load_commands


def test_every_module_with_commands_is_in_the_table() -> None:
    listed = {m for modules in COMMAND_MODULES.values() for m in modules}
    for info in pkgutil.iter_modules(ir.cli.__path__):
        module = importlib.import_module(f"ir.cli.{info.name}")
        commands = getattr(module, "COMMANDS", None)
        if commands is None:
            continue
        assert info.name in listed, (
            f"ir/cli/{info.name}.py has COMMANDS but is not in COMMAND_MODULES"
        )
        for command in commands:
            assert info.name in COMMAND_MODULES.get(command.name or "", ()), (
                f"command {command.name!r} of ir/cli/{info.name}.py is not mapped to its module"
            )


def test_the_table_names_real_commands() -> None:
    load_commands()
    assert set(cli.commands) == set(COMMAND_MODULES)
    for name in COMMAND_MODULES:
        assert isinstance(cli.commands[name], click.Command)


def test_a_command_imports_only_its_modules() -> None:
    # A fresh interpreter: `ir bundle verify --help` loads the modules of `bundle`, no other's.
    loaded = {
        m.removeprefix("ir.cli.")
        for m in _loaded_by("bundle", "verify", "--help")
        if m.startswith("ir.cli.")
    }
    others = {m for modules in COMMAND_MODULES.values() for m in modules} - set(
        COMMAND_MODULES["bundle"]
    )
    assert not loaded & others, f"bundle verify loaded {sorted(loaded & others)}"


def test_subcommands_of_other_modules_are_in_their_group_table() -> None:
    for info in pkgutil.iter_modules(ir.cli.__path__):
        importlib.import_module(f"ir.cli.{info.name}")
    load_commands()
    groups = [g for g in cli.commands.values() if isinstance(g, LazyGroup)]
    assert {g.name for g in groups} >= {"bundle", "capture"}
    for group in groups:
        for name, command in group.commands.items():
            module = (command.callback.__module__ if command.callback else "").removeprefix(
                "ir.cli."
            )
            owner = (group.callback.__module__ if group.callback else "").removeprefix("ir.cli.")
            if module != owner:
                assert group.elsewhere.get(name) == module, (
                    f"`ir {group.name} {name}` is declared in ir/cli/{module}.py: add it to "
                    f"the `elsewhere` table of the {group.name!r} group"
                )
        assert set(group.elsewhere) <= set(group.commands), group.name


def _loaded_by(*argv: str) -> set[str]:
    probe = (
        "import sys\n"
        "from ir.cli.main import main\n"
        "try:\n"
        f"    main({list(argv)!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(done.stdout.strip().splitlines()[-1].split())


def test_bundle_verify_does_not_import_s3_or_replay() -> None:
    loaded = _loaded_by("bundle", "verify", "--help")
    heavy = {"ir.store.s3", "ir.replay.diff", "ir.cli.transfer", "ir.cli.bundle_diff"}
    assert not loaded & heavy, f"bundle verify imported {sorted(loaded & heavy)}"


def test_capture_container_does_not_import_docker_or_kubernetes() -> None:
    # The collector runs `ir capture container` on every pod it captures: the Docker SDK is
    # imported only when a capture goes through Docker, the pod capture's modules not at all.
    loaded = _loaded_by("capture", "container", "--help")
    heavy = {"docker", "requests", "kubernetes", "ir.cli.capture_pod", "ir.cluster.capture"}
    assert not loaded & heavy, f"capture container imported {sorted(loaded & heavy)}"


def test_group_help_lists_every_subcommand() -> None:
    for group, names in (
        ("bundle", ("verify", "push", "pull", "diff", "custody")),
        ("capture", ("container", "pod")),
    ):
        probe = f"from ir.cli.main import main\nmain([{group!r}, '--help'])\n"
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
        for name in names:
            assert f"  {name} " in done.stdout, done.stdout
