"""Fill prices of instruments quoted unlike NIFTY options: a currency pair to 5 decimals, a coin
far below one paisa. A backtest fills at the file's open as written; NIFTY options keep their
0.05 tick."""

import pytest
from click.testing import CliRunner

from tests.test_backtest import CLOSES, OPENS, write_bars
from tradelab.broker import PaperBroker, PaperBrokerConfig
from tradelab.cli import main as cli
from tradelab.errors import InvalidInputError
from tradelab.market.clock import SimulatedClock
from tradelab.runner import InstrumentUniverse, PlainInstrument, SmaCross
from tradelab.runner.backtest import run_backtest
from tradelab.trading.orders import OrderRequest, Side


def scaled(values, factor):
    return [round(v * factor, 9) for v in values]


@pytest.mark.parametrize("factor", [0.1234567, 0.0000021])
def test_a_backtest_fills_at_the_files_open_however_many_decimals_it_has(tmp_path, factor):
    # The hand-computed run of test_backtest on prices like EURUSD's (1.23457) and a coin's
    # (0.0000021): the same three fills at bars 4, 6 and 9's opens, P&L exact.
    opens, closes = scaled(OPENS, factor), scaled(CLOSES, factor)
    bars = write_bars(tmp_path / "XYZ.csv", closes=closes, opens=opens)
    result = run_backtest(bars, SmaCross(fast=2, slow=3, size=1000), cash=10_000)
    fills = [(f["side"], f["quantity"], f["price"]) for f in result.fills]
    assert fills == [("SELL", 1000, opens[4]), ("BUY", 2000, opens[6]), ("SELL", 2000, opens[9])]
    assert result.realized_pnl == pytest.approx(-6700 * factor)
    assert result.unrealized_pnl == pytest.approx(800 * factor)


def test_the_report_shows_prices_with_the_decimals_they_have(tmp_path):
    opens, closes = scaled(OPENS, 0.1234567), scaled(CLOSES, 0.1234567)
    bars = write_bars(tmp_path / "XYZ.csv", closes=closes, opens=opens)
    args = ["backtest", str(bars), "--strategy", "sma_cross", "--param", "fast=2"]
    out = CliRunner().invoke(cli, [*args, "--param", "slow=3"])
    assert out.exit_code == 0, (out.output, out.stderr)
    assert f"{opens[4]:.7f}" in out.stdout  # 1.0493820, not 1.05


def broker_of(instrument, **config):
    universe = InstrumentUniverse({instrument.symbol: instrument})
    config.setdefault("brokerage_per_fill", 0.0)
    config["enforce_market_hours"] = False
    return PaperBroker(PaperBrokerConfig(**config), universe=universe, clock=SimulatedClock(1))


def sell(broker, symbol, bid, qty=1):
    broker.set_quote(symbol, bid, bid * 1.01)
    return broker.submit_order(OrderRequest("o1", symbol, Side.SELL, qty)).average_price


def test_a_plain_instrument_fills_at_its_quote_or_rounds_to_its_own_tick():
    assert sell(broker_of(PlainInstrument("COIN")), "COIN", 0.0000216) == 0.0000216
    ticked = broker_of(PlainInstrument("FX", tick_size=0.0001), slippage_ticks=2)
    assert sell(ticked, "FX", 1.0812) == 1.081  # two ticks of 0.0001 below the bid
    # Slippage never takes a sell below one tick, nor one without a tick to nothing.
    deep = broker_of(PlainInstrument("FX", tick_size=0.0001), slippage_ticks=5)
    assert sell(deep, "FX", 0.0003) == 0.0001
    assert sell(broker_of(PlainInstrument("COIN"), slippage_ticks=1), "COIN", 0.00002) == 0.00002


def test_a_tick_size_that_is_no_price_step_is_refused_by_value():
    for bad in (-0.01, float("nan"), "0.05"):
        with pytest.raises(InvalidInputError, match=r"tick size .* of FX must be a finite number"):
            InstrumentUniverse({"FX": PlainInstrument("FX", tick_size=bad)})


def test_a_backtests_commission_is_charged_exactly_not_rounded_to_cents(tmp_path):
    bars = write_bars(tmp_path / "ABC.csv")
    result = run_backtest(bars, SmaCross(fast=2, slow=3, size=1), commission=0.0003)
    # 0.0003 of each fill's value: 8.5 x 1, 12 x 2, 8.8 x 2 (rounded per fill: 0.00, 0.01, 0.01).
    assert [f["fee"] for f in result.fills] == pytest.approx([0.00255, 0.0072, 0.00528])
    assert result.fees == pytest.approx(0.01503)


def buy(broker, symbol, ask, qty=1):
    broker.set_quote(symbol, ask * 0.99, ask)
    return broker.submit_order(OrderRequest("o2", symbol, Side.BUY, qty)).average_price


def test_an_instrument_without_a_tick_takes_no_slippage_either_way():
    # 0.05 a unit on a coin at 0.00002 was charged on buys only (sells cannot go below 0).
    coin = broker_of(PlainInstrument("COIN"), slippage_ticks=1)
    assert buy(coin, "COIN", 0.00002) == 0.00002
    assert sell(broker_of(PlainInstrument("COIN"), slippage_ticks=1), "COIN", 0.00002) == 0.00002
    fx = broker_of(PlainInstrument("FX", tick_size=0.0001), slippage_ticks=2)
    assert buy(fx, "FX", 1.0812) == 1.0814
