"""`ir replay BUNDLE ...`: the click commands of the offline views over a bundle (verified
first). Each view of `ir.replay.views` is one command, made here from its declaration (name,
help, options, page) and nothing else: it opens the bundle (`ir.cli.replayopts`), asks the view
for its page and prints it. Beside them, what is not a page: `fs cat` (a captured file's bytes)
and `export` (files). `ir bundle diff` is in `ir.cli.bundle_diff`."""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from ir.cli.output import echo_lines, emit_json, info, printable
from ir.cli.replayopts import (
    TRUST_KEYS,
    ReplayOptions,
    ReplaySession,
    exit_code_of,
    open_replay,
    out_stream,
    page,
    print_banner_stderr,
    print_problems,
    replay_options,
    trust_options,
)
from ir.errors import UsageError
from ir.replay.evidence import Evidence
from ir.replay.export import write_timesketch
from ir.replay.files import locate_file, stream_file
from ir.replay.report import write_report
from ir.replay.timeline import build_timeline
from ir.replay.trust import Trust
from ir.replay.views import Document, Option, Page, Text, View, views


class _ReplayGroup(click.Group):
    """Accepts the group's options after BUNDLE too (`ir replay B --force ps`): the options
    between BUNDLE and the subcommand name are moved in front of BUNDLE before parsing."""

    _VALUED = ("--trust", "--public-key", "--s3-endpoint-url")
    _FLAGS = ("--force", "--reverify", "--verdict-details", "-h", "--help")

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        options: list[str] = []
        positionals: list[str] = []
        i = 0
        while i < len(args) and len(positionals) < 2:
            token = args[i]
            if token in self._VALUED and i + 1 < len(args):
                options += [token, args[i + 1]]
                i += 2
                continue
            if token in self._FLAGS or token.startswith(tuple(f"{v}=" for v in self._VALUED)):
                options.append(token)
            else:
                positionals.append(token)
            i += 1
        return super().parse_args(ctx, options + positionals + args[i:])


@click.group("replay", cls=_ReplayGroup)
@click.argument("ref", metavar="BUNDLE")
@trust_options
@click.pass_context
def replay(
    ctx: click.Context,
    ref: str,
    force: bool | None,
    public_key: str | None,
    reverify: bool | None,
    endpoint: str | None,
    verdict_details: bool | None,
) -> None:
    """Offline views over a bundle (a path or s3:// URI): summary, ps, net, fs, logs, timeline,
    export.

    The bundle is verified first (every artifact's hashes, the root digest, signature, custody
    chain); a tampered or incomplete bundle is refused (exit 1) unless --force, and then every
    page says so. The verdict is cached per bundle id + digest in ~/.cache/ir/verified/ while the
    file's size and mtime are unchanged, so repeated views of a big bundle do not re-hash it.
    Each page starts with the verdict in one line (`verdict: valid (signed by KEY, intact;
    cached)`); --verdict-details gives its long form.

    \b
    Examples:
      ir replay evidence/INC-42/<id>.tar summary
      ir replay <id>.tar timeline --since 2025-03-14T09:00Z --source log,process -o csv
      ir replay <id>.tar fs --glob '/usr/bin/*' --change added
      ir replay <id>.tar fs cat /tmp/payload.sh
      ir replay <id>.tar export html --out report.html
    """
    ctx.obj = ReplaySession(
        ref, ReplayOptions(bool(force), public_key, bool(reverify), endpoint, bool(verdict_details))
    )


# -- the views: one command each, made from its declaration in ir.replay.views -----------------


def _click_option(option: Option) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The click option an `Option` declares."""
    attrs: dict[str, Any] = {"help": option.help}
    if option.metavar:
        attrs["metavar"] = option.metavar
    if option.choices:
        attrs["type"] = click.Choice(list(option.choices))
    if option.default is not None:
        attrs["default"] = option.default
    if option.show_default:
        attrs["show_default"] = True
    if option.multiple:
        attrs["multiple"] = True
    if option.flag:
        attrs.update(is_flag=True, default=None)
    return click.option(*[d for d in (option.short, option.spelling, option.name) if d], **attrs)


def _show(shown: Page, ev: Evidence, trust: Trust, output: str) -> None:
    """Print a view's page: a document as it is; text and a table between the banners of a
    bundle that failed verification; rows to their file, saying how many; then the notes and
    what could not be read."""
    if isinstance(shown, Document):
        emit_json(shown.content)  # the document carries the verification and the problems
        return
    if isinstance(shown, Text):
        with page(trust, output):
            echo_lines(shown.lines)
    else:
        started = time.monotonic()
        target = shown.out_path
        with out_stream(target) as out, page(trust, output if target is None else "file"):
            n = shown.write(out, info)
        if target:
            info(f"ir: wrote {n} rows to {target} in {time.monotonic() - started:.1f}s")
        for note in shown.notes():
            info(note)
    print_problems(ev)


def _view_command(view: View, subcommands: Sequence[click.Command] = ()) -> click.Command:
    """`ir replay BUNDLE <view>`: its options, then the trust options; a group when it has
    subcommands, which open the bundle themselves."""

    def run(ctx: click.Context, **values: Any) -> int | None:
        trust_opts = {key: values.pop(key) for key in TRUST_KEYS}
        if ctx.invoked_subcommand is not None:
            ctx.obj.options = ctx.obj.options.merge(replay_options(**trust_opts))
            return None
        output = values["output"]
        ev, trust = open_replay(ctx, **trust_opts, announce=output not in view.verdict_on_page)
        _show(view.page(ev, trust, **values), ev, trust, output)
        return exit_code_of(trust)

    callback = trust_options(click.pass_context(run))
    for option in reversed(view.options):
        callback = _click_option(option)(callback)
    if not subcommands:
        return replay.command(view.name, help=view.help)(callback)
    group = replay.group(view.name, help=view.help, invoke_without_command=True)(callback)
    for command in subcommands:
        group.add_command(command)
    return group


# -- what is not a page: kept as commands of their own ------------------------------------------

# `fs cat PATH` writes one captured file's bytes (escaped on a terminal, the banner on stderr),
# not a page of rows; it is a subcommand of the `fs` view.


@click.command("cat")
@click.argument("path")
@click.option(
    "--container", help="The container whose capture holds PATH (needed when several do)."
)
@click.option("--raw", is_flag=True, help="Write the bytes as they are, even to a terminal.")
@trust_options
@click.pass_context
def fs_cat_cmd(
    ctx: click.Context, path: str, container: str | None, raw: bool, **trust_opts: Any
) -> int:
    """Print a captured file's content, streamed from the capture's tar (nothing is extracted).

    On a terminal, control characters are escaped unless --raw; into a pipe, bytes go as they are."""
    ev, trust = open_replay(ctx, **trust_opts)
    located = locate_file(ev, path, container)
    if located.change is not None:
        digest = located.change.record.sha256
        where = f"ir: {printable(located.change.record.path)} from {located.tar_artifact}"
        info(where + (f" (sha256 {digest})" if digest else ""))
    elif located.note:
        info(f"ir: {printable(path)}: {printable(located.note)}, from {located.tar_artifact}")
    print_banner_stderr(trust)
    out = sys.stdout.buffer
    terminal = sys.stdout.isatty() and not raw
    for chunk in stream_file(ev, located, path):
        if terminal:
            text = chunk.decode("utf-8", "replace")
            out.write(
                "\n".join(printable(part) if part else "" for part in text.split("\n")).encode()
            )
        else:
            out.write(chunk)
    out.flush()
    return exit_code_of(trust)


# The commands hung under a view's (the view's own then runs only without one of them).
SUBCOMMANDS: dict[str, list[click.Command]] = {"fs": [fs_cat_cmd]}
# One command per view of ir.replay.views, each registered on `replay` as it is made.
VIEW_COMMANDS = [_view_command(view, SUBCOMMANDS.get(view.name, ())) for view in views()]

# `export` writes files, not pages: the whole timeline for Timesketch, a self-contained HTML
# report (hashed again for it, with the bundle file's own sha256); the banner goes to stderr.


@replay.group("export")
def export_grp() -> None:
    """Exports: Timesketch JSON Lines, a self-contained HTML report."""


@export_grp.command("timesketch")
@click.option(
    "--out",
    "out_path",
    metavar="FILE",
    default="-",
    show_default=True,
    help="Output file ('-': stdout).",
)
@trust_options
@click.pass_context
def export_timesketch(ctx: click.Context, out_path: str, **trust_opts: Any) -> int:
    """The whole timeline as Timesketch JSON Lines (message, datetime, timestamp_desc, timestamp
    and the source fields; every row carries bundle_id and bundle_verdict)."""
    ev, trust = open_replay(ctx, **trust_opts)
    with out_stream(out_path) as out:
        n = write_timesketch(
            build_timeline(ev),
            out,
            bundle_id=ev.manifest.bundle_id,
            case_id=ev.manifest.case_id,
            verdict=trust.overall,
        )
    if out_path != "-":
        info(f"ir: wrote {n} Timesketch events to {out_path}")
    print_banner_stderr(trust)
    print_problems(ev)
    return exit_code_of(trust)


@export_grp.command("html")
@click.option("--out", "out_path", metavar="FILE", required=True, help="The report file to write.")
@click.option(
    "--cached-verdict",
    is_flag=True,
    help="Use a cached verification verdict instead of hashing every artifact again (the report's "
    "header then says it was cached, and when).",
)
@trust_options
@click.pass_context
def export_html(ctx: click.Context, out_path: str, cached_verdict: bool, **trust_opts: Any) -> int:
    """A self-contained HTML report (no network needed to open it): summary, findings, timeline
    chart, process/network/file tables and the timeline rows. The bundle is hashed again for the
    report unless --cached-verdict."""
    if not cached_verdict:
        trust_opts["reverify"] = True
    ev, trust = open_replay(ctx, **trust_opts)
    target = Path(out_path)
    tmp = target.with_name(f".{target.name}.partial")
    local = Path(ctx.find_object(ReplaySession).ref)  # type: ignore[union-attr]
    file_sha256 = _file_sha256(local) if local.is_file() else None
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            counts = write_report(ev, trust, out, file_sha256=file_sha256)
        tmp.replace(target)
    except OSError as exc:
        raise UsageError(f"cannot write {out_path}: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)
    info(
        f"ir: wrote {out_path}: {counts['timeline_rows']} timeline rows ({counts['timeline_rows_in_table']} in the "
        f"table), {counts['findings']} findings"
    )
    print_banner_stderr(trust)
    print_problems(ev)
    return exit_code_of(trust)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


COMMANDS = [replay]
