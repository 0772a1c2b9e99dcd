"""The event tape as a session shows it: newest first, the IST time of each event, the session's
own topic filter (which finds a topic's last rows after a flood of others), every value sent
as text, and never more rows than configured; and the equity
chart, which streams its new points and starts over only when the curve does, and the bar
chart, which streams closed bars and redraws on a switch of interval."""

from __future__ import annotations

import pandas as pd
from bokeh.document import Document

from tradelab.ui.charts import Charts
from tradelab.ui.frames import ist_ms
from tradelab.ui.tape import TAPE_COLUMNS, EventTape
from tradelab.ui.view import TapeRow

NS = 1_767_584_706_789_000_000  # 2026-01-05 09:15:06.789 IST


def journaled(ns: int) -> str:
    return f"05 Jan {ist_ms(ns)}"  # a day before today's: dated on the tape


def _row(seq: int, topic: str = "mark.updated", key: str = "NIFTY") -> TapeRow:
    return TapeRow(seq, seq, topic, key, NS + seq * 1_000_000, NS, {})


def _shown(tape: EventTape) -> list[list[str]]:
    """The cells the browser's table shows, row by row (set as text, never parsed)."""
    return tape.pane.cells


def test_tape_shows_newest_first_with_seq_ist_time_topic_and_key():
    tape = EventTape(shown=50)
    tape.add([_row(1), _row(2, "order.filled", "o-2"), _row(3)], resync=False)
    assert tape.pending
    tape.show()
    assert not tape.pending
    assert _shown(tape) == [
        ["3", journaled(NS + 3_000_000), "mark.updated", "NIFTY"],
        ["2", journaled(NS + 2_000_000), "order.filled", "o-2"],
        ["1", journaled(NS + 1_000_000), "mark.updated", "NIFTY"],
    ]
    assert [list(r.values()) for r in tape.rows_shown()] == _shown(tape)
    assert list(tape.rows_shown()[0]) == list(TAPE_COLUMNS)
    assert "tl-tape" in tape.pane.css_classes


def test_tape_filter_keeps_only_the_chosen_topics_and_can_be_cleared():
    tape = EventTape(shown=50)
    tape.add([_row(1), _row(2, "trade.executed", "t-2"), _row(3)], resync=False)
    tape.filter.value = ["trade.executed"]
    tape.show()
    assert _shown(tape) == [["2", journaled(NS + 2_000_000), "trade.executed", "t-2"]]
    tape.filter.value = []
    tape.show()
    assert [r[0] for r in _shown(tape)] == ["3", "2", "1"]


def test_a_hostile_key_is_shown_as_text_never_as_markup():
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>&amp;'
    tape = EventTape(shown=10)
    tape.add([_row(1, key=hostile)], resync=False)
    tape.show()
    # The key goes to the browser as a cell's text (textContent): read as it was, never parsed.
    assert _shown(tape)[0][3] == hostile


def test_tape_shows_at_most_its_rows_and_keeps_the_newest_of_each_topic():
    tape = EventTape(shown=10)
    tape.add([_row(1, "trade.executed", "t-1")], resync=False)
    tape.add([_row(i) for i in range(2, 51)], resync=False)  # a flood of marks after a trade
    tape.show()
    assert [int(r[0]) for r in _shown(tape)] == list(range(50, 40, -1))
    tape.filter.value = ["trade.executed"]
    tape.show()
    assert [r[2:] for r in _shown(tape)] == [["trade.executed", "t-1"]]  # still found
    tape.filter.value = ["mark.updated"]
    tape.show()
    assert [int(r[0]) for r in _shown(tape)] == list(range(50, 40, -1))
    assert sum(len(ring) for ring in tape._by_topic.values()) == 11  # 10 marks, 1 trade kept
    tape.add([_row(i) for i in range(52, 60)], resync=True)
    tape.filter.value = []
    tape.show()
    assert [int(r[0]) for r in _shown(tape)] == list(range(59, 51, -1))  # started over


def test_an_unchanged_tape_is_not_sent_again():
    tape = EventTape(shown=10)
    tape.add([_row(1)], resync=False)
    tape.show()
    sets = []
    tape.pane.param.watch(sets.append, "cells")
    tape.filter.value = ["mark.updated"]  # the same rows pass
    tape.show()
    assert sets == []
    tape.add([_row(2)], resync=False)
    tape.show()
    assert len(sets) == 1


def _equity(start: int, stop: int) -> pd.DataFrame:
    times = pd.Timestamp("2026-01-05 09:15") + pd.to_timedelta(range(start, stop), unit="s")
    return pd.DataFrame({"time": times, "net_pnl": [float(i) for i in range(start, stop)]})


def test_equity_chart_streams_new_points_within_its_bound_and_resets_when_the_curve_restarts():
    charts = Charts(points=5)
    source = charts.equity_source
    document = Document()
    document.add_root(source)
    sent: list[str] = []  # what would go to the browser: a stream or a whole new source
    document.on_change(lambda event: sent.append(type(event).__name__))

    charts.show_equity(_equity(0, 0))
    assert sent == []  # nothing to show
    charts.show_equity(_equity(0, 3))
    assert list(source.data["net_pnl"]) == [0.0, 1.0, 2.0]
    assert sent == ["ColumnDataChangedEvent"]
    charts.show_equity(_equity(0, 3))
    assert sent == ["ColumnDataChangedEvent"]  # no new point: nothing sent
    charts.show_equity(_equity(2, 7))  # the host's ring dropped its oldest meanwhile
    assert sent[1:] == ["ColumnsStreamedEvent"]
    assert list(source.data["net_pnl"]) == [2.0, 3.0, 4.0, 5.0, 6.0]  # rolled over at 5
    charts.show_equity(_equity(0, 2))  # a curve that starts over is replaced whole
    assert list(source.data["net_pnl"]) == [0.0, 1.0]
    assert sent[2:] == ["ColumnDataChangedEvent"]


def _bars(start: int, stop: int, minutes: int = 15) -> pd.DataFrame:
    starts = pd.Timestamp("2026-01-05 09:15", tz="Asia/Kolkata") + pd.to_timedelta(
        [i * minutes for i in range(start, stop)], unit="min"
    )
    prices = [100.0 + i for i in range(start, stop)]
    return pd.DataFrame(
        {
            "start": starts,
            "end": starts + pd.Timedelta(minutes=minutes),
            "open": prices,
            "high": [p + 2 for p in prices],
            "low": [p - 2 for p in prices],
            "close": [p + 1 for p in prices],
        }
    )


def test_bar_chart_streams_closed_bars_and_redraws_on_an_interval_switch():
    charts = Charts()
    source = charts.bar_source
    document = Document()
    document.add_root(source)
    sent: list[str] = []
    document.on_change(lambda event: sent.append(type(event).__name__))

    charts.show_bars({"15m": _bars(0, 3), "1h": _bars(0, 1, 60)})
    assert list(source.data["open"]) == [100.0, 101.0, 102.0]
    charts.show_bars({"15m": _bars(0, 3), "1h": _bars(0, 1, 60)})  # no new bar closed
    charts.show_bars({"15m": _bars(1, 5), "1h": _bars(0, 1, 60)})  # history bounded to 4
    assert sent == ["ColumnDataChangedEvent", "ColumnsStreamedEvent"]
    assert list(source.data["open"]) == [101.0, 102.0, 103.0, 104.0]
    assert list(source.data["color"]) == ["#2ca02c"] * 4
    charts.interval.value = "1h"  # the session's preference, shown at once
    assert list(source.data["open"]) == [100.0]
    assert sent[2:] == ["ColumnDataChangedEvent"]
    charts.interval.value = "15m"
    charts.show_bars({"15m": _bars(0, 2), "1h": _bars(0, 1, 60)})  # a new session's history
    assert list(source.data["open"]) == [100.0, 101.0]


def test_a_url_filter_takes_patterns_and_names_what_is_no_topic():
    from tradelab.ui.tape import topics_named

    known = ["order.filled", "order.submitted", "trade.executed", "trade.logged"]
    assert topics_named(["trade.*", "order.filled", "trade.execute"], known) == (
        ["trade.executed", "trade.logged", "order.filled"],
        ["trade.execute"],
    )


def test_a_url_filter_that_is_not_utf8_is_named_as_ignored(monkeypatch):
    import panel as pn

    # `?tape=%ff,trade.executed`: the server hands the query's bytes over undecoded.
    args = {"tape": [b"\xff,trade.executed"]}
    monkeypatch.setattr(type(pn.state), "session_args", property(lambda _state: args))
    tape = EventTape(shown=10)
    assert tape.filter.value == ["trade.executed"]
    assert tape.filter.name.endswith("not topics, ignored: \\xff")


def test_a_new_page_filtered_on_orders_shows_the_last_orders_after_a_flood_of_marks():
    from tradelab.events import Event
    from tradelab.ui.view import SharedView

    view = SharedView(tape_size=1000)  # the console's default ring
    seq = 0
    for order in range(3):  # the session's orders, then ~2 s of marks
        for topic in ("order.submitted", "order.accepted", "order.filled"):
            seq += 1
            view.on_event(Event(seq, NS + seq, topic, f"o-{order}", {}))
    for _ in range(1500):
        seq += 1
        view.on_event(Event(seq, NS + seq, "mark.updated", "NIFTY", {}))
    tape = EventTape(shown=20)  # a page opened now with /?tape=order.*
    tape.filter.value = [t for t in tape.filter.options if t.startswith("order.")]
    changes = view.changes_since(0, max_rows=1000)  # its first push, as ConsoleSession pulls
    tape.add(changes.tape, changes.resync)
    tape.show()
    assert [row[0] for row in _shown(tape)] == [str(s) for s in range(9, 0, -1)]
