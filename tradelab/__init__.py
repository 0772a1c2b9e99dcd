"""tradelab: a notebook-first live trading state engine.

Every change of state is an `Event` on an `EventBus`, journaled to DuckDB; the `StateStore` is the
fold of that journal. Import the pieces you need; nothing here starts threads or opens files.
"""

from tradelab.collector import tune_collector
from tradelab.errors import TradelabError
from tradelab.events import DEFAULT_TOPICS, Event, TopicRegistry, TopicSpec

__all__ = [
    "DEFAULT_TOPICS",
    "Event",
    "TopicRegistry",
    "TopicSpec",
    "TradelabError",
    "connect",
    "tune_collector",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    # `tradelab.connect` imports the bridge (tornado, the store) only when first used, so
    # `import tradelab` stays cheap.
    if name == "connect":
        from tradelab.bridge import connect

        return connect
    raise AttributeError(f"module 'tradelab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})  # tab completion offers `connect` too
