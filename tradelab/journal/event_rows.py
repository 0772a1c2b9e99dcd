"""Reading the events table: Arrow batches of rows turned into Events (payloads decoded in one
call per batch), in seq order, a damaged row or block named as damage. Pure functions of a
DuckDB connection: any thread that owns it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import duckdb
import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from tradelab.errors import RecoveryError
from tradelab.events import Event

_decode_payloads = msgspec.json.Decoder(list[dict]).decode
# Small read batches: a batch's events die before the garbage collector's older generations
# fill up, which makes a 1M-event replay markedly faster than 50K-row batches (benchmarks/recovery.py).
READ_BATCH_ROWS = 2_048
_SELECT = "SELECT seq, ts, topic, key, critical, schema_version, payload FROM events"


def _payloads(column: pa.Array) -> list[dict[str, Any]]:
    """Decode a column of JSON payloads with one msgspec call: Arrow joins the texts into one
    JSON array in C, which costs far less than a decoder call per row. A NULL or malformed
    payload raises ValueError (the caller names the row)."""
    if not len(column):
        return []
    if column.null_count:
        raise ValueError("no payload")
    whole = pa.ListArray.from_arrays(pa.array([0, len(column)], pa.int32()), column)
    joined = pc.binary_join(whole, ",")[0].as_buffer()
    payloads = _decode_payloads(b"[" + joined.to_pybytes() + b"]")
    if len(payloads) != len(column):  # a row held more than one JSON object
        raise ValueError(f"{len(column)} payloads decoded as {len(payloads)} objects")
    return payloads


def _bad_payload(rows: pa.RecordBatch) -> RecoveryError:
    """The error naming the first event of `rows` whose payload is not one JSON object (read
    one row at a time: only after the whole batch failed to decode)."""
    seqs = rows.column("seq").to_pylist()
    topics = rows.column("topic").to_pylist()
    for seq, topic, text in zip(seqs, topics, rows.column("payload").to_pylist(), strict=True):
        try:
            if text is None:
                raise ValueError("it is NULL")
            msgspec.json.decode(text, type=dict)
        except (ValueError, msgspec.DecodeError, RecursionError) as exc:
            return RecoveryError(
                f"event seq {seq} ({topic}) has a damaged payload: {exc}; "
                "the journal was altered after it was written"
            )
    return RecoveryError(
        f"events seq {seqs[0]}..{seqs[-1]} have damaged payloads (rows run into each other)"
    )


def rows_to_events(rows: pa.RecordBatch | pa.Table) -> list[Event]:
    """Events of one Arrow record batch/table read from the events table (any column order);
    a NULL or malformed payload is a RecoveryError naming its seq."""
    if isinstance(rows, pa.Table):
        return [event for batch in rows.to_batches() for event in rows_to_events(batch)]
    column = rows.column
    try:
        payloads = _payloads(column("payload"))
    except (ValueError, msgspec.DecodeError, RecursionError):  # nested past the decoder
        raise _bad_payload(rows) from None
    return list(
        map(
            Event,
            column("seq").to_pylist(),
            column("ts").to_pylist(),
            column("topic").to_pylist(),
            column("key").to_pylist(),
            payloads,
            column("critical").to_pylist(),
            column("schema_version").to_pylist(),
        )
    )


def iter_event_batches(
    con: duckdb.DuckDBPyConnection,
    since_seq: int = 0,
    upto_seq: int | None = None,
    batch_rows: int = READ_BATCH_ROWS,
) -> Iterator[list[Event]]:
    """Events with since_seq < seq <= upto_seq in seq order, in lists of about `batch_rows`."""
    upto = upto_seq if upto_seq is not None else 2**62
    cur = con.cursor()
    try:
        # Rows come back in insertion order (= seq order, one writer); checked, and sorted
        # explicitly only if that ever fails.
        reader = cur.sql(f"{_SELECT} WHERE seq > ? AND seq <= ?", params=[since_seq, upto])
        expected = since_seq + 1
        for batch in _arrow_batches(reader, batch_rows):
            events = rows_to_events(batch)
            if events and (
                events[0].seq != expected or events[-1].seq != expected + len(events) - 1
            ):
                break
            expected += len(events)
            yield events
        else:
            return
        ordered = cur.sql(
            f"{_SELECT} WHERE seq >= ? AND seq <= ? ORDER BY seq", params=[expected, upto]
        )
        for batch in _arrow_batches(ordered, batch_rows):
            yield rows_to_events(batch)
    finally:
        cur.close()


def _arrow_batches(relation: duckdb.DuckDBPyRelation, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The relation's rows in Arrow batches. DuckDB's failure while producing a batch (a block
    that fails its checksum) reaches pyarrow, which raises it as an OSError: raised again as the
    duckdb.Error it is, so every reader names the journal as damaged, as for any other read."""
    batches = iter(relation.to_arrow_reader(batch_rows))
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (OSError, pa.ArrowException) as exc:
            raise duckdb.Error(str(exc)) from exc
        yield batch
