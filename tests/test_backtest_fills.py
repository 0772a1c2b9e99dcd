"""Backtest fills and P&L: option lots, short margin, daily bars, resting limits, strategies."""

import json

import param
import pytest

from tests.test_backtest import CLOSES, OPENS, write_bars, write_bars_from
from tradelab.journal import JournalReader
from tradelab.runner import Strategy
from tradelab.runner.backtest import run_backtest


def test_an_option_backtest_trades_whole_lots_as_a_session_does(tmp_path):
    from tradelab.runner import Strategy

    class OneLot(Strategy):
        strategy_name = "one_lot"
        quantity = param.Integer(default=75)

        def on_bar(self, ctx, bar):
            if not ctx.position(bar["symbol"]) and not ctx.working(bar["symbol"]):
                ctx.buy(bar["symbol"], self.quantity)

    option = "NIFTY25N1824000CE"
    lots = run_backtest("data/nifty_sample_1m.csv", OneLot(), symbol=option)
    assert lots.fills[0]["quantity"] == 75  # one lot of NIFTY, bought at the next open
    units = run_backtest("data/nifty_sample_1m.csv", OneLot(quantity=1), symbol=option)
    assert not units.fills and "not a multiple of lot size 75" in units.failed_strategies["one_lot"]


def test_a_stocks_short_margin_is_on_the_price_it_sells_at_not_a_later_high(tmp_path):
    from tradelab.runner import Strategy

    class ShortOnce(Strategy):
        strategy_name = "short_once"

        def on_bar(self, ctx, bar):
            if not ctx.position("GROW") and not ctx.working("GROW"):
                ctx.sell("GROW", 100)

    # 10 rising to 1000: margin on the file's high (100 x 1000 x 0.12 = 12,000) would refuse
    # the short that 5,000 of cash carries at today's price (100 x 10 x 0.12 = 120).
    path = tmp_path / "GROW.csv"
    closes = [10.0 * 1.05**i for i in range(100)] + [1000.0]
    write_bars_from(path, closes)
    result = run_backtest(path, ShortOnce(), cash=5_000)
    assert [(f["side"], f["quantity"]) for f in result.fills][:1] == [("SELL", 100)]


class BuyOnFirstBar(Strategy):
    def on_start(self, ctx):
        self.bought = False

    def on_bar(self, ctx, bar):
        if not self.bought:
            self.bought = True
            ctx.buy(bar["symbol"], 1)


def test_a_bars_close_counts_in_its_own_days_pnl_and_the_bar_length_is_the_smallest_gap(
    tmp_path,
):
    from tradelab.analytics import Analytics

    # 1-minute bars with minutes missing (an illiquid contract): the gaps are 1, 2, 3 minutes
    # and a night. Bought at 100 (the 15:28 open), the 15:29 close is 110: +10 on day one.
    rows = [
        ("2024-01-02 15:25", 100, 100),
        ("2024-01-02 15:26", 100, 100),
        ("2024-01-02 15:28", 100, 100),
        ("2024-01-02 15:29", 100, 110),
        ("2024-01-03 09:15", 110, 110),
        ("2024-01-03 09:17", 110, 110),
    ]
    path = tmp_path / "ABC.csv"
    path.write_text(
        "Date,Open,High,Low,Close\n"
        + "".join(f"{t},{o},{max(o, c)},{min(o, c)},{c}\n" for t, o, c in rows)
    )
    journal = tmp_path / "bt.duckdb"
    result = run_backtest(path, BuyOnFirstBar(), journal_path=journal)
    assert result.interval == "1m"
    assert [(f["side"], f["price"]) for f in result.fills] == [("BUY", 100.0)]
    bars = [e.payload for e in JournalReader(journal).events(topic="market.bar")]
    assert [b["end"] - b["start"] for b in bars] == [60_000_000_000] * len(rows)
    daily = Analytics(journal).sql("SELECT CAST(date AS VARCHAR) AS date, net FROM daily_pnl")
    assert dict(zip(daily.date, daily.net, strict=True)) == {
        "2024-01-02": 10.0,
        "2024-01-03": 0.0,
    }


def test_a_daily_bar_ends_on_its_own_date(tmp_path):
    path = tmp_path / "ABC.csv"
    write_bars_from(path, [10, 11, 12])
    journal = tmp_path / "bt.duckdb"
    result = run_backtest(path, BuyOnFirstBar(), journal_path=journal)
    assert result.interval == "1d"
    from tradelab.market.clock import ist_date

    for bar in (e.payload for e in JournalReader(journal).events(topic="market.bar")):
        assert ist_date(bar["end"]) == ist_date(bar["start"])


class SellAtLimit(Strategy):
    limit = param.Number(default=106.5)

    def on_start(self, ctx):
        self.step = 0

    def on_bar(self, ctx, bar):
        self.step += 1
        if self.step == 1:
            ctx.buy(bar["symbol"], 10)
        elif self.step == 2:
            ctx.sell(bar["symbol"], 10, order_type="LIMIT", limit_price=self.limit)


@pytest.mark.parametrize(
    ("limit", "filled_at"),
    [(106.5, 106.5), (105.5, 106.0)],  # passed between open and close; beaten by the open
    ids=["passed-inside-the-bar", "gapped-at-the-open"],
)
def test_a_resting_limit_fills_at_its_limit_when_the_bar_passes_it(tmp_path, limit, filled_at):
    path = tmp_path / "ABC.csv"
    path.write_text(
        "Date,Open,High,Low,Close\n"
        "2024-01-01,100,100,100,100\n"
        "2024-01-02,100,105,100,105\n"  # bought 10 at this open; the limit is placed at 105
        "2024-01-03,106,108,106,107\n"
        "2024-01-04,107,107,107,107\n"
    )
    result = run_backtest(path, SellAtLimit(limit=limit))
    assert [(f["side"], f["price"]) for f in result.fills] == [("BUY", 100.0), ("SELL", filled_at)]
    assert result.realized_pnl == pytest.approx(10 * (filled_at - 100.0))


class BuysOnce(Strategy):
    quantity = param.Integer(default=1)

    def on_start(self, ctx):
        self.done = False

    def on_bar(self, ctx, bar):
        if not self.done:
            self.done = True
            ctx.buy(bar["symbol"], self.quantity)


def test_open_positions_sum_every_strategys_units_in_a_symbol(tmp_path):
    # Positions are per strategy: the symbol's figure kept only the last strategy's units.
    bars = write_bars(tmp_path / "ABC.csv")
    result = run_backtest(bars, [BuysOnce(name="a", quantity=1), BuysOnce(name="b", quantity=2)])
    assert result.open_positions == {"ABC": 3}
    assert result.open_positions_by_strategy == {"a:ABC": 1, "b:ABC": 2}
    assert result.unrealized_pnl == pytest.approx(3 * (CLOSES[-1] - OPENS[1]))
    assert json.loads(json.dumps(result.to_dict()))["open_positions"] == {"ABC": 3}
