"""The risk tests' session: a paper broker, desk, risk gate and loss monitor on a LocalKernel."""

from datetime import datetime

import pytest

from tests.contracts.local_kernel import LocalKernel
from tradelab.broker import PaperBroker, PaperBrokerConfig
from tradelab.errors import OrderDeniedError
from tradelab.market.clock import SimulatedClock
from tradelab.market.instruments import IST
from tradelab.trading.execution import ExecutionDesk
from tradelab.trading.risk import RiskConfig, RiskGate
from tradelab.trading.risk_monitor import DailyLossMonitor

SYM = "NIFTY25NOV24000CE"
PUT = "NIFTY25NOV24000PE"
OPEN_NS = int(datetime(2025, 11, 12, 10, tzinfo=IST).timestamp()) * 10**9


class Session:
    def __init__(self, **limits) -> None:
        self.kernel = LocalKernel()
        self.clock = SimulatedClock(OPEN_NS)  # the market's: the broker's and the gate's
        self.broker = PaperBroker(PaperBrokerConfig(), clock=self.clock)
        for symbol in (SYM, PUT):
            self.broker.set_quote(symbol, 100.0, 101.0, size=10_000)
            self.mark(symbol, 100.5)
        self.config = RiskConfig(**limits)
        self.gate = RiskGate(self.config, self.kernel.store, self.kernel.submit, clock=self.clock)
        self.desk = ExecutionDesk(self.broker, self.kernel.submit, risk=self.gate)
        self.monitor = DailyLossMonitor(
            self.config, self.kernel.store, self.kernel.submit, desk=self.desk
        )

    def mark(self, symbol: str, price: float) -> None:
        self.kernel.submit("mark.updated", {"symbol": symbol, "price": price}, key=symbol)

    def denied(self, *args, **kwargs) -> OrderDeniedError:
        sent = len(self.broker.fills_since(0)), self.broker.open_orders()
        with pytest.raises(OrderDeniedError) as info:
            self.desk.place_order(*args, **kwargs)
        assert (len(self.broker.fills_since(0)), self.broker.open_orders()) == sent
        event = self.kernel.events[-1]
        assert event.topic == "order.denied"
        assert event.payload["reason"] == str(info.value)
        assert event.payload["check"] == info.value.check
        assert self.kernel.store.get(f"trading.orders.{event.payload['order_id']}")["status"] == (
            "denied"
        )
        return info.value
