"""The in-process event bus: glob subscriptions, isolated handlers, history ring, metrics.

`EventBus` is the one public class; see tradelab/bus/core.py for its thread model.
`BusCollector(bus)` exports its metrics to a prometheus_client registry.
"""

from tradelab.bus.core import HANDLER_FAILED, EventBus
from tradelab.bus.metrics import BusCollector
from tradelab.bus.subscription import Handler, Subscription

__all__ = ["HANDLER_FAILED", "BusCollector", "EventBus", "Handler", "Subscription"]
