"""The console's tables and header values, read from the Lab's store: one function per section.

Pure reads of immutable store values (`store.get_many` copies at one version); called by
`ConsoleHost.frame` at most once per section version, on whichever thread asks first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from tradelab.errors import InvalidInputError
from tradelab.market.chain import chain_greeks
from tradelab.market.instruments import IST, OptionUniverse
from tradelab.market.pricing import implied_vol
from tradelab.trading.risk_state import control_state

# The money first: on a laptop's half page the columns past ~650 px are scrolled to, so the
# ones read at a glance come before the ones read now and then.
POSITION_COLUMNS = [
    "symbol",
    "net_quantity",
    "average_price",
    "mark",
    "unrealized_pnl",
    "realized_pnl",
    "stop",  # the exit levels armed for it (trading.exits), blank when none
    "target",
    "trail",
    "fees",
    "strategy",
    "status",
]
ORDER_COLUMNS = [
    "order_id",
    "symbol",
    "side",
    "quantity",
    "filled_quantity",
    "order_type",
    "limit_price",
    "status",
    "strategy",
]
#: Every time the console shows is in IST (Asia/Kolkata, the exchange's zone), and says so: the
#: engine's stamp of an event (tape, header) and the market clock of a fill (exchange time,
#: simulated or replayed in a paper session).
TIME_COLUMN = "journal time (IST)"  # when the engine stamped the event (the wall clock)
EXCHANGE_TIME_COLUMN = "exchange time (IST)"
TRADE_COLUMNS = [
    EXCHANGE_TIME_COLUMN,
    "symbol",
    "side",
    "quantity",
    "price",
    "realized_pnl",
    "fee",
    "seq",
]
# One option's figures; greeks as a desk reads them: vega per vol point (1 %), theta per day.
OPTION_FIGURES = ["bid", "ask", "price", "iv %", "delta", "gamma", "vega/pt", "theta/day"]
# Decimals a desk reads each figure to (a chain of 17 columns has to fit a screen's width).
_CHAIN_DECIMALS = {"iv %": 2, "delta": 3, "gamma": 4, "vega/pt": 2, "theta/day": 2}
# The exchange's layout: calls left, strike in the middle, puts right, each side's bid and ask
# nearest the strike (bid before ask on both sides, the rest mirrored); `atm` is True on the
# strike nearest the spot (the console highlights that row and does not show the column).
CALL_COLUMNS = [f"CE {name}" for name in [*reversed(OPTION_FIGURES[2:]), "bid", "ask"]]
PUT_COLUMNS = [f"PE {name}" for name in OPTION_FIGURES]
CHAIN_COLUMNS = [*CALL_COLUMNS, "strike", *PUT_COLUMNS, "atm"]
_GREEK_SCALE = {"delta": 1.0, "gamma": 1.0, "vega": 0.01, "theta": 1 / 365}
CHAIN_RATE = 0.065  # the simulated feed's default risk-free rate; greeks shown are indicative


def chain_rate(lab: Any) -> float:
    """The rate the chain's implied vols and greeks are backed out at: the simulated market's
    own (`sim_feed.rate`; at another, calls and puts read a skew the market does not have),
    else `CHAIN_RATE`."""
    rate = getattr(getattr(getattr(lab, "feed", None), "config", None), "rate", None)
    return float(rate) if isinstance(rate, (int, float)) else CHAIN_RATE


_OPTIONS = OptionUniverse()


def ist_ms(ns: int) -> str:
    """Epoch nanoseconds as exchange time, HH:MM:SS.mmm (IST, Asia/Kolkata)."""
    return datetime.fromtimestamp(ns / 1e9, tz=IST).strftime("%H:%M:%S.%f")[:-3]


def ist_day_ms(ns: int) -> str:
    """`ist_ms` with its date first (YYYY-MM-DD HH:MM:SS.mmm, sorts as it reads): the book
    keeps the fills of several sessions, and one day's 09:20 must not read as another's."""
    return datetime.fromtimestamp(ns / 1e9, tz=IST).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def ist_day_minute(ns: int) -> str:
    """The market clock: day and minute, e.g. 'Tue 18 Nov 09:53' (IST)."""
    return datetime.fromtimestamp(ns / 1e9, tz=IST).strftime("%a %d %b %H:%M")


# The numeric columns' types when a table has no row yet: the console's table takes each
# column's format (alignment, thousands separators, decimals) from the first frame it shows,
# so an empty frame of untyped columns left a page opened before the first trade showing
# numbers as text ever after.
_EMPTY_TYPES = {
    **dict.fromkeys(("net_quantity", "quantity", "filled_quantity", "seq"), "int64"),
    **dict.fromkeys(
        ("average_price", "mark", "stop", "target", "trail", "unrealized_pnl", "realized_pnl")
        + ("fees", "limit_price", "price", "fee"),
        "float64",
    ),
}


# Prices under 1 (a coin's 0.0000216, a currency's) keep their significant digits: to the
# paisa they read 0.0, their stop too.
_PRICES = ("average_price", "mark", "stop", "target", "trail", "limit_price", "price")


def _shown_price(value: Any) -> Any:
    if isinstance(value, float) and value == value and abs(value) < 1:
        return float(f"{value:.6g}")
    return round(value, 2) if isinstance(value, float) else value


def _table(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    # Money to the paisa: float sums such as 836.2500000000005 read as noise on a screen.
    frame = pd.DataFrame(rows, columns=columns)
    prices = [c for c in _PRICES if c in frame.columns]
    shown = {c: frame[c].map(_shown_price, na_action="ignore") for c in prices}
    frame = frame.round(2).assign(**shown).reset_index(drop=True)
    if frame.empty:
        frame = frame.astype({c: t for c, t in _EMPTY_TYPES.items() if c in frame.columns})
    return frame


def positions(lab: Any) -> pd.DataFrame:
    _, values = lab.store.get_many(["trading.positions", "trading.exits"])
    exits = values["trading.exits"] or {}
    rows = []
    for pid, position in (values["trading.positions"] or {}).items():
        held = bool(position.get("net_quantity"))
        levels = exits.get(pid) if held else None
        row = {**position, **{k: (levels or {}).get(k) for k in ("stop", "target", "trail")}}
        refused = (levels or {}).get("refused")
        if refused:  # a level fired, its exit was refused (a halt): not an armed stop
            row["status"] = f"exit refused: {refused.split(' (')[0]}"
        if not held:  # a flat position is not marked any more: its last mark would read stale
            row["mark"] = None
        rows.append(row)
    # Open positions first, then the most recently changed.
    rows.sort(key=lambda p: (p.get("net_quantity") == 0, -(p.get("updated_ts") or 0)))
    return _table(rows, POSITION_COLUMNS)


def orders(lab: Any) -> pd.DataFrame:
    """The working orders (open at the broker), newest first."""
    store = lab.store
    _, values = store.get_many(["trading.orders", "trading.working"])
    all_orders = values["trading.orders"] or {}
    working = values["trading.working"] or {}
    rows = [all_orders[oid] for oid in working if oid in all_orders]
    rows.sort(key=lambda o: -(o.get("submitted_ts") or 0))
    return _table(rows, ORDER_COLUMNS)


def trades(lab: Any, limit: int = 200) -> pd.DataFrame:
    rows = sorted(
        (lab.store.get("trading.trades", None) or {}).values(), key=lambda t: -(t.get("seq") or 0)
    )[:limit]
    for row in rows:
        row[EXCHANGE_TIME_COLUMN] = ist_day_ms(row.get("ts", 0))
    return _table(rows, TRADE_COLUMNS)


def header(lab: Any) -> dict[str, Any]:
    """Runner, risk, engine, P&L, reconciliation, market session and broker health for the
    header."""
    _, v = lab.store.get_many(
        [
            "runner",
            "risk.control",
            "engine.status",
            "pnl",
            "reconciliation.last_run",
            "market.session",
            "broker.health",
            "runner.by_strategy",
        ]
    )
    runner = v["runner"] or {}
    strategies, failures = {}, {}
    if lab.runner is not None:
        strategies = {name: lab.runner.state_of(name) for name in lab.runner.strategies}
        failures = lab.runner.failures()
    # Who paused or stopped each held strategy, and why (an operator, or the strategy itself).
    records = v["runner.by_strategy"] or {}
    holds = {
        name: f"{state} by {r['who']}" + (f": {r['reason']}" if r.get("reason") else "")
        for name, state in strategies.items()
        if state in ("paused", "stopped") and (r := records.get(name) or {}).get("who")
    }
    return {
        "runner_status": runner.get("status", "stopped"),
        "strategies": strategies,
        "strategy_holds": holds,
        "strategy_failures": failures,
        "overflow_stopped": lab.runner.overflow_stopped if lab.runner is not None else None,
        "risk_state": control_state(lab.store),
        "risk_control": v["risk.control"] or {},
        "engine_status": v["engine.status"] or lab.engine.state,
        "pnl": v["pnl"] or {},
        "reconciliation": v["reconciliation.last_run"] or {},
        "market_session": v["market.session"] or {},
        "broker_health": v["broker.health"] or {},
    }


def bars(lab: Any, symbol: str | None = None) -> dict[str, pd.DataFrame]:
    """The charted instrument's closed bars per interval ('15m', '1h'), times in IST."""
    symbol = symbol or lab.chart_symbol
    out = {}
    for interval, rows in (lab.store.get(f"market.bars.{symbol}", None) or {}).items():
        frame = pd.DataFrame(list(rows), columns=["start", "end", "open", "high", "low", "close"])
        frame["start"] = pd.to_datetime(frame["start"], unit="ns", utc=True).dt.tz_convert(IST)
        frame["end"] = pd.to_datetime(frame["end"], unit="ns", utc=True).dt.tz_convert(IST)
        out[interval] = frame
    return out


def chain(lab: Any, strikes_each_side: int = 5) -> pd.DataFrame:
    """Quoted options of the nearest expiry around the ATM strike, one row a strike (calls |
    strike | puts), with implied vol and greeks from the marks; strikes with no quote on either
    side are left out."""
    marks = lab.store.get("market.marks", None) or {}
    spot = (marks.get("NIFTY") or {}).get("price")
    if not spot:
        return _table([], CHAIN_COLUMNS)
    atm = _OPTIONS.atm_strike(spot)
    step = 50 * strikes_each_side
    # The index's day: an expired contract's last marks stay in the store, and its expiry,
    # the earliest, would be the chain shown on every later day.
    today = datetime.fromtimestamp((marks["NIFTY"].get("ts") or 0) / 1e9, tz=IST).date()
    rows, rate = [], chain_rate(lab)
    for symbol, mark in marks.items():
        try:
            contract = _OPTIONS.parse(symbol)
        except InvalidInputError:
            continue
        if abs(contract.strike - atm) > step or not mark.get("price") or contract.expiry < today:
            continue
        at = datetime.fromtimestamp(mark["ts"] / 1e9, tz=IST)
        years = contract.years_to_expiry(at)
        try:
            iv = implied_vol(mark["price"], spot, contract.strike, years, rate, contract.is_call)
        except (InvalidInputError, ValueError, ZeroDivisionError):
            iv = float("nan")
        rows.append(
            {
                "expiry": contract.expiry,
                "strike": contract.strike,
                "type": "CE" if contract.is_call else "PE",
                "bid": mark.get("bid"),
                "ask": mark.get("ask"),
                "price": mark["price"],
                "iv": iv,
                "years": years,
            }
        )
    options = pd.DataFrame(
        rows, columns=["expiry", "strike", "type", "bid", "ask", "price", "iv", "years"]
    )
    if len(options):  # one expiry a chain: the nearest quoted (a feed may quote several)
        options = options[options["expiry"] == options["expiry"].min()].reset_index(drop=True)
    greeks = list(_GREEK_SCALE)
    for name in greeks:
        options[name] = np.nan
    ok = options["iv"].notna() & (options["iv"] > 0) & (options["years"] > 0)
    if ok.any():
        sub = options[ok]
        values = chain_greeks(
            spot, sub["strike"], sub["years"], rate, sub["iv"], sub["type"] == "CE"
        )
        for name, scale in _GREEK_SCALE.items():
            options.loc[ok, name] = getattr(values, name) * scale
    options["iv"] = options["iv"] * 100
    options = options.rename(columns={"iv": "iv %", "vega": "vega/pt", "theta": "theta/day"})
    options = options.round(_CHAIN_DECIMALS)
    sides = [
        options[options["type"] == kind].set_index("strike")[OPTION_FIGURES].add_prefix(f"{kind} ")
        for kind in ("CE", "PE")
    ]
    frame = sides[0].join(sides[1], how="outer").sort_index().reset_index()
    frame["atm"] = frame["strike"] == atm
    return frame[CHAIN_COLUMNS]


SIGNAL_COLUMNS = ["signal_id", EXCHANGE_TIME_COLUMN, TIME_COLUMN, "seq"]


def signals(lab: Any) -> pd.DataFrame:
    """The active signals (`signals.active`, from `signal.detected` until its `signal.cleared`),
    newest first: their id, the market clock of what the strategy saw (its payload's `ts`;
    blank without one), when they were journaled, then what each payload carries."""
    active = lab.store.get("signals.active", None) or {}
    rows = [
        {
            **{k: v for k, v in signal.items() if k not in ("detected_ts", "ts")},
            EXCHANGE_TIME_COLUMN: ist_day_ms(signal["ts"]) if signal.get("ts") else "",
            TIME_COLUMN: ist_ms(signal.get("detected_ts") or 0),
        }
        for signal in sorted(active.values(), key=lambda s: -(s.get("seq") or 0))
    ]
    extra = sorted({k for row in rows for k in row} - set(SIGNAL_COLUMNS))
    return pd.DataFrame(rows, columns=[*SIGNAL_COLUMNS, *extra])


def params_table(strategies: dict[str, Any]) -> pd.DataFrame:
    """Every strategy parameter with its value and doc, read-only (what viewers see)."""
    rows = []
    for name, strategy in strategies.items():
        for pname, parameter in strategy.param.objects("existing").items():
            if pname == "name":
                continue
            value = getattr(strategy, pname)
            rows.append(
                {"strategy": name, "parameter": pname, "value": str(value), "doc": parameter.doc}
            )
    return pd.DataFrame(rows, columns=["strategy", "parameter", "value", "doc"])


def journaled_params(lab: Any) -> dict[str, dict[str, Any]]:
    """Each strategy's current parameters as journaled (`runner.by_strategy.<name>.params`: its
    start's values with every change since); a strategy not started yet has none."""
    records = lab.store.get("runner.by_strategy", None) or {}
    return {name: dict(r["params"]) for name, r in records.items() if r.get("params")}


def build(section: str, lab: Any, config: Any) -> Any:
    """The value of one console section (see `SharedView` for the sections)."""
    if section == "positions":
        return positions(lab)
    if section == "orders":
        return orders(lab)
    if section == "trades":
        return trades(lab)
    if section == "header":
        return header(lab)
    if section == "bars":
        return bars(lab)
    if section == "marks":
        return chain(lab, config.chain_strikes)
    if section == "signals":
        return signals(lab)
    if section == "params":
        return params_table(lab.runner.strategies if lab.runner is not None else {})
    raise InvalidInputError(f"unknown console section {section!r}")
