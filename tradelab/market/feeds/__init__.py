"""Market data feeds: a seeded simulator and a bar-file replayer, both yielding `Tick`s."""

from tradelab.market.feeds.replay import ReplayFeed, ReplayFeedConfig, load_bars
from tradelab.market.feeds.simulated import SimulatedFeed, SimulatedFeedConfig

__all__ = ["ReplayFeed", "ReplayFeedConfig", "SimulatedFeed", "SimulatedFeedConfig", "load_bars"]
