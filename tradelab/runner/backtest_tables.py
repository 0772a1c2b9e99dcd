"""A backtest's fills and round trips as display tables (text, with their times on the exchange's
clock and prices to the decimals they have), shared by the command's report and its page."""

from __future__ import annotations

import pandas as pd

from tradelab.market.instruments import IST
from tradelab.runner.backtest import BacktestResult


def is_daily(interval: str) -> bool:
    return interval.endswith(("d", "mo"))


def exchange_times(ns: pd.Series, interval: str) -> pd.Series:
    """Bar times on the exchange's clock (IST), as a bar file's times without an offset are
    read: a daily file's dates as written, intraday times to the minute."""
    stamps = pd.to_datetime(ns, unit="ns", utc=True).dt.tz_convert(IST)
    return stamps.dt.strftime("%Y-%m-%d" if is_daily(interval) else "%Y-%m-%d %H:%M")


def price_decimals(prices: pd.Series) -> int:
    """The fewest decimals (2 to 10) that show every price as it is: 2 for a stock in rupees, 5
    for EURUSD, 9 for a coin at 0.00002162 (a fill is at the file's price, never rounded)."""
    for decimals in range(2, 10):
        if ((prices.round(decimals) - prices).abs() <= 10.0 ** -(decimals + 3)).all():
            return decimals
    return 10


def _price_format(result: BacktestResult):
    if not result.fills:
        return "{:.2f}".format
    return f"{{:.{price_decimals(pd.DataFrame(result.fills)['price'])}f}}".format


def fills_table(result: BacktestResult) -> pd.DataFrame:
    """One row per fill: time (a date for daily bars), fill id, side, quantity, price, fee and
    the P&L it realized."""
    fills = pd.DataFrame(result.fills)
    price = _price_format(result)
    return pd.DataFrame(
        {
            "date" if is_daily(result.interval) else "time (IST)": exchange_times(
                fills["ts"], result.interval
            ),
            "fill": fills["trade_id"],
            "side": fills["side"],
            "quantity": fills["quantity"],
            "price": fills["price"].map(price),
            "fee": fills["fee"].map("{:.2f}".format),
            "realized": fills["realized_pnl"].map("{:,.2f}".format),
        }
    )


def round_trips_table(result: BacktestResult) -> pd.DataFrame:
    """One row per round trip: opened, closed, direction, quantity, entry, exit, net P&L."""
    trades = pd.DataFrame(result.trades)
    price = _price_format(result)
    return pd.DataFrame(
        {
            "opened": exchange_times(trades["opened_ts"], result.interval),
            "closed": exchange_times(trades["closed_ts"], result.interval),
            "direction": trades["direction"],
            "quantity": trades["quantity"],
            "entry": trades["entry_price"].map(price),
            "exit": trades["exit_price"].map(price),
            "net": trades["net_pnl"].map("{:,.2f}".format),
        }
    )
