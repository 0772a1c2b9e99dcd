"""The console's P&L curve: a bounded ring of (exchange time, net P&L) samples."""

from collections import deque

from tradelab.ui.host import extend_curve


def test_a_flat_stretch_moves_its_end_and_keeps_the_session_in_the_ring():
    curve: deque = deque(maxlen=5)
    for ts, net in [(1, 0.0), (2, 10.0), (3, -5.0), (4, -5.0)]:
        extend_curve(curve, ts, net)
    # After the close: a sample a second, the same net, for far longer than the ring holds.
    for ts in range(5, 500):
        extend_curve(curve, ts, -5.0)
    assert list(curve) == [(1, 0.0), (2, 10.0), (3, -5.0), (499, -5.0)]
    extend_curve(curve, 499, 7.0)  # the clock did not move: nothing drawn
    extend_curve(curve, 500, 7.0)
    assert list(curve)[-2:] == [(499, -5.0), (500, 7.0)]
