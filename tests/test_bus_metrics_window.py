"""a topic's recent rate is exact after its count was read."""

from __future__ import annotations

from tradelab.bus.metrics import TopicCounter


def test_recent_rate_counts_every_event_after_a_checkpoint_taken_after_reads():
    c = TopicCounter("trade.logged")
    for _ in range(10):
        next(c.counter)  # ten publishes
    for _ in range(5):
        assert c.count == 10  # five reads (each advances the counter once)
    t0 = 1_000_000_000
    c.checkpoint(t0, next(c.counter))  # the 11th publish, sampled: 10 events before it
    for _ in range(10):
        next(c.counter)
    count = c.count
    assert count == 21
    # 11 events (the sampled one and the ten after it) in the second since the checkpoint
    assert c.recent_rate(t0 + 1_000_000_000, 10_000_000_000, count) == 11.0


def test_recent_rate_starts_at_the_oldest_checkpoint_inside_the_window():
    c = TopicCounter("trade.logged")
    s = 1_000_000_000
    c.checkpoints.extend([(0, 0), (20 * s, 100)])
    # window 10 s at t=21 s: the checkpoint at 20 s is inside it: 10 events in 1 s
    assert c.recent_rate(21 * s, 10 * s, 110) == 10.0
