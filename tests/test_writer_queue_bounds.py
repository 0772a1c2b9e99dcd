"""the writer's pending work is bounded (the feeding thread waits)."""

from __future__ import annotations

import threading

from tradelab.journal.writer_queue import PendingWork


def test_a_full_queue_makes_the_feeding_thread_wait_until_the_writer_takes_work():
    work = PendingWork(
        last_seq=0, window_seconds=60.0, max_group=100, max_pending=2, idle_seconds=1.0
    )
    work.put([("a",)], 2, 2, None, False)  # full
    done = threading.Event()
    feeder = threading.Thread(target=lambda: (work.put([("b",)], 3, 1, None, False), done.set()))
    feeder.start()
    assert not done.wait(0.3)  # no room: the put waits
    chunks, _, _, _ = work.take()  # the writer thread takes the pending work (a full queue is due)
    assert chunks == [("a",)]
    assert done.wait(5.0)
    feeder.join()
    assert work.backpressure_waits == 1
    assert work.high_water == 2


def test_a_critical_event_queued_after_the_writer_failed_is_failed_at_once_not_left_waiting():
    from tradelab.errors import JournalError
    from tradelab.journal.writer import Ticket

    work = PendingWork(
        last_seq=0, window_seconds=0.01, max_group=100, max_pending=10, idle_seconds=1.0
    )
    work.fail(JournalError("disk gone"))
    ticket = Ticket()
    work.put([("a",)], 1, 1, [ticket], True)
    assert ticket._done.acquire(timeout=2.0), "the submitter would wait forever"
    assert isinstance(ticket.error, JournalError)
