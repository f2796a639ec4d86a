"""What every replay page shares: the trust options (on `ir replay` and on each of its commands,
and on `ir bundle diff`), opening and verifying a bundle, the verdict banner around a text page,
the exit code a verdict gives, and the output file an --out option names. (The views' own
options, times and sizes included, are read in `ir.replay.views`.)"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import click

from ir.cli.bundle import TRUST_HELP, trust_from
from ir.cli.output import byte_progress, info, printable
from ir.errors import ExitCode
from ir.replay.evidence import Evidence
from ir.replay.trust import Trust, establish_trust
from ir.store import open_bundle


@dataclass
class ReplayOptions:
    """The trust options of one replay page (or of `ir bundle diff`)."""

    force: bool = False
    public_key: str | None = None
    reverify: bool = False
    endpoint: str | None = None
    details: bool = False  # the verdict's long form, not its one line

    def merge(self, other: ReplayOptions) -> ReplayOptions:
        """These options with `other` given later (flags add up; a later value wins)."""
        return ReplayOptions(
            self.force or other.force,
            other.public_key or self.public_key,
            self.reverify or other.reverify,
            other.endpoint or self.endpoint,
            self.details or other.details,
        )


@dataclass
class ReplaySession:
    """What the `replay` group parsed; the bundle is opened (and verified) by the subcommand,
    so `ir replay BUNDLE ps --help` touches nothing."""

    ref: str
    options: ReplayOptions


#: The keywords the trust options pass (`trust_options`), as `open_replay` takes them.
TRUST_KEYS = ("force", "public_key", "reverify", "endpoint", "verdict_details")


def replay_options(
    force: bool | None,
    public_key: str | None,
    reverify: bool | None,
    endpoint: str | None,
    verdict_details: bool | None,
) -> ReplayOptions:
    """The trust options as given to a command (a flag not given is None)."""
    return ReplayOptions(bool(force), public_key, bool(reverify), endpoint, bool(verdict_details))


def trust_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The same options on the group and on every subcommand: both spellings work."""
    for decorator in reversed(
        [
            click.option(
                "--force",
                is_flag=True,
                default=None,
                help="Show a bundle that failed verification (tampered/incomplete); every page says so.",
            ),
            click.option(
                "--trust",
                "--public-key",
                "public_key",
                metavar="FILE|DIR",
                default=None,
                help=TRUST_HELP,
            ),
            click.option(
                "--reverify",
                is_flag=True,
                default=None,
                help="Hash every artifact again, ignoring a cached verdict.",
            ),
            click.option(
                "--s3-endpoint-url",
                "endpoint",
                metavar="URL",
                default=None,
                help="S3-compatible endpoint (default $AWS_ENDPOINT_URL).",
            ),
            click.option(
                "--verdict-details",
                is_flag=True,
                default=None,
                help="The verification verdict in full (how it was reached, signature, custody "
                "chain) instead of its one line. `ir bundle verify` says even more.",
            ),
        ]
    ):
        f = decorator(f)
    return f


def open_replay(
    ctx: click.Context,
    force: bool | None,
    public_key: str | None,
    reverify: bool | None,
    endpoint: str | None,
    verdict_details: bool | None,
    *,
    announce: bool = True,
) -> tuple[Evidence, Trust]:
    """Open and verify the bundle of the running `ir replay BUNDLE ...`: the group's options
    merged with the command's (both spellings work)."""
    session: ReplaySession = ctx.find_object(ReplaySession)  # type: ignore[assignment]
    opts = session.options.merge(
        replay_options(force, public_key, reverify, endpoint, verdict_details)
    )
    return open_evidence(ctx, session.ref, opts, announce=announce)


def open_evidence(
    ctx: click.Context, ref: str, opts: ReplayOptions, *, announce: bool = True, name: str = ""
) -> tuple[Evidence, Trust]:
    """Open and verify a bundle. The verdict's one line goes to stderr first (its long form with
    --verdict-details) unless the page prints it itself (`announce` False); `name` tells two
    bundles apart (`ir bundle diff`: A, B)."""
    key = trust_from(opts.public_key)
    handle = (
        open_bundle(ref, endpoint_url=opts.endpoint)
        if ref.startswith("s3://")
        else open_bundle(ref)
    )
    ctx.call_on_close(handle.close)
    reader = handle.reader
    total = sum(a.stored_size for a in reader.manifest.artifacts) if reader.sealed else 0
    with byte_progress(total, "verifying") as advance:
        trust = establish_trust(
            handle, public_key=key, force=opts.force, use_cache=not opts.reverify, progress=advance
        )
    try:
        custody = handle.custody.read_lines()
    except Exception:  # noqa: BLE001 -- reported by establish_trust already
        custody = []
    evidence = Evidence(reader, display=handle.display, custody_lines=custody)
    if not trust.valid:
        info(click.style(f"ir: {trust.banner()}", fg="red", bold=True))
    elif announce:
        info(f"ir: {name + ': ' if name else ''}{trust.short()}")
    if opts.details:
        for line in trust.details():
            info(f"ir: {name + ': ' if name else ''}{printable(line)}")
    return evidence, trust


def exit_code_of(*trusts: Trust) -> int:
    """0 for a verified bundle; 1 when a bad one was shown with --force (scripts must not take
    forced output for good evidence)."""
    return int(ExitCode.OK if all(t.valid for t in trusts) else ExitCode.FAILED)


def print_banner(trust: Trust) -> None:
    """The banner of a bundle shown although it failed verification (nothing for a valid one)."""
    banner = trust.banner()
    if banner:
        bar = "!" * min(100, len(banner))
        click.echo(click.style(f"{bar}\n{printable(banner)}\n{bar}", fg="red", bold=True))


@contextlib.contextmanager
def page(trust: Trust, output: str) -> Iterator[None]:
    """Text pages carry the banner at the top and the bottom; machine formats carry the verdict
    in their data (and the banner went to stderr)."""
    text = output in ("text", "table")
    if text:
        print_banner(trust)
    yield
    sys.stdout.flush()  # rows were written to sys.stdout directly, banner goes after them
    if text:
        print_banner(trust)


def print_problems(ev: Evidence) -> None:
    """What could not be read in the bundle, on stderr."""
    for problem in ev.problems:
        click.echo(f"problem: {printable(problem)}", err=True)


def out_stream(path: str | None) -> contextlib.AbstractContextManager[IO[str]]:
    """The file an --out option names; stdout for none or '-'."""
    if path in (None, "-"):
        return contextlib.nullcontext(sys.stdout)
    return open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115


def print_banner_stderr(trust: Trust) -> None:
    """The banner on stderr, for commands whose stdout is data (fs cat, exports)."""
    banner = trust.banner()
    if banner:
        click.echo(click.style(printable(banner), fg="red", bold=True), err=True)
