"""`ir bundle diff A B`: what differs between two bundles of the same workload (the comparison
is `ir.replay.diff`, its text and JSON `ir.replay.render.diff`); both bundles are opened and
verified as a replay page opens one (`ir.cli.replayopts`). Not a view of `ir.replay.views`,
whose page is of one bundle (`ir replay BUNDLE <view>`): this command opens two, so it keeps
its own."""

from __future__ import annotations

import click

from ir.cli.bundle import bundle
from ir.cli.output import echo_lines, emit_json, printable
from ir.cli.replayopts import (
    ReplayOptions,
    exit_code_of,
    open_evidence,
    print_banner,
    trust_options,
)
from ir.replay.diff import diff_connections, diff_files, diff_processes
from ir.replay.render.diff import diff_document, diff_lines


@bundle.command("diff")
@click.argument("ref_a", metavar="A")
@click.argument("ref_b", metavar="B")
@trust_options
@click.option(
    "-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.pass_context
def diff_cmd(
    ctx: click.Context,
    ref_a: str,
    ref_b: str,
    output: str,
    force: bool | None,
    public_key: str | None,
    reverify: bool | None,
    endpoint: str | None,
    verdict_details: bool | None,
) -> int:
    """What differs between two bundles of the same workload (e.g. the suspect pod and its clean
    replacement): files, processes (by executable + command line), connections and listeners.

    Both are verified first (refused unless valid, or --force). "-" lines are only in A, "+"
    only in B, "~" in both but different."""
    opts = ReplayOptions(bool(force), public_key, bool(reverify), endpoint, bool(verdict_details))
    a, trust_a = open_evidence(ctx, ref_a, opts, name="A")
    b, trust_b = open_evidence(ctx, ref_b, opts, name="B")
    processes = diff_processes(a, b)
    connections = diff_connections(a, b)
    if output == "json":
        emit_json(diff_document(a, trust_a, b, trust_b, diff_files(a, b), processes, connections))
        return exit_code_of(trust_a, trust_b)
    for trust in (trust_a, trust_b):
        print_banner(trust)
    echo_lines(diff_lines(a, b, diff_files(a, b), processes, connections))
    for trust in (trust_a, trust_b):
        print_banner(trust)
    for problem in a.problems + b.problems:
        click.echo(f"problem: {printable(problem)}", err=True)
    return exit_code_of(trust_a, trust_b)
