"""`tradelab inspect` and `tradelab verify`: what a journal holds, and whether it is whole.

Exit codes and the one-line failure are the `tradelab` command's (cli.py).
"""

from __future__ import annotations

import os

import click

from tradelab.cli_options import config_option

_JOURNAL_PATH = click.Path(dir_okay=False, exists=True)
_JOURNAL_FROM_CONFIG = "its lab.journal_path is the journal when PATH is not given"


def _journal_of(path: str | None, config_file: str | None) -> str:
    """PATH as given, else the journal the settings name (`lab.journal_path`: the file's, or
    the default `tradelab run` and `serve` use)."""
    if path is not None:
        return path
    from tradelab.cli import EXIT_USAGE, exit_code_for, fail
    from tradelab.errors import TradelabError
    from tradelab.settings import load_settings

    try:
        journal = str(load_settings(config_file).lab.journal_path)
    except TradelabError as exc:
        fail(exc, exit_code_for(exc))
    if not os.path.isfile(journal):
        where = f"lab.journal_path of {config_file}" if config_file else "the default journal"
        fail(f"no journal at {journal!r} ({where}); give its PATH", EXIT_USAGE)
    return journal


@click.command("inspect")
@click.argument("path", type=_JOURNAL_PATH, required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@config_option(_JOURNAL_FROM_CONFIG)
def inspect_cmd(path: str | None, as_json: bool, config_file: str | None) -> None:
    """Counts by topic, seq range, snapshots and state hash of a journal (PATH, else the
    settings' lab.journal_path: data/lab.duckdb by default).

    DuckDB lets one process write a file or many read it, never both: while an engine runs on
    PATH this falls back to its sealed Parquet segments (events only, up to the last seal).
    It reads what a start reads; `verify` reads every block.
    """
    import json

    from tradelab.cli import EXIT_DAMAGED, exit_code_for, fail
    from tradelab.errors import JournalInUseError, TradelabError
    from tradelab.journal import JournalReader
    from tradelab.journal.verify import inspect_journal

    path = _journal_of(path, config_file)
    try:
        info = inspect_journal(path)
    except TradelabError as exc:
        if not isinstance(exc, JournalInUseError):
            fail(exc, exit_code_for(exc))
        try:
            reader = JournalReader(path)
            topics = reader.counts_by_topic()
        except TradelabError as exc2:
            fail(exc2, exit_code_for(exc2))
        info = {
            "path": path,
            "source": "segments",
            "note": reader.note,
            "events": sum(topics.values()),
            "last_seq": reader.last_seq(),
            "topics": topics,
        }
        click.echo(
            f"tradelab: note: journal {path} is in use by a running engine; read from its "
            "sealed segments",
            err=True,
        )
    damaged = _damage(info)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        if damaged:  # stdout stays one JSON object; the cause goes to stderr, as for text
            fail(_damaged_line(path, damaged), EXIT_DAMAGED)
        return
    click.echo(f"journal    {info['path']}")
    seqs = f"  seq {info.get('first_seq', 1)}..{info['last_seq']}" if info["events"] else ""
    click.echo(f"events     {info['events']}{seqs}")
    if info.get("note"):  # read from segments: up to which seq, or why nothing yet
        click.echo(f"note       {info['note']}")
    pending = info.get("ack_log_pending_events")
    if pending and not info.get("ack_log_damage"):  # refused, the next start commits nothing
        click.echo(
            f"ack log    {pending} acknowledged event(s) after seq {info['last_seq']}, not in "
            "DuckDB yet: the next engine start on this journal commits them"
        )
    mark, restored = info.get("tail_mark"), _restored_seq(info)
    if mark is not None and mark > restored:  # verify names the loss too (exit 1)
        click.echo(
            f"LOST       the high-water mark says seq {mark} was committed, but the journal "
            f"(with its ack log) ends at seq {restored}: events were lost (tradelab verify)"
        )
    for note in [*info.get("ack_log_covered_damage", []), info.get("ack_log_torn_tail")]:
        if note:
            click.echo(f"WARN       {note}")
    for problem in [*info.get("damage", []), *info.get("ack_log_damage", [])]:
        click.echo(f"DAMAGED    {problem.rstrip('.')}: the next start refuses the journal")
    for topic, count in info["topics"].items():
        click.echo(f"  {topic:28s} {count:>10}")
    rejected = {r["snapshot_id"]: r["reason"] for r in info.get("rejected_snapshots", [])}
    for snap in info.get("snapshots", []):
        why = rejected.get(snap["id"])
        click.echo(
            f"snapshot   {snap['id']:>4}  seq {snap['last_seq']:>10}  "
            f"sha256 {(snap['sha256'] or '-')[:16]}  {snap['size_bytes']} bytes"
            + (f"  REJECTED: {why}" if why else "")
        )
    if "state_hash" in info:
        click.echo(f"state hash {info['state_hash']}")
    if damaged:  # as verify: a journal inspect finds damaged exits 1 (README, exit codes)
        fail(_damaged_line(path, damaged), EXIT_DAMAGED)


def _damaged_line(path: str, damaged: list[str]) -> str:
    said = "; ".join(d.rstrip(".") for d in damaged)
    if said.startswith(f"journal {path} "):  # it names the journal itself
        return f"{said} (tradelab verify)"
    return f"journal {path} is damaged: {said} (tradelab verify)"


def _restored_seq(info: dict) -> int:
    """The last seq the next start holds: the file's, then the ack log's events it copies in
    (the high-water mark counts those too: they were committed before the file lost them)."""
    return info["last_seq"] + (info.get("ack_log_pending_events") or 0)


def _damage(info: dict) -> list[str]:
    """What inspect found damaged: the ack log, lost events, snapshots a start would skip."""
    found = [*info.get("damage", []), *info.get("ack_log_damage", [])]
    mark, restored = info.get("tail_mark"), _restored_seq(info)
    if mark is not None and mark > restored:
        found.append(f"events {restored + 1}..{mark} were committed and are gone")
    found += [
        f"snapshot {r['snapshot_id']} {r['reason']}" for r in info.get("rejected_snapshots", [])
    ]
    return found


@click.command("verify")
@click.argument("path", type=_JOURNAL_PATH, required=False)
@config_option(_JOURNAL_FROM_CONFIG)
def verify_cmd(path: str | None, config_file: str | None) -> None:
    """Check a journal (PATH, else the settings' lab.journal_path: data/lab.duckdb by default):
    contiguous seqs, tail mark, every snapshot's hash, replay == recovery.

    Exits 1 when a check fails or the file is too damaged to check, 3 when the journal cannot be
    opened (e.g. an engine is running on it: DuckDB allows no reader beside the writer; stop it,
    or read segments with JournalReader) or is not a tradelab journal.
    """
    from tradelab.cli import EXIT_DAMAGED, exit_code_for, fail
    from tradelab.errors import TradelabError
    from tradelab.journal.verify import verify_journal

    path = _journal_of(path, config_file)
    try:
        result = verify_journal(path)
    except TradelabError as exc:
        fail(f"cannot verify: {exc}", exit_code_for(exc))
    for line in result.lines:
        click.echo(line)
    click.echo(f"{'journal is whole' if result.ok else 'journal has problems'}: {path}")
    if not result.ok:
        raise SystemExit(EXIT_DAMAGED)
