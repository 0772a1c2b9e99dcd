"""The bridge: a running engine's durable events over a websocket, and `connect()` replicas.

Server side: `bridge_routes(engine, authorize=...)` mounted beside the console's pages
(`pn.serve(..., extra_patterns=routes)`), or `BridgeServer` on a port of its own; `BridgeHub`
fans events out. Client side: `tradelab.connect(url)` → `Replica`. Protocol: protocol.py;
fault injection for tests and demos: faults.py.
"""

from tradelab.bridge.hub import BridgeHub
from tradelab.bridge.protocol import (
    PROTOCOL_VERSION,
    BridgeAddressError,
    BridgeAuthError,
    BridgeError,
    BridgeVersionError,
)
from tradelab.bridge.replica import Replica, connect
from tradelab.bridge.server import basic_authorizer, bridge_routes
from tradelab.bridge.standalone import BridgeServer

__all__ = [
    "PROTOCOL_VERSION",
    "BridgeAddressError",
    "BridgeAuthError",
    "BridgeError",
    "BridgeHub",
    "BridgeServer",
    "BridgeVersionError",
    "Replica",
    "basic_authorizer",
    "bridge_routes",
    "connect",
]
