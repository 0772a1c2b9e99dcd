"""Strategies and their runner: the Strategy API, StrategyRunner, PositionMonitor, the trade log,
example strategies, and backtests of a bar file through the same runner, broker and book."""

from tradelab.runner.backtest import BacktestResult, run_backtest
from tradelab.runner.context import StrategyContext
from tradelab.runner.examples import ShortStraddle, SmaCross
from tradelab.runner.instruments import InstrumentUniverse, PlainInstrument
from tradelab.runner.monitor import PositionMonitor
from tradelab.runner.runner import StrategyRunner
from tradelab.runner.strategy import Strategy
from tradelab.runner.strategy_names import STRATEGIES, make_strategy
from tradelab.runner.tradelog import TradeLog, export_trades_csv, trades_frame

__all__ = [
    "STRATEGIES",
    "BacktestResult",
    "InstrumentUniverse",
    "PlainInstrument",
    "PositionMonitor",
    "ShortStraddle",
    "SmaCross",
    "Strategy",
    "StrategyContext",
    "StrategyRunner",
    "TradeLog",
    "export_trades_csv",
    "make_strategy",
    "run_backtest",
    "trades_frame",
]
