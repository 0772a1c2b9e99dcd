"""Brokers: the `Broker` protocol every adapter implements and the simulated `PaperBroker`."""

from tradelab.broker.base import (
    Broker,
    BrokerDownError,
    BrokerUnavailableError,
    ConnectionListener,
    OrderListener,
)
from tradelab.broker.paper import PaperBroker, PaperBrokerConfig

__all__ = [
    "Broker",
    "BrokerDownError",
    "BrokerUnavailableError",
    "ConnectionListener",
    "OrderListener",
    "PaperBroker",
    "PaperBrokerConfig",
]
