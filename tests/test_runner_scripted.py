"""short_straddle and sma_cross on a scripted market, through a real Engine, broker and desk."""

from __future__ import annotations

import logging
from datetime import datetime

import pytest

from tradelab.broker import PaperBroker, PaperBrokerConfig
from tradelab.engine import Engine
from tradelab.market.clock import SimulatedClock
from tradelab.market.instruments import IST
from tradelab.market.ticks import Tick
from tradelab.runner import InstrumentUniverse, ShortStraddle, SmaCross
from tradelab.runner.runner import StrategyRunner
from tradelab.trading.execution import ExecutionDesk
from tradelab.trading.risk import RiskConfig, RiskGate

DAY = (2025, 11, 12)  # a Wednesday; the nearest weekly expiry is Tuesday 2025-11-18
CE, PE = "NIFTY25N1824000CE", "NIFTY25N1824000PE"
LOT = 75  # NIFTY lot size for that expiry


def at(hhmm: str) -> int:
    hour, minute = map(int, hhmm.split(":"))
    return int(datetime(*DAY, hour, minute, tzinfo=IST).timestamp()) * 1_000_000_000


def run_script(
    tmp_path, strategy, steps, *, universe=None, bar_symbol="NIFTY", risk=False, latency_ms=1
):
    """steps: [(time "HH:MM", {symbol: price or (price, quote size)}, the runner's clock if
    not that time)], or with `risk` [(..., action(risk_gate) run first)]; returns the
    order/trade events and the net positions."""
    universe = universe or InstrumentUniverse()
    clock = SimulatedClock(at(steps[0][0]))
    runner_clock = SimulatedClock(at(steps[0][0]))  # what strategies read as "now"
    broker = PaperBroker(
        PaperBrokerConfig(
            slippage_ticks=0,
            latency_ms=latency_ms,
            brokerage_per_fill=0.0,
            enforce_market_hours=False,
        ),
        universe=universe,
        clock=clock,
    )
    engine = Engine(journal_path=str(tmp_path / "j.duckdb"), writer_process=False).start()
    try:
        gate = RiskGate(RiskConfig(), engine.store, engine.submit) if risk else None
        desk = ExecutionDesk(broker, engine.submit, universe=universe, risk=gate)
        runner = StrategyRunner(engine, desk, clock=runner_clock, name="script")
        runner.add(strategy)
        runner.start(who="test")

        def play(i):
            hhmm, prices, clock_ns, *action = steps[i]
            if action and action[0] is not None:
                action[0](gate)
            ts = at(hhmm)
            clock.set(ts)
            sizes = {s: p[1] for s, p in prices.items() if isinstance(p, tuple)}
            prices = {s: p[0] if isinstance(p, tuple) else p for s, p in prices.items()}
            for symbol, price in prices.items():
                if symbol != bar_symbol or symbol in universe.instruments:
                    size = sizes.get(symbol, 10**9)
                    broker.on_quote(Tick(symbol, ts, price, price, price, size, size))
            for symbol, price in prices.items():
                engine.submit("mark.updated", {"symbol": symbol, "price": price, "ts": ts})
            runner_clock.set(ts if clock_ns is None else clock_ns)
            close = prices[bar_symbol]
            engine.submit(
                "market.bar",
                {
                    "symbol": bar_symbol,
                    "interval": "1m",
                    "start": ts - 60_000_000_000,
                    "end": ts,
                    "open": close,
                    "high": close,
                    "low": close,
                    "close": close,
                    "volume": 0,
                    "ticks": 0,
                },
                key=bar_symbol,
            )

        runner.drive(play, len(steps))
        runner.wait_for_bars(len(steps), timeout=60)  # generous: only catches a dead runner
        runner.stop(who="test")
        engine.flush()
        events = [
            e for e in engine.bus.history() if e.topic.startswith(("order.", "trade.", "signal."))
        ]
        positions = engine.store.get("trading.positions", None) or {}
    finally:
        engine.stop()
    return events, {p["symbol"]: p["net_quantity"] for p in positions.values()}


def fills(events):
    return [
        (e.payload["symbol"], e.payload["side"], e.payload["quantity"], e.payload["price"])
        for e in events
        if e.topic == "trade.executed"
    ]


def exits(events):
    return [
        (e.payload["position_id"], e.payload["reason"], e.payload["stop"])
        for e in events
        if e.topic == "trade.exit_updated"
    ]


def test_short_straddle_sells_atm_legs_at_entry_stops_one_leg_and_exits_the_other_on_time(
    tmp_path,
):
    steps = [
        ("09:15", {"NIFTY": 24010.0, CE: 150.0, PE: 140.0}, None),  # before entry_time
        ("09:20", {"NIFTY": 24010.0, CE: 150.0, PE: 140.0}, None),  # entry: ATM 24000
        ("09:21", {"NIFTY": 24000.0, CE: 152.0, PE: 138.0}, None),  # both legs fill here
        ("09:30", {"NIFTY": 24100.0, CE: 200.0, PE: 120.0}, None),  # CE >= 152 * 1.3 = 197.6
        ("09:31", {"NIFTY": 24110.0, CE: 205.0, PE: 118.0}, None),  # CE stop exit fills
        ("15:15", {"NIFTY": 24200.0, CE: 210.0, PE: 100.0}, None),  # time exit: PE only
        ("15:16", {"NIFTY": 24200.0, CE: 210.0, PE: 101.0}, None),  # PE exit fills
    ]
    strategy = ShortStraddle(entry_time="09:20", exit_time="15:15", stop_loss_pct=30.0)
    events, positions = run_script(tmp_path, strategy, steps)
    assert fills(events) == [
        (CE, "SELL", LOT, 152.0),
        (PE, "SELL", LOT, 138.0),
        (CE, "BUY", LOT, 205.0),
        (PE, "BUY", LOT, 101.0),
    ]
    assert exits(events) == [
        (f"short_straddle:{CE}", "set", 197.6),
        (f"short_straddle:{PE}", "set", 179.4),
        (f"short_straddle:{CE}", "exit_stop", 197.6),
    ]
    stop_exit = next(
        e.payload for e in events if e.topic == "order.submitted" and e.payload["side"] == "BUY"
    )
    assert stop_exit["order_id"].startswith("exit-") and stop_exit["strategy"] == "short_straddle"
    trades = {
        e.payload["symbol"]: e.payload["realized_pnl"] for e in events if e.topic == "trade.logged"
    }
    assert trades == {CE: pytest.approx(-(205 - 152) * LOT), PE: pytest.approx((138 - 101) * LOT)}
    assert positions == {CE: 0, PE: 0}
    # The straddle is the strategy's signal from its entry until the time exit.
    signals = [(e.topic, e.key, e.payload) for e in events if e.topic.startswith("signal.")]
    detected, cleared = signals
    assert detected[:2] == ("signal.detected", "short_straddle-straddle")
    assert {k: detected[2][k] for k in ("strike", "spot", "legs")} == {
        "strike": 24000,
        "spot": 24010.0,
        "legs": f"{CE} {PE}",
    }
    assert cleared[:2] == ("signal.cleared", "short_straddle-straddle")
    entry_seq = next(e.seq for e in events if e.topic == "signal.detected")
    time_exit = next(
        e.seq
        for e in events
        if e.topic == "order.submitted" and e.payload["symbol"] == PE and e.payload["side"] == "BUY"
    )
    clear_seq = next(e.seq for e in events if e.topic == "signal.cleared")
    assert entry_seq < clear_seq and clear_seq > time_exit


def test_time_exit_does_not_double_a_stop_exit_still_working(tmp_path):
    # The CE stop triggers on the mark of the same step whose bar is the time exit: the exit
    # order is working when the strategy closes its legs, so the CE is bought back once.
    steps = [
        ("09:20", {"NIFTY": 24010.0, CE: 150.0, PE: 140.0}, None),
        ("09:21", {"NIFTY": 24000.0, CE: 150.0, PE: 140.0}, None),
        ("15:15", {"NIFTY": 24200.0, CE: 200.0, PE: 100.0}, None),
        ("15:16", {"NIFTY": 24200.0, CE: 201.0, PE: 101.0}, None),
    ]
    events, positions = run_script(tmp_path, ShortStraddle(), steps)
    assert sorted(f for f in fills(events) if f[1] == "BUY") == [
        (CE, "BUY", LOT, 201.0),
        (PE, "BUY", LOT, 101.0),
    ]
    assert positions == {CE: 0, PE: 0}


def test_a_restarted_straddle_keeps_its_legs_stops_when_stop_loss_pct_changed(tmp_path):
    before = [
        ("09:20", {"NIFTY": 24010.0, CE: 150.0, PE: 140.0}, None),  # entry: ATM 24000
        ("09:21", {"NIFTY": 24000.0, CE: 152.0, PE: 138.0}, None),  # both legs fill here
    ]
    events, _ = run_script(tmp_path, ShortStraddle(stop_loss_pct=30.0), before)
    assert exits(events)[-2:] == [
        (f"short_straddle:{CE}", "set", 197.6),
        (f"short_straddle:{PE}", "set", 179.4),
    ]
    # Restarted with 80 %: the legs held keep the stops journaled (198 does not hit 273.6).
    after = [
        ("09:30", {"NIFTY": 24100.0, CE: 198.0, PE: 120.0}, None),
        ("09:31", {"NIFTY": 24110.0, CE: 199.0, PE: 118.0}, None),
    ]
    events, positions = run_script(tmp_path, ShortStraddle(stop_loss_pct=80.0), after)
    assert exits(events) == [(f"short_straddle:{CE}", "exit_stop", 197.6)]
    assert positions == {CE: 0, PE: -LOT}


def test_a_straddle_stopped_out_then_restarted_in_its_entry_window_sells_no_second_one(tmp_path):
    # "Entered today" lived only in the strategy: a restart at 09:23, both legs stopped out,
    # sold a second straddle (8 orders where an uninterrupted day makes 4).
    before = [
        ("09:20", {"NIFTY": 24010.0, CE: 150.0, PE: 140.0}, None),  # entry: ATM 24000
        ("09:21", {"NIFTY": 24000.0, CE: 152.0, PE: 138.0}, None),  # both legs fill here
        ("09:22", {"NIFTY": 24000.0, CE: 300.0, PE: 300.0}, None),  # both stops hit
        ("09:23", {"NIFTY": 24000.0, CE: 301.0, PE: 301.0}, None),
    ]
    events, positions = run_script(tmp_path, ShortStraddle(), before)
    assert positions == {CE: 0, PE: 0} and len(fills(events)) == 4
    after = [
        ("09:24", {"NIFTY": 24010.0, CE: 150.0, PE: 140.0}, None),  # still in the window
        ("09:25", {"NIFTY": 24000.0, CE: 151.0, PE: 141.0}, None),
    ]
    events, positions = run_script(tmp_path, ShortStraddle(), after)
    assert fills(events) == [] and positions == {CE: 0, PE: 0}


def test_straddle_times_its_entry_by_the_event_not_by_a_feed_clock_running_ahead(tmp_path):
    # The feed's clock already reads 15:20 when the 09:20 bar reaches the strategy.
    steps = [
        ("09:20", {"NIFTY": 24010.0, CE: 150.0, PE: 140.0}, at("15:20")),
        ("09:21", {"NIFTY": 24000.0, CE: 151.0, PE: 141.0}, at("15:21")),
    ]
    events, positions = run_script(tmp_path, ShortStraddle(), steps)
    assert fills(events) == [(CE, "SELL", LOT, 151.0), (PE, "SELL", LOT, 141.0)]
    assert positions == {CE: -LOT, PE: -LOT}


def test_sma_cross_restarted_on_a_session_that_ended_does_not_say_it_never_had_its_bars(
    tmp_path, caplog
):
    # A restart of a finished replay gets no bar, though the strategy traded on hundreds.
    steps = [(f"10:{i:02d}", {"NIFTY": 100.0 + (i % 4)}, None) for i in range(6)]
    run_script(tmp_path, SmaCross(fast=2, slow=3), steps)
    engine = Engine(journal_path=str(tmp_path / "j.duckdb"), writer_process=False).start()
    try:
        broker = PaperBroker(PaperBrokerConfig(enforce_market_hours=False), clock=SimulatedClock(0))
        runner = StrategyRunner(engine, ExecutionDesk(broker, engine.submit), name="again")
        runner.add(SmaCross(fast=2, slow=3))
        with caplog.at_level(logging.WARNING, logger="tradelab"):
            runner.start(who="test")
            runner.stop(who="test")
    finally:
        engine.stop()
    assert "never had the 3 bars" not in caplog.text


class StraddleCancelled(ShortStraddle):
    """Its entries are cancelled before they fill (as a flatten or a halt cancels them)."""

    strategy_name = "short_straddle"

    def _enter(self, ctx, day, spot):
        super()._enter(ctx, day, spot)
        for order_id in list(ctx._working):
            ctx.cancel(order_id)


def test_a_straddle_whose_entries_were_cancelled_is_no_more_a_signal(tmp_path):
    # The console showed the straddle as active, with no leg held, until the 15:15 exit.
    steps = [
        ("09:20", {"NIFTY": 24010.0, CE: 150.0, PE: 140.0}, None),  # entry, then cancelled
        ("09:21", {"NIFTY": 24000.0, CE: 152.0, PE: 138.0}, None),
    ]
    events, positions = run_script(tmp_path, StraddleCancelled(entry_time="09:20"), steps)
    assert fills(events) == [] and positions == {}
    signals = [e.topic for e in events if e.topic.startswith("signal.")]
    assert signals == ["signal.detected", "signal.cleared"]


def test_a_straddle_whose_second_leg_is_refused_takes_the_first_back(tmp_path):
    # The call stayed sold all day, a naked short, with only a warning.
    steps = [
        ("09:20", {"NIFTY": 24010.0, CE: 150.0}, None),  # no put quote: the put is refused
        ("09:21", {"NIFTY": 24000.0, CE: 152.0}, None),
    ]
    events, positions = run_script(tmp_path, ShortStraddle(entry_time="09:20"), steps)
    assert fills(events) == [] and not any(positions.values())
    topics = [(e.topic, e.payload["symbol"]) for e in events if e.topic.startswith("order.")]
    assert ("order.rejected", PE) in topics and ("order.cancelled", CE) in topics
    assert not [e for e in events if e.topic == "signal.detected"]


def test_a_straddle_whose_second_leg_is_refused_buys_back_what_the_first_sold(tmp_path):
    # The call filled one lot of two on a thin bid before the put was refused: the other was
    # cancelled and the lot sold stayed sold all day, with no stop and no time exit.
    steps = [
        ("09:20", {"NIFTY": 24010.0, CE: (150.0, 75)}, None),  # no put quote: refused
        ("09:21", {"NIFTY": 24000.0, CE: 152.0}, None),
    ]
    strategy = ShortStraddle(entry_time="09:20", lots=2)
    events, positions = run_script(tmp_path, strategy, steps, latency_ms=0)
    assert [(side, quantity) for _, side, quantity, _ in fills(events)] == [
        ("SELL", 75),
        ("BUY", 75),
    ]
    assert not any(positions.values())


def test_short_straddle_times_outside_the_session_are_refused():
    from tradelab.errors import InvalidInputError

    for times in ({"exit_time": "15:30"}, {"exit_time": "23:00"}, {"entry_time": "09:00"}):
        with pytest.raises(InvalidInputError, match="must fall in the session, 09:15 to before"):
            ShortStraddle(**times)
    assert ShortStraddle(exit_time="15:29").exit_time == "15:29"


def test_a_legs_stop_is_taken_from_its_average_entry_premium():
    # A leg filled in parts armed its stop from the last part's price alone.
    from types import SimpleNamespace

    strategy = ShortStraddle(stop_loss_pct=30.0)
    strategy._legs = [CE]
    armed = {}
    position = {"average_price": 168.25, "net_quantity": -1350}
    ctx = SimpleNamespace(
        position=lambda symbol: -1350,
        store=SimpleNamespace(get=lambda path, default=None: position),
        set_exit=lambda symbol, stop: armed.update({symbol: stop}),
    )
    strategy.on_fill(ctx, {"symbol": CE, "side": "SELL", "price": 163.9})
    assert armed == {CE: round(168.25 * 1.3, 2)}
