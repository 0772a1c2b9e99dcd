from datetime import datetime

import pytest

from contracts.broker_contract import BrokerContract
from tradelab.broker import PaperBroker, PaperBrokerConfig
from tradelab.market.clock import SimulatedClock
from tradelab.market.instruments import IST


class TestPaperBrokerContract(BrokerContract):
    @pytest.fixture(autouse=True)
    def _account_dir(self, tmp_path):
        self.account_path = tmp_path / "paper.broker.sqlite"

    def make_broker(self):
        clock = SimulatedClock(int(datetime(2025, 11, 12, 10, 0, tzinfo=IST).timestamp()) * 10**9)
        return PaperBroker(
            PaperBrokerConfig(brokerage_per_fill=20.0),
            clock=clock,
            account_path=self.account_path,
        )

    def put_quote(self, broker, symbol, bid, ask, size):
        broker.set_quote(symbol, bid, ask, size)

    def restart_broker(self, broker):
        broker.close()
        return PaperBroker(broker.config, clock=broker.clock, account_path=self.account_path)


class TestInMemoryPaperBrokerContract(TestPaperBrokerContract):
    """Without an account file the broker forgets on restart: every test but those."""

    def make_broker(self):
        clock = SimulatedClock(int(datetime(2025, 11, 12, 10, 0, tzinfo=IST).timestamp()) * 10**9)
        return PaperBroker(PaperBrokerConfig(brokerage_per_fill=20.0), clock=clock)

    def restart_broker(self, broker):
        pytest.skip("an in-memory account does not outlive its broker")
