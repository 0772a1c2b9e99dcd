from datetime import datetime

from contracts.broker_contract import BrokerContract
from tradelab.broker import PaperBroker, PaperBrokerConfig
from tradelab.market.clock import SimulatedClock
from tradelab.market.instruments import IST


class TestPaperBrokerContract(BrokerContract):
    def make_broker(self):
        clock = SimulatedClock(int(datetime(2025, 11, 12, 10, 0, tzinfo=IST).timestamp()) * 10**9)
        return PaperBroker(PaperBrokerConfig(brokerage_per_fill=20.0), clock=clock)

    def put_quote(self, broker, symbol, bid, ask, size):
        broker.set_quote(symbol, bid, ask, size)
