"""The bridge's wire protocol: versioned JSON messages between a console and its replicas.

Client → server: `Hello` (once, first), `ResyncRequest` (after it saw a gap). Server → client:
`Welcome`, then `Snapshot` and/or `Events` frames, `Error` before it closes. Every message is one
binary websocket frame of JSON tagged by its `type`. Pure data; no threads.
"""

from __future__ import annotations

import struct

import msgspec

from tradelab.errors import TradelabError
from tradelab.events import Event

PROTOCOL_VERSION = 1


class BridgeError(TradelabError):
    """The bridge cannot do what was asked: a protocol violation, a refused or lost connection."""


class BridgeAuthError(BridgeError):
    """The server refused the replica's credentials (HTTP 401 / 403)."""


class BridgeAddressError(BridgeError):
    """Nothing serves the bridge at the address (HTTP 404 before the first sync)."""


class BridgeVersionError(BridgeError):
    """The server speaks another protocol version than this replica."""


class Hello(msgspec.Struct, tag="hello", tag_field="type"):
    """First client message: the protocol it speaks and where its replica stands.

    `epoch` and `last_seq` are those of a replica resuming after a dropped connection; None for
    a new replica. The server resumes only within its own epoch, else it sends a snapshot.
    """

    version: int
    epoch: str | None = None
    last_seq: int | None = None


class ResyncRequest(msgspec.Struct, tag="resync", tag_field="type"):
    """The client asks for a fresh snapshot (it saw a gap it cannot close)."""

    reason: str = ""


class Welcome(msgspec.Struct, tag="welcome", tag_field="type"):
    """The server's answer to `Hello`: its epoch and whether it resumes or sends a snapshot."""

    version: int
    epoch: str
    schema_version: int
    durable_seq: int
    resume: bool
    topics: tuple[str, ...] = ()  # the engine's durable topics: all a replica is ever sent


class Snapshot(msgspec.Struct, tag="snapshot", tag_field="type"):
    """The whole state after `seq` (durable): `state` holds `StateSnapshot.to_bytes()` as is."""

    seq: int
    reason: str
    state: msgspec.Raw


class Events(msgspec.Struct, tag="events", tag_field="type"):
    """Consecutive durable events, in seq order."""

    events: list[Event]


class Error(msgspec.Struct, tag="error", tag_field="type"):
    """Why the server is closing the connection."""

    message: str


ClientMessage = Hello | ResyncRequest
ServerMessage = Welcome | Snapshot | Events | Error

_client_decoder = msgspec.json.Decoder(ClientMessage)
_server_decoder = msgspec.json.Decoder(ServerMessage)
encode = msgspec.json.Encoder().encode
EVENTS_HEAD = b'{"type":"events","events":['
EVENTS_TAIL = b"]}"


def websocket_frame(*payload: bytes) -> bytes:
    """`payload` (its parts joined) as one whole binary websocket frame, header included, built
    once and written as is to every client. Unmasked: a server's frames never are (RFC 6455
    5.1); no compression extension is ever negotiated by the bridge."""
    size = sum(len(part) for part in payload)
    if size < 126:
        header = struct.pack("!BB", 0x82, size)  # FIN | binary, 7-bit length
    elif size <= 0xFFFF:
        header = struct.pack("!BBH", 0x82, 126, size)
    else:
        header = struct.pack("!BBQ", 0x82, 127, size)
    return b"".join((header, *payload))


def events_frame(encoded_events: list[bytes]) -> bytes:
    """An `Events` message as a websocket frame (`websocket_frame`), from events each already
    encoded once: built once per batch, shared by every client."""
    return websocket_frame(EVENTS_HEAD, b",".join(encoded_events), EVENTS_TAIL)


def decode_client(data: bytes | str) -> Hello | ResyncRequest:
    """A client message; anything else is a BridgeError naming what was expected."""
    try:
        return _client_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise BridgeError(
            f"bad client message ({exc}); expected JSON {{'type': 'hello' | 'resync', ...}} — "
            "the bridge is read-only"
        ) from None


def decode_server(data: bytes | str) -> Welcome | Snapshot | Events | Error:
    try:
        return _server_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise BridgeError(f"bad server message: {exc}") from None
