"""Exit levels set again: a reversal starts the new side with none of the old side's levels,
and a new trailing distance moves the stop to it, looser or tighter."""

import param
import pytest

from tradelab.runner import Strategy
from tradelab.runner.backtest import run_backtest

# Daily bars of one stock: the monitor checks levels against each close.
BARS = (
    "Date,Open,High,Low,Close\n"
    "2024-01-01,100,101,99,100\n"
    "2024-01-02,102,104,101,103\n"
    "2024-01-03,104,106,103,105\n"
    "2024-01-04,106,107,104,105\n"
    "2024-01-05,107,109,106,108\n"
    "2024-01-08,110,111,108,109\n"
    "2024-01-09,108,109,100,101\n"
    "2024-01-10,100,102,99,101\n"
)


class ByBar(Strategy):
    """Counts the bars from 0 (`self.bar`) and hands each to `step`."""

    def on_start(self, ctx):
        self.bar = -1

    def on_bar(self, ctx, bar):
        self.bar += 1
        self.step(ctx, bar)

    def step(self, ctx, bar):
        raise NotImplementedError


class Reverses(ByBar):
    """Long 10 with a stop at 90; reversed to short 10 on bar 3, with only a target at 95."""

    def step(self, ctx, bar):
        if self.bar == 0:
            ctx.buy(bar["symbol"], 10)  # fills at 102
        elif self.bar == 3:
            ctx.target(bar["symbol"], -10)  # sells 20 at 107

    def on_fill(self, ctx, fill):
        held = ctx.position(fill["symbol"])
        if held > 0:
            ctx.set_exit(fill["symbol"], stop=90.0)
        elif held < 0 and not fill["order_id"].startswith("exit"):
            ctx.set_exit(fill["symbol"], target=95.0)
        self.levels = ctx.exit_levels(fill["symbol"])


def test_a_reversed_position_keeps_none_of_the_old_sides_levels(tmp_path):
    (tmp_path / "ABC.csv").write_text(BARS)
    strategy = Reverses()
    result = run_backtest(tmp_path / "ABC.csv", strategy)
    # The long's stop at 90 is under the short's price: kept, it would buy the short back.
    assert strategy.levels == {"stop": None, "target": 95.0, "trail": None, "best": None}
    assert [(f["side"], f["quantity"], f["price"]) for f in result.fills] == [
        ("BUY", 10, 102.0),
        ("SELL", 20, 107.0),
    ]
    assert result.open_positions == {"ABC": -10}


class Retrails(ByBar):
    """Long 10 with a 3-point trail; on bar 3 the trail is set to `wide`."""

    wide = param.Number(default=10.0)

    def step(self, ctx, bar):
        if self.bar == 0:
            ctx.buy(bar["symbol"], 10)
        elif self.bar == 3 and ctx.position(bar["symbol"]):
            ctx.set_exit(bar["symbol"], trail=self.wide)
            self.levels = ctx.exit_levels(bar["symbol"])

    def on_fill(self, ctx, fill):
        if ctx.position(fill["symbol"]) and not fill["order_id"].startswith("exit"):
            ctx.set_exit(fill["symbol"], trail=3.0)


def test_a_new_trailing_distance_moves_the_stop_to_it_from_the_best_price(tmp_path):
    (tmp_path / "ABC.csv").write_text(BARS)
    wider = Retrails(wide=10.0)
    result = run_backtest(tmp_path / "ABC.csv", wider)
    # Best 105 by bar 3: a 10-point trail stops at 95 (not the 102 of the 3-point one); the
    # best reaches 109 and the stop 99, which the closes of 101 never reach: still long.
    assert wider.levels["stop"] == 95.0
    assert [f["side"] for f in result.fills] == ["BUY"]
    tighter = Retrails(wide=1.0)
    result = run_backtest(tmp_path / "ABC.csv", tighter)
    assert tighter.levels["stop"] == 104.0
    assert [f["side"] for f in result.fills] == ["BUY", "SELL"]


class Bracket(ByBar):
    """Long 10 with a take-profit resting at 200 and a stop at 104: a bracket."""

    def step(self, ctx, bar):
        if self.bar == 0:
            ctx.buy(bar["symbol"], 10)  # fills at 102: cash 1000 -> -20

    def on_fill(self, ctx, fill):
        if ctx.position(fill["symbol"]) > 0:
            ctx.sell(fill["symbol"], 10, order_type="LIMIT", limit_price=200.0)
            ctx.set_exit(fill["symbol"], stop=104.0)


def test_a_stop_cancels_the_brackets_resting_target_before_its_exit(tmp_path):
    (tmp_path / "ABC.csv").write_text(BARS)
    result = run_backtest(tmp_path / "ABC.csv", Bracket(), cash=1000.0)
    # The close of 103 hits the stop: the target is cancelled (left, the broker would count
    # it against the exit, and it could fill later and open a short), the exit sells at the
    # next open, 104.
    assert [(f["side"], f["quantity"], f["price"]) for f in result.fills] == [
        ("BUY", 10, 102.0),
        ("SELL", 10, 104.0),
    ]
    assert result.open_positions == {} and result.unfilled_orders == []


# A short from 100; the price then runs against it.
RUN_UP = (
    "Date,Open,High,Low,Close\n"
    "2025-01-06 09:15,100,100,100,100\n"
    "2025-01-06 09:16,100,101,100,101\n"
    "2025-01-06 09:17,101,110,101,110\n"
    "2025-01-06 09:18,110,111,110,111\n"
    "2025-01-06 09:19,111,111,111,111\n"
)


class ShortTrailedLater(ByBar):
    """Short 1 (fills at 100); a 2-point trail armed on the next close (101)."""

    def step(self, ctx, bar):
        if self.bar == 0:
            ctx.sell(bar["symbol"], 1)
        elif self.bar == 1:
            ctx.set_exit(bar["symbol"], trail=2.0)
            self.levels = ctx.exit_levels(bar["symbol"])


def test_a_trail_armed_on_an_open_position_trails_from_the_price_then(tmp_path):
    # It used to start from the next price whichever way it went: the close of 110 became the
    # short's "best", and the 9-point move against it went unprotected.
    (tmp_path / "RUN.csv").write_text(RUN_UP)
    strategy = ShortTrailedLater()
    result = run_backtest(tmp_path / "RUN.csv", strategy)
    assert strategy.levels == {"stop": 103.0, "target": None, "trail": 2.0, "best": 101.0}
    # Stopped on the close of 110, bought back at the next open.
    assert [(f["side"], f["price"]) for f in result.fills] == [("SELL", 100.0), ("BUY", 110.0)]
    assert result.open_positions == {}


class LongTrailedOnFill(ByBar):
    """Long 1, a 2-point trail armed in on_fill; the bar of the fill closes at 90."""

    def step(self, ctx, bar):
        if self.bar == 0:
            ctx.buy(bar["symbol"], 1)

    def on_fill(self, ctx, fill):
        if fill["side"] == "BUY":
            ctx.set_exit(fill["symbol"], trail=2.0)
            self.levels = ctx.exit_levels(fill["symbol"])


def test_a_trail_armed_on_a_fill_trails_from_the_fill_price(tmp_path):
    (tmp_path / "DROP.csv").write_text(
        "Date,Open,High,Low,Close\n"
        "2025-01-06 09:15,100,100,100,100\n"
        "2025-01-06 09:16,100,100,90,90\n"
        "2025-01-06 09:17,89,89,89,89\n"
    )
    strategy = LongTrailedOnFill()
    result = run_backtest(tmp_path / "DROP.csv", strategy)
    assert strategy.levels["stop"] == 98.0 and strategy.levels["best"] == 100.0
    assert [(f["side"], f["price"]) for f in result.fills] == [("BUY", 100.0), ("SELL", 89.0)]


class StoppedAndSold(ByBar):
    """Long 1 with a stop at 99; on the close that hits it (98) the strategy sells 1 too, so
    both fill at the next open: the stop takes the long flat, the sell opens a short."""

    def step(self, ctx, bar):
        if self.bar == 0:
            ctx.buy(bar["symbol"], 1)
        elif self.bar == 1:
            ctx.set_exit(bar["symbol"], stop=99.0)
        elif self.bar == 3:
            ctx.sell(bar["symbol"], 1)


def test_a_stop_is_dropped_with_its_position_when_a_fill_on_the_same_quote_reverses(tmp_path):
    # The flat check read the store's position, which already held the second fill (-1): the
    # long's stop stayed armed and bought the new short back at 99.
    (tmp_path / "T.csv").write_text(
        "Date,Open,High,Low,Close\n"
        "2025-01-06 09:15,100,101,99,100\n"
        "2025-01-06 09:16,100,102,99,101\n"
        "2025-01-06 09:17,103,104,102,103\n"
        "2025-01-06 09:18,103,106,97,98\n"
        "2025-01-06 09:19,95,96,94,95\n"
        "2025-01-06 09:20,95,99,95,98\n"
        "2025-01-06 09:21,98,100,97,99\n"
        "2025-01-06 09:22,99,99,99,99\n"
    )
    result = run_backtest(tmp_path / "T.csv", StoppedAndSold())
    assert [(f["side"], f["price"]) for f in result.fills] == [
        ("BUY", 100.0),
        ("SELL", 95.0),
        ("SELL", 95.0),
    ]
    assert result.open_positions == {"T": -1}


class Replaces(ByBar):
    """A resting buy limit far below; two bars later cancel it and target 1 at market."""

    def on_start(self, ctx):
        super().on_start(ctx)
        self.seen = []

    def step(self, ctx, bar):
        symbol = bar["symbol"]
        if self.bar == 0:
            self.resting = ctx.buy(symbol, 1, order_type="LIMIT", limit_price=1.0)
        elif self.bar == 2:
            ctx.cancel(self.resting)
            self.seen.append(ctx.working(symbol))
            self.replaced = ctx.target(symbol, 1)


def test_a_cancel_and_a_target_in_one_hook_replace_the_order(tmp_path):
    # The cancelled order still counted as working until its report came: target() saw the
    # position already on its way and placed nothing.
    (tmp_path / "ABC.csv").write_text(BARS)
    strategy = Replaces()
    result = run_backtest(tmp_path / "ABC.csv", strategy)
    assert strategy.seen == [0] and strategy.replaced is not None
    assert [(f["side"], f["quantity"], f["price"]) for f in result.fills] == [("BUY", 1, 106.0)]


class ClosesThenShorts(ByBar):
    """Long 1; closes it on bar 2; on the closing fill, flat, sells 1 and arms its stop."""

    def step(self, ctx, bar):
        if self.bar == 0:
            ctx.buy(bar["symbol"], 1)
        elif self.bar == 2:
            ctx.close(bar["symbol"])

    def on_fill(self, ctx, fill):
        if fill["side"] == "SELL" and ctx.position(fill["symbol"]) == 0:
            ctx.sell(fill["symbol"], 1)
            ctx.set_exit(fill["symbol"], stop=105.0)


def test_levels_armed_on_a_flat_fill_for_the_next_position_are_kept(tmp_path):
    # The flat check ran after on_fill and dropped the stop armed there for the new short.
    closes = [100, 100, 101, 102, 103, 104, 110, 111, 112, 113]
    rows = [f"2025-01-06 09:{15 + i:02d},{p},{p},{p},{p}" for i, p in enumerate(closes)]
    (tmp_path / "A.csv").write_text("Date,Open,High,Low,Close\n" + "\n".join(rows) + "\n")
    result = run_backtest(tmp_path / "A.csv", ClosesThenShorts())
    # The short sold at 103 is stopped on the close of 110, bought back at the next open.
    assert [(f["side"], f["price"]) for f in result.fills] == [
        ("BUY", 100.0),
        ("SELL", 102.0),
        ("SELL", 103.0),
        ("BUY", 111.0),
    ]
    assert result.open_positions == {}


def test_a_restart_rearms_levels_set_while_the_entry_order_was_working():
    # Skipped as "not open" at the restart, then as "set before it opened" once it filled:
    # the stop armed with the entry was lost, while the console still showed it.
    from types import SimpleNamespace

    from tradelab.runner.monitor import PositionMonitor

    def levels(seq):
        return {"stop": 90.0, "target": None, "trail": None, "best": None, "seq": seq}

    state = {
        "trading.exits": {
            "s:ENTRY": levels(40),  # flat, its entry working: re-armed
            "s:IDLE": levels(40),  # flat, nothing working: nothing to protect
            "s:OLD": levels(10),  # held, but set before its last close at seq 20
            "s:NEW": levels(30),  # held, set after that close (before it opened at 35)
        },
        "trading.working": {"o1": {"strategy": "s", "symbol": "ENTRY"}},
        "trading.positions.s:ENTRY": {"net_quantity": 0},
        "trading.positions.s:OLD": {"net_quantity": 5, "opened_seq": 35, "closed_by_trade_id": "T"},
        "trading.positions.s:NEW": {"net_quantity": 5, "opened_seq": 35, "closed_by_trade_id": "T"},
        "trading.trades.T": {"seq": 20},
    }
    store = SimpleNamespace(get=lambda path, default=None: state.get(path, default))
    monitor = PositionMonitor(SimpleNamespace(engine=SimpleNamespace(store=store)))
    assert monitor.restore(store) == ["s:ENTRY", "s:NEW"]
    assert monitor.levels("s:ENTRY")["stop"] == 90.0 and monitor.levels("s:OLD") is None


# A coin priced in millionths: 2 % trailing stop on a long.
COIN = "Date,Open,High,Low,Close\n" + "".join(
    f"2024-01-{day:02d},{p},{p},{p},{p}\n"
    for day, p in zip(
        range(1, 9),
        [
            "0.0000216",
            "0.0000216",
            "0.0000220",
            "0.0000224",
            "0.0000210",
            "0.0000200",
            "0.0000200",
            "0.0000200",
        ],
        strict=True,
    )
)


class CoinTrail(ByBar):
    """Long 1000 at the second bar's open, a trail of 2 % of the entry armed on its fill."""

    def step(self, ctx, bar):
        if self.bar == 0:
            ctx.buy(bar["symbol"], 1000)

    def on_fill(self, ctx, fill):
        if ctx.position(fill["symbol"]) > 0:
            ctx.set_exit(fill["symbol"], trail=0.000000432)
            self.levels = ctx.exit_levels(fill["symbol"])


def test_a_trailing_stop_keeps_a_sub_cent_instruments_decimals(tmp_path):
    # Rounded to 4 decimals, the stop was 0.0: the long was never stopped, and its round trip
    # (rounded to 6) read entry = exit = 0.000022.
    (tmp_path / "COIN.csv").write_text(COIN)
    strategy = CoinTrail()
    result = run_backtest(tmp_path / "COIN.csv", strategy)
    assert strategy.levels["stop"] == 0.000021168  # 0.0000216 - 0.000000432, not 0.0
    # Best 0.0000224 on the 4th close: stop 0.000021968; the 5th close (0.0000210) is under it,
    # so the long is sold at the 6th bar's open.
    assert [(f["side"], f["price"]) for f in result.fills] == [
        ("BUY", 0.0000216),
        ("SELL", 0.00002),
    ]
    [trip] = result.trades
    assert (trip["entry_price"], trip["exit_price"]) == (0.0000216, 0.00002)
    assert trip["realized_pnl"] == -0.0016  # (0.00002 - 0.0000216) x 1000


class LongWithExit(ByBar):
    """Long 10 at 102 (bar 1's open), its exit levels set on the fill."""

    stop = param.Number(default=None, allow_None=True)
    target = param.Number(default=None, allow_None=True)
    trail = param.Number(default=None, allow_None=True)

    def step(self, ctx, bar):
        if self.bar == 0:
            ctx.buy(bar["symbol"], 10)

    def on_fill(self, ctx, fill):
        if fill["side"] == "BUY":
            ctx.set_exit(fill["symbol"], stop=self.stop, target=self.target, trail=self.trail)


@pytest.mark.parametrize("levels", [{"stop": 101.0}, {"target": 109.0}])
def test_a_close_exactly_at_a_level_exits(tmp_path, levels):
    # Round levels meet round closes: bar 6 closes at 101 (the stop), bar 5 at 109 (the
    # target, the highest close).
    (tmp_path / "ABC.csv").write_text(BARS)
    result = run_backtest(tmp_path / "ABC.csv", LongWithExit(**levels))
    assert [(f["side"], f["quantity"]) for f in result.fills] == [("BUY", 10), ("SELL", 10)]
    assert result.open_positions == {}


def test_a_trail_never_loosens_a_tighter_stop_set_with_it(tmp_path):
    # A 10-point trail from the best close (109) is 99: looser than the stop at 101.5, which
    # stays, so bar 6's close at 101 exits.
    (tmp_path / "ABC.csv").write_text(BARS)
    result = run_backtest(tmp_path / "ABC.csv", LongWithExit(stop=101.5, trail=10.0))
    assert [(f["side"], f["quantity"]) for f in result.fills] == [("BUY", 10), ("SELL", 10)]
