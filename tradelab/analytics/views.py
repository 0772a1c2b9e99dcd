"""The SQL views analytics defines over a journal's `events`: what each is, and its DuckDB SQL.

Every view is plain DuckDB SQL over `events` (JSON fields read from `payload`), except three
frames folded in Python with the book's own code (see analytics/book.py): `_fill_book`,
`_positions` and `_round_trips`. Times: `journal_time` is when the engine stamped the event;
`time` is the exchange clock (a payload's `ts`, the simulated or replayed market's time); both
are naive timestamps in India Standard Time. Pure definitions; `install` runs them on a connection.
"""

from __future__ import annotations

import duckdb
import msgspec
import pandas as pd

from tradelab.analytics.book import fold_fills
from tradelab.trading.reducers import ORDER_TOPICS

_ORDER_TOPICS = ", ".join(f"'{t}'" for t in ORDER_TOPICS)

MACROS = (
    # ns since the epoch -> naive IST timestamp (the exchange's wall clock)
    "CREATE MACRO ist(ns) AS make_timestamp(ns // 1000) + INTERVAL 330 MINUTE",
    "CREATE MACRO num(p, field) AS TRY_CAST(json_extract_string(p, '$.' || field) AS DOUBLE)",
    "CREATE MACRO int_of(p, field) AS TRY_CAST(json_extract_string(p, '$.' || field) AS BIGINT)",
    "CREATE MACRO txt(p, field) AS json_extract_string(p, '$.' || field)",
)

# (name, what one row is, SQL). Names starting with "_" are building blocks, not listed.
VIEWS: tuple[tuple[str, str, str], ...] = (
    (
        "events",
        "one journaled event (payload is its JSON text)",
        "SELECT seq, ts, ist(ts) AS journal_time, topic, key, critical, schema_version, "
        "payload, int_of(payload, 'ts') AS exchange_ts FROM _events",
    ),
    (
        "order_events",
        "one order lifecycle event (submitted, accepted, filled, ...), or a reconciliation "
        "fix adopting the broker's state of the order (reconciled)",
        f"""SELECT seq, ts, ist(ts) AS journal_time, split_part(topic, '.', 2) AS status,
            txt(payload, 'order_id') AS order_id, txt(payload, 'strategy') AS strategy,
            txt(payload, 'symbol') AS symbol, txt(payload, 'side') AS side,
            int_of(payload, 'quantity') AS quantity,
            int_of(payload, 'filled_quantity') AS filled_quantity,
            int_of(payload, 'remaining_quantity') AS remaining_quantity,
            -- no fill, no price: NULL, not the broker's 0.0 (an avg() over orders would count it)
            CASE WHEN coalesce(int_of(payload, 'filled_quantity'), 0) > 0
                 THEN num(payload, 'average_price') END AS average_price,
            txt(payload, 'reason') AS reason,
            txt(payload, 'broker_order_id') AS broker_order_id,
            CASE split_part(topic, '.', 2) WHEN 'submitted' THEN 0 WHEN 'accepted' THEN 1
                 WHEN 'partially_filled' THEN 2 ELSE 3 END AS stage, payload,
            FALSE AS reconciled
            FROM _events WHERE topic IN ({_ORDER_TOPICS})
            UNION ALL
            -- Adopted from the broker, as the store does (broker/reconcile/reducers.py): it
            -- overrides every report before it (stage 4), a later fix the earlier ones.
            SELECT seq, ts, ist(ts), txt(o, 'status'), txt(o, 'order_id'), txt(o, 'strategy'),
                txt(o, 'symbol'), txt(o, 'side'), int_of(o, 'quantity'),
                int_of(o, 'filled_quantity'), NULL,
                CASE WHEN coalesce(int_of(o, 'filled_quantity'), 0) > 0
                     THEN num(o, 'average_price') END,
                'reconciled: ' || coalesce(nullif(txt(o, 'reason'), ''), 'adopted the broker state'),
                txt(o, 'broker_order_id'), 4, payload, TRUE
            FROM (SELECT *, CAST(json_extract(payload, '$.order') AS VARCHAR) AS o FROM _events
                  WHERE topic = 'reconciliation.fixed'
                  AND json_extract(payload, '$.order') IS NOT NULL)""",
    ),
    (
        "orders",
        "one order: its request and where its life ended (the order reducer's rules)",
        """SELECT order_id,
            coalesce(arg_min(strategy, seq) FILTER (status = 'submitted'),
                     arg_min(strategy, seq)) AS strategy,
            arg_min(symbol, seq) AS symbol, arg_min(side, seq) AS side,
            arg_min(quantity, seq) AS quantity,
            coalesce(arg_min(txt(payload, 'order_type'), seq) FILTER (status = 'submitted'),
                     'MARKET') AS order_type,
            arg_min(num(payload, 'limit_price'), seq) FILTER (status = 'submitted')
                AS limit_price,
            -- A finished order is final (its first terminal report wins); before that the
            -- furthest stage, then the latest report; the broker's state a reconciliation
            -- adopted (stage 4) over all of them.
            arg_max(status, stage * 1e12 + CASE WHEN stage = 3 THEN -seq ELSE seq END) AS status,
            coalesce(arg_max(filled_quantity, seq) FILTER (stage = 4), max(filled_quantity), 0)
                AS filled_quantity,
            arg_max(average_price, seq) FILTER (average_price IS NOT NULL) AS average_price,
            arg_max(reason, stage * 1e12 + CASE WHEN stage = 3 THEN -seq ELSE seq END)
                AS reason,
            arg_max(broker_order_id, seq) FILTER (broker_order_id IS NOT NULL)
                AS broker_order_id,
            min(seq) AS first_seq, max(seq) AS last_seq,
            -- the journal clock (order.submitted carries no market time): named so
            min(journal_time) AS submitted_journal_time,
            count(*) AS events
            FROM order_events GROUP BY order_id""",
    ),
    (
        "fills",
        "one fill (trade.executed, or a trade a reconciliation fix adopted: reconciled) with "
        "the P&L it realized and the position after it",
        """SELECT e.seq, e.ts, coalesce(nullif(int_of(e.payload, 'ts'), 0), e.ts) AS exchange_ts,
            ist(coalesce(nullif(int_of(e.payload, 'ts'), 0), e.ts)) AS time,
            txt(e.payload, 'trade_id') AS trade_id, txt(e.payload, 'order_id') AS order_id,
            txt(e.payload, 'position_id') AS position_id,
            txt(e.payload, 'strategy') AS strategy, txt(e.payload, 'symbol') AS symbol,
            txt(e.payload, 'side') AS side, int_of(e.payload, 'quantity') AS quantity,
            CASE txt(e.payload, 'side') WHEN 'BUY' THEN 1 ELSE -1 END
                * int_of(e.payload, 'quantity') AS signed_quantity,
            num(e.payload, 'price') AS price, num(e.payload, 'fee') AS fee,
            int_of(e.payload, 'lot_size') AS lot_size, b.realized_pnl, b.position_after,
            b.average_price_after, b.position_realized_pnl, b.position_fees,
            e.topic = 'reconciliation.fixed' AS reconciled
            FROM _fill_events e JOIN _fill_book b USING (seq)""",
    ),
    (
        "trades",
        "one round trip (flat -> open -> flat) by the trade log's rules",
        """SELECT *, ist(opened_ts) AS opened_time, ist(closed_ts) AS closed_time,
            (closed_ts - opened_ts) / 60e9 AS holding_minutes FROM _round_trips""",
    ),
    (
        "positions",
        "a position after each of its fills: positions over time",
        "SELECT *, ist(exchange_ts) AS time FROM _positions",
    ),
    (
        "marks",
        "one journaled mark price (mark.updated, or a backtest's bar that marks at its close: "
        "time is the bar's end)",
        """SELECT seq, ts, coalesce(int_of(payload, 'ts'), ts) AS exchange_ts,
            ist(coalesce(int_of(payload, 'ts'), ts)) AS time, txt(payload, 'symbol') AS symbol,
            num(payload, 'price') AS price FROM _events WHERE topic = 'mark.updated'
            UNION ALL SELECT seq, ts, int_of(payload, 'end') AS exchange_ts,
            ist(int_of(payload, 'end')) AS time, txt(payload, 'symbol') AS symbol,
            num(payload, 'close') AS price FROM _events
            WHERE topic = 'market.bar' AND txt(payload, 'mark') = 'true'""",
    ),
    (
        "bars",
        "one closed OHLCV bar (market.bar); time is its start",
        """SELECT seq, txt(payload, 'symbol') AS symbol, txt(payload, 'interval') AS interval,
            int_of(payload, 'start') AS start_ts, int_of(payload, 'end') AS end_ts,
            ist(int_of(payload, 'start')) AS time, num(payload, 'open') AS open,
            num(payload, 'high') AS high, num(payload, 'low') AS low,
            num(payload, 'close') AS close, num(payload, 'volume') AS volume
            FROM _events WHERE topic = 'market.bar'""",
    ),
    (
        "_prices",
        "the latest price of a symbol: marks and fill prices",
        """SELECT seq, symbol, price, exchange_ts FROM marks
            UNION ALL SELECT seq, symbol, price, exchange_ts FROM fills""",
    ),
    (
        "_grid",
        "the points the equity curve is valued at",
        """SELECT seq, max(exchange_ts) AS exchange_ts FROM (
            SELECT seq, exchange_ts FROM fills
            -- bars closing together (every symbol's, every interval's): one point, after all
            UNION ALL SELECT max(seq), end_ts FROM bars GROUP BY end_ts
            -- no bar yet (a session stopped before its first bar closed): a point a market
            -- second, after all of its marks, as the live chart samples; a point a mark drew
            -- the book between two legs' re-marks
            UNION ALL SELECT max(seq), max(exchange_ts) FROM marks
                WHERE NOT EXISTS (SELECT 1 FROM bars) GROUP BY exchange_ts // 1000000000
            -- each day's latest price, when no bar of that day closed after it: the curve ends
            -- at the last news, and a day stopped between two bar closes ends where the book
            -- did (the next day's P&L counts from there, as the live book's reset does)
            -- (an IST day as a number: 05:30 ahead of UTC, so (ns + 19800 s) // one day)
            -- (a bar's own mark is never after its bar: marks and fills alone are read)
            UNION ALL SELECT d.seq, d.exchange_ts FROM (
                SELECT max(seq) AS seq, arg_max(exchange_ts, seq) AS exchange_ts,
                    (exchange_ts + 19800000000000) // 86400000000000 AS day
                FROM (SELECT seq, exchange_ts FROM fills UNION ALL
                    SELECT seq, coalesce(int_of(payload, 'ts'), ts) FROM _events
                    WHERE topic = 'mark.updated') GROUP BY day) d
                LEFT JOIN (SELECT (end_ts + 19800000000000) // 86400000000000 AS day,
                    max(seq) AS seq FROM bars GROUP BY day) b ON b.day = d.day
                WHERE d.seq > coalesce(b.seq, 0)
            ) GROUP BY seq""",
    ),
    (
        "equity",
        "book P&L after each fill and each bar: realized + unrealized - fees, and drawdown",
        """WITH held AS (SELECT DISTINCT position_id, symbol FROM _positions
                -- no position ever: one empty row, so the curve is flat at 0, not missing
                UNION ALL SELECT NULL, NULL WHERE NOT EXISTS (SELECT 1 FROM _positions)),
            at_point AS (
                SELECT g.seq, g.exchange_ts, h.position_id, h.symbol, p.net_quantity,
                       p.average_price, p.realized_pnl, p.fees
                FROM _grid g CROSS JOIN held h
                ASOF LEFT JOIN _positions p
                    ON p.position_id = h.position_id AND g.seq >= p.seq),
            -- Valued as the live book values it (trade_reducer): at the symbol's latest mark,
            -- a fill included (the spread paid shows at once); at its first fill's price while
            -- the symbol has no mark yet.
            first_fill AS (SELECT position_id, arg_min(price, seq) AS price FROM fills
                GROUP BY position_id),
            valued AS (
                SELECT a.*, coalesce(m.price, f.price) AS price FROM at_point a
                ASOF LEFT JOIN marks m ON m.symbol = a.symbol AND a.seq >= m.seq
                LEFT JOIN first_fill f ON f.position_id = a.position_id),
            totals AS (
                SELECT seq, any_value(exchange_ts) AS exchange_ts,
                    coalesce(sum(realized_pnl), 0) AS realized, coalesce(sum(fees), 0) AS fees,
                    coalesce(sum(CASE WHEN coalesce(net_quantity, 0) = 0 THEN 0
                        ELSE (price - average_price) * net_quantity END), 0) AS unrealized
                FROM valued GROUP BY seq)
            -- The peak starts at 0, the equity before anything traded: a curve whose first
            -- point is already a loss (a fill's fee) draws down from 0, not from there.
            SELECT seq, exchange_ts, ist(exchange_ts) AS time, realized, unrealized, fees,
                realized + unrealized - fees AS net,
                greatest(0, max(realized + unrealized - fees) OVER (ORDER BY seq)) AS peak,
                realized + unrealized - fees
                    - greatest(0, max(realized + unrealized - fees) OVER (ORDER BY seq))
                    AS drawdown
            FROM totals ORDER BY seq""",
    ),
    (
        "drawdown",
        "the equity curve's distance below its running peak",
        """SELECT seq, time, net, peak, drawdown,
            min(drawdown) OVER (ORDER BY seq) AS max_drawdown_so_far FROM equity""",
    ),
    (
        "daily_pnl",
        "one IST calendar day (NSE's trading day; a session of another zone, a US stock's, spans "
        "two): P&L from the close of the day before to its close",
        """WITH closes AS (
                SELECT CAST(time AS DATE) AS date, arg_max(net, seq) AS net_close,
                    arg_max(realized, seq) AS realized_close, arg_max(fees, seq) AS fees_close,
                    min(drawdown) AS worst_drawdown
                FROM equity GROUP BY 1),
            day_fills AS (SELECT CAST(time AS DATE) AS date, count(*) AS fills
                FROM fills GROUP BY 1)
            SELECT c.date,
                c.realized_close - coalesce(lag(c.realized_close) OVER w, 0) AS realized,
                c.fees_close - coalesce(lag(c.fees_close) OVER w, 0) AS fees,
                c.net_close - coalesce(lag(c.net_close) OVER w, 0) AS net,
                c.net_close AS cumulative_net, coalesce(f.fills, 0) AS fills, c.worst_drawdown
            FROM closes c LEFT JOIN day_fills f USING (date)
            WINDOW w AS (ORDER BY c.date) ORDER BY c.date""",
    ),
    (
        "reconciliation_mismatches",
        "one difference the reconciler found between the book and the broker",
        """SELECT seq, ist(ts) AS journal_time, txt(payload, 'kind') AS kind,
            txt(payload, 'item') AS item, json_extract(payload, '$.expected') AS expected,
            json_extract(payload, '$.actual') AS actual, txt(payload, 'policy') AS policy,
            txt(payload, 'action') AS action,
            TRY_CAST(txt(payload, 'dry_run') AS BOOLEAN) AS dry_run, payload
            FROM _events WHERE topic = 'reconciliation.mismatch'""",
    ),
    (
        "signals",
        "one strategy signal event: detected (with its details) or cleared",
        """SELECT seq, ts, int_of(payload, 'ts') AS exchange_ts,
            ist(int_of(payload, 'ts')) AS time, ist(ts) AS journal_time,
            split_part(topic, '.', 2) AS event,
            coalesce(nullif(key, ''), txt(payload, 'signal_id')) AS signal_id,
            txt(payload, 'strategy') AS strategy, txt(payload, 'name') AS name, payload
            FROM _events WHERE topic IN ('signal.detected', 'signal.cleared') ORDER BY seq""",
    ),
    (
        "risk_events",
        "one risk event: halts, resumes, loss breaches, limit changes, denied orders; who asked",
        """SELECT seq, ist(ts) AS journal_time, topic, critical,
            coalesce(txt(payload, 'reason'), '') AS reason, txt(payload, 'by') AS who,
            txt(payload, 'mode') AS mode, payload
            FROM _events WHERE topic LIKE 'risk.%' OR topic = 'order.denied'""",
    ),
    (
        "metrics_history",
        "one journaled sample of the engine's key figures (every LabConfig.metrics_sample_seconds)",
        """SELECT seq, ts, ist(ts) AS journal_time, int_of(payload, 'applied_seq') AS applied_seq,
            int_of(payload, 'durable_seq') AS durable_seq,
            num(payload, 'events_per_s') AS events_per_s,
            int_of(payload, 'queue_depth') AS queue_depth,
            num(payload, 'commit_p50_ms') AS commit_p50_ms,
            num(payload, 'commit_p99_ms') AS commit_p99_ms,
            num(payload, 'critical_ack_p99_ms') AS critical_ack_p99_ms,
            int_of(payload, 'sessions') AS sessions,
            num(payload, 'push_lag_ms_p99') AS push_lag_ms_p99, payload
            FROM _events WHERE topic = 'metrics.sampled' ORDER BY seq""",
    ),
    (
        "latency",
        "one order's latencies in ms of journal time: submit -> accepted / first fill / done",
        """WITH o AS (
                SELECT order_id, any_value(strategy) FILTER (status = 'submitted') AS strategy,
                    any_value(symbol) AS symbol,
                    min(ts) FILTER (status = 'submitted') AS submitted_ts,
                    min(ts) FILTER (status = 'accepted') AS accepted_ts,
                    min(ts) FILTER (stage >= 3) AS finished_ts,
                    coalesce(arg_max(status, seq) FILTER (stage = 4),
                             arg_min(status, seq) FILTER (stage = 3)) AS outcome
                FROM order_events GROUP BY order_id),
            f AS (SELECT order_id, min(ts) AS first_fill_ts, max(ts) AS last_fill_ts
                FROM fills GROUP BY order_id)
            SELECT o.order_id, o.strategy, o.symbol, o.outcome, ist(o.submitted_ts) AS
                journal_time,
                (o.accepted_ts - o.submitted_ts) / 1e6 AS accept_ms,
                (f.first_fill_ts - o.submitted_ts) / 1e6 AS first_fill_ms,
                -- done: finished and its last fill booked (the broker's order.filled is
                -- journaled just before the trade.executed it causes)
                (greatest(o.finished_ts, coalesce(f.last_fill_ts, o.finished_ts))
                    - o.submitted_ts) / 1e6 AS done_ms
            FROM o LEFT JOIN f USING (order_id) WHERE o.submitted_ts IS NOT NULL
            ORDER BY o.submitted_ts""",
    ),
)

PUBLIC_VIEWS = {name: what for name, what, _ in VIEWS if not name.startswith("_")}

# The book's fills: trade.executed, and the trades reconciliation fixes adopted (a missed fill,
# a position adjusted to the broker's), as the store folds both (broker/reconcile/reducers.py).
FILL_EVENTS = """SELECT seq, ts, topic, payload FROM _events WHERE topic = 'trade.executed'
    UNION ALL SELECT seq, ts, topic, CAST(json_extract(payload, '$.trade') AS VARCHAR) FROM _events
    WHERE topic = 'reconciliation.fixed' AND json_extract(payload, '$.trade') IS NOT NULL"""


def install(con: duckdb.DuckDBPyConnection) -> None:
    """Define the macros, the folded frames and every view on `con` (from `open_source`)."""
    for macro in MACROS:
        con.execute(macro)
    con.execute(f"CREATE VIEW _fill_events AS {FILL_EVENTS}")
    rows = con.execute("SELECT seq, ts, payload FROM _fill_events ORDER BY seq").fetchall()
    fills, booked = [], set()
    for seq, ts, payload in rows:
        fill = msgspec.json.decode(payload)
        if fill["trade_id"] not in booked:  # a fix replayed after a restart books nothing
            booked.add(fill["trade_id"])
            fills.append((seq, ts, fill))
    fill_book, positions, round_trips = fold_fills(fills)
    _register(con, "_fill_book", fill_book)
    _register(con, "_positions", positions)
    _register(con, "_round_trips", round_trips)
    for name, _, sql in VIEWS:
        con.execute(f"CREATE VIEW {name} AS {sql}")


def _register(con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame) -> None:
    # A table, not a registered frame: the frame's object columns would otherwise be scanned
    # from Python on every query that touches them.
    con.register("_frame", frame)
    con.execute(f"CREATE TABLE {name} AS SELECT * FROM _frame")
    con.unregister("_frame")
