"""The console built against a running Lab, without a server: it fills from the shared view,
viewers get no controls and their commands are refused, operators' commands reach the runner,
and the stale marker follows the feed."""

from __future__ import annotations

import time

import panel as pn
import pytest

from tradelab.lab import Lab, LabConfig
from tradelab.ui import frames
from tradelab.ui.auth import AuthSettings
from tradelab.ui.commands import CommandRefused
from tradelab.ui.config import ConsoleConfig
from tradelab.ui.console import ConsoleSession, build_console
from tradelab.ui.host import ConsoleHost


def _wait(condition, session, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
        session.refresh()


@pytest.fixture
def host(tmp_path):
    lab = Lab(LabConfig(journal_path=str(tmp_path / "c.duckdb"), speed=600.0, ticks_per_second=100))
    config = ConsoleConfig(operators=["alice"], stale_after_seconds=0.5, sample_seconds=0.05)
    auth = AuthSettings(cookie_secret="a-secret-of-sixteen+", operators=frozenset(config.operators))
    started = ConsoleHost(lab, config, auth=auth).start()
    yield started
    started.stop()


def test_console_fills_from_a_running_lab(host):
    console = build_console(host, user="alice")
    assert isinstance(console, pn.viewable.Viewable)
    session = console.tl_session
    _wait(lambda: len(session.positions.value) > 0 and len(session.trades.value) > 0, session)
    assert int(session.header.last_seq.text) > 0
    assert "running" in session.header.runner.text
    assert session.header.risk.text == "risk: active"
    assert set(session.positions.value["strategy"]) == {"short_straddle"}
    assert 0 < len(session.tape.rows_shown()) <= host.config.tape_rows
    assert not session.stale


def test_tape_filter_is_the_sessions_own(host):
    one, two = ConsoleSession(host, "alice"), ConsoleSession(host, "bob")
    one.tape_filter.value = ["trade.executed"]
    _wait(lambda: len(one.tape.rows_shown()) > 0, one)
    two.refresh()
    assert {row["topic"] for row in one.tape.rows_shown()} == {"trade.executed"}
    assert "trade.executed" in {row[2] for row in one.tape.pane.cells}  # what the browser gets
    # the other session is not filtered: its newest rows are whatever came last (marks)
    assert {row["topic"] for row in two.tape.rows_shown()} - {"trade.executed"}


def test_viewer_has_no_controls_and_a_forged_command_is_refused(host):
    viewer = ConsoleSession(host, "bob")
    assert viewer.controls is None
    with pytest.raises(CommandRefused, match="bob"):
        host.commands.execute("bob", "pause")
    with pytest.raises(CommandRefused):
        host.commands.execute(None, "flatten")


def test_operator_pause_reaches_the_runner_and_every_session(host):
    operator, viewer = ConsoleSession(host, "alice"), ConsoleSession(host, "bob")
    _wait(lambda: "running" in viewer.header.runner.text, viewer)
    assert "pause" in operator.controls.run("pause")
    _wait(lambda: "paused" in viewer.header.runner.text, viewer)
    operator.refresh()
    assert "paused" in operator.header.runner.text
    operator.controls.run("resume")
    _wait(lambda: "running" in viewer.header.runner.text, viewer)


def test_stale_marker_shows_once_the_feed_stops(host):
    session = ConsoleSession(host, "alice")
    _wait(lambda: int(session.header.last_seq.text) > 0, session)
    assert session.header.stale_text == ""
    beat = session.header.watchdog.heartbeat
    host.lab._stop.set()  # what the feed does when its session ends: no more ticks
    _wait(lambda: session.stale, session, timeout=10)
    assert "STALE" in session.header.stale_text
    assert session.header.watchdog.heartbeat > beat  # the session still beats: it is alive


def test_sessions_leave_no_watchers_on_shared_objects(host):
    before = host.shared_watchers()
    subs = len(host.lab.engine.bus.subscriptions())
    for _ in range(5):
        ConsoleSession(host, "alice").refresh()
    assert host.shared_watchers() == before == 0
    assert len(host.lab.engine.bus.subscriptions()) == subs
    assert host.metrics()["view_subscriptions"] == 1


def test_halt_shows_a_banner_until_an_operator_resumes_with_a_reason(host):
    session = ConsoleSession(host, "alice")
    _wait(lambda: int(session.header.last_seq.text) > 0, session)
    assert not session.header.banner.visible
    host.lab.risk.halt("alice", "checking the feed")
    _wait(lambda: session.header.banner.visible, session)
    assert "HALTED by alice: checking the feed" in session.header.banner.text
    assert session.header.risk.text == "risk: halted"
    assert "refused" in session.controls.run("resume_trading", reason="")
    session.controls.reason.value = "feed checked"
    session.controls.resume_trading.clicks += 1  # what a click in the browser does
    _wait(lambda: not session.header.banner.visible, session)
    assert session.header.risk.text == "risk: active"


def test_metrics_tab_shows_journal_commit_and_critical_ack_latency(host):
    for i in range(5):  # a symbol nothing trades: only the journal notices
        host.lab.engine.submit(
            "mark.updated", {"symbol": "LATENCY", "price": 1.0 + i}, critical=True
        )
    host.lab.engine.flush()
    session = ConsoleSession(host, "bob")
    session.refresh()  # the first push fills the metrics tab
    shown = session.metrics.object
    for key in ("journal_commit_latency_ms", "journal_critical_ack_latency_ms"):
        figures = shown[key]
        assert 0 < figures["p50"] <= figures["p99"] <= figures["max"]
        assert figures["batches"] >= 5 and figures["window"] <= figures["window_limit"]
    assert "journal_critical_ack_latency" in shown["engine"]


def test_a_rebuilt_table_equal_to_the_last_keeps_its_version_so_no_session_resends_it(tmp_path):
    # Marks bump the positions section (they revalue the book) even when nothing is held.
    lab = Lab(
        LabConfig(journal_path=str(tmp_path / "q.duckdb"), strategy="none", ticks_per_second=1)
    )
    quiet = ConsoleHost(lab, ConsoleConfig()).start()
    try:
        shown, table = quiet.frame("positions")
        lab.engine.submit(
            "mark.updated", {"symbol": "NOT_HELD", "price": 1.0, "bid": 1.0, "ask": 1.0}
        )
        lab.engine.flush()
        assert quiet.view.section_version("positions") > shown
        again, rebuilt = quiet.frame("positions")
        assert again == shown and rebuilt is table
        session = build_console(quiet).tl_session
        session.refresh()
        sets = []
        session.positions.param.watch(lambda event: sets.append(event), "value")
        lab.engine.submit(
            "mark.updated", {"symbol": "NOT_HELD", "price": 2.0, "bid": 2.0, "ask": 2.0}
        )
        lab.engine.flush()
        session.refresh()
        assert sets == [], "an identical positions table was sent to the browser again"
    finally:
        quiet.stop()


def test_a_tape_redraw_and_a_chart_redraw_never_share_a_push(host):
    # The browser applies one push in one task: both redraws in one push is one long frame.
    session = ConsoleSession(host, "bob")
    session.refresh()  # the first push draws everything at once: the page is loading
    pushed = {"tape": [], "chart": []}
    show_tape, show_equity = session.tape.show, session.charts.show_equity
    session.tape.show = lambda: (pushed["tape"].append(session.pushes), show_tape())
    session.charts.show_equity = lambda f: (pushed["chart"].append(session.pushes), show_equity(f))
    for _ in range(3):
        _wait(lambda: session.tape.pending, session)  # new events wait for the tape
        session._last_tape_ns = session._last_slow_ns = 0  # both due in the next push
        session.refresh()
        session.refresh()
    assert len(pushed["tape"]) >= 3 and len(pushed["chart"]) >= 3
    assert not set(pushed["tape"]) & set(pushed["chart"])


def _short_session_host(tmp_path, **lab):
    # 22,500 market seconds at 15,000x: the simulated session closes ~1.5 s after it opens.
    cfg = LabConfig(
        journal_path=str(tmp_path / "s.duckdb"), speed=15_000.0, ticks_per_second=50, **lab
    )
    config = ConsoleConfig(stale_after_seconds=0.5, sample_seconds=0.05)
    return ConsoleHost(Lab(cfg), config).start()


def test_a_closed_market_is_said_so_and_is_not_stale(tmp_path):
    host = _short_session_host(tmp_path)
    try:
        session = ConsoleSession(host, None)
        _wait(lambda: "market closed" in session.header.feed.text, session, timeout=20)
        assert session.header.feed.text == "feed: market closed at 15:30 IST"
        # The exchange clock stopped at the close, not at the last tick (15:29:59).
        assert session.header.market_time.text.endswith(" 15:30 IST")
        time.sleep(1.0)  # twice the max age: no tick and no event owed while closed
        session.refresh()
        assert not session.stale and session.header.stale_text == ""
    finally:
        host.stop()


def test_the_overnight_wait_of_a_paced_replay_reads_market_closed_not_stale(tmp_path):
    rows = ["Date,Open,High,Low,Close"]
    for day, minutes in ((3, 30), (4, 15)):  # 09:15-09:44 on Monday, 09:15-09:29 on Tuesday
        rows += [f"2025-11-{day:02d} 09:{15 + m:02d},100,101,99,100" for m in range(minutes)]
    bars = tmp_path / "acme.csv"
    bars.write_text("\n".join(rows) + "\n")
    # 23.5 market hours overnight at 20,000x: a wait of about 4 s.
    cfg = LabConfig(
        journal_path=str(tmp_path / "r.duckdb"),
        feed="replay",
        replay_path=str(bars),
        strategy="none",
        speed=20_000.0,
    )
    host = ConsoleHost(Lab(cfg), ConsoleConfig(stale_after_seconds=0.5)).start()
    try:
        session = ConsoleSession(host, None)
        _wait(lambda: "market closed" in session.header.feed.text, session, timeout=20)
        assert (
            session.header.feed.text == "feed: market closed at 15:30 IST"
        )  # Monday closed at the exchange close
        time.sleep(1.0)  # twice the max age, well inside the wait
        session.refresh()
        assert session.header.feed.text == "feed: market closed at 15:30 IST"
        assert not session.stale and session.header.stale_text == ""
        store = host.lab.store
        _wait(lambda: store.get("market.session")["session_date"] == "2025-11-04", session)
    finally:
        host.stop()


def test_a_stalled_feed_leaves_the_session_open_and_the_console_stale(tmp_path):
    host = _short_session_host(tmp_path, feed_stall_after_seconds=0.3)
    try:
        session = ConsoleSession(host, None)
        _wait(lambda: session.stale, session, timeout=10)
        assert "no feed tick" in session.header.stale_text
        assert session.header.feed.text == "feed: silent"
        ticks = host.lab.router.ticks_routed
        time.sleep(1.5)  # past the session's close had the feed played on
        assert host.lab.router.ticks_routed == ticks
        assert host.lab.store.get("market.session")["status"] == "open"
    finally:
        host.stop()


def test_a_new_page_shows_the_book_the_store_holds_though_no_event_touches_it_again(host):
    from tradelab.ui.view import SharedView

    first = ConsoleSession(host, "alice")
    _wait(lambda: len(first.positions.value) > 0 and len(first.trades.value) > 0, first)
    # The straddle's legs may still be filling: compare with the store's book read around the
    # page's first push, and read again if the book moved meanwhile.
    for _ in range(50):
        book_before = frames.positions(host.lab)
        # As after a restart with the market closed: the view has seen nothing touch the book.
        host.view = SharedView(tape_size=host.config.tape_size)
        host._frames.clear()
        page = ConsoleSession(host, "bob")
        page.refresh()
        if frames.positions(host.lab)["symbol"].tolist() == book_before["symbol"].tolist():
            break
    assert page.positions.value["symbol"].tolist() == book_before["symbol"].tolist()
    assert len(book_before) > 0
    assert len(page.trades.value) > 0


def test_a_parameter_change_shows_in_every_open_pages_parameter_tab(host):
    one, two = ConsoleSession(host, "alice"), ConsoleSession(host, "bob")
    one.refresh()
    two.refresh()

    def shown(session) -> float:
        table = session.params.value
        return float(table[table["parameter"] == "stop_loss_pct"]["value"].iloc[0])

    assert shown(two) == 30.0
    assert "set" in one.controls.run(
        "set_params", strategy="short_straddle", params={"stop_loss_pct": 60.0}
    )
    _wait(lambda: shown(two) == 60.0, two)  # the other page, without a reload


def test_another_pages_parameter_change_shows_in_this_pages_form_and_can_be_undone(host):
    one, two = ConsoleSession(host, "alice"), ConsoleSession(host, "alice")
    store = host.lab.store

    def journaled_lots() -> int:
        return (store.get("runner.by_strategy.short_straddle.params", None) or {}).get("lots")

    _wait(lambda: journaled_lots() == 1, one)
    two.refresh()
    mine, theirs = one.controls.forms["short_straddle"], two.controls.forms["short_straddle"]
    mine.widgets["lots"].value = 2
    mine.send()
    assert "set: lots=2" in one.controls.message.text
    _wait(lambda: theirs.widgets["lots"].value == 2, two)  # the journaled value, no reload
    assert journaled_lots() == 2
    theirs.widgets["lots"].value = 1  # the other page puts it back
    theirs.send()
    assert "set: lots=1" in two.controls.message.text
    _wait(lambda: journaled_lots() == 1 and mine.widgets["lots"].value == 1, one)


def test_a_pages_first_push_shows_the_past_and_is_not_counted_as_push_lag(host):
    session = ConsoleSession(host, "alice")
    _wait(lambda: len(session.tape.rows_shown()) > 0, session)
    pushes = host.pushes
    late = ConsoleSession(host, "bob")
    late.refresh()  # its first push: rows from before the page was open, however old
    assert len(late.tape.rows_shown()) > 0 and host.pushes == pushes
    late.refresh()  # later pushes are measured
    _wait(lambda: host.pushes > pushes, late)


def test_a_stalled_hook_shows_on_every_push_though_nothing_is_journaled(host, monkeypatch):
    # At max speed a stuck hook stops the feed too: no section changed, so no banner showed.
    session = ConsoleSession(host, "alice")
    session.refresh()
    assert not session.header.stalled.visible
    stalled = {"strategy": "sma_cross", "hook": "on_bar", "seconds": 7.0}
    monkeypatch.setattr(host.lab.runner.hook_watch, "stalled", lambda: stalled)
    session.refresh()
    assert session.header.stalled.visible and "sma_cross STALLED in on_bar" in (
        session.header.stalled.text
    )
    stalled = {**stalled, "seconds": 9.0}
    session.refresh()  # the seconds move on every push
    assert "for 9 s" in session.header.stalled.text
    monkeypatch.setattr(host.lab.runner.hook_watch, "stalled", lambda: None)
    session.refresh()
    assert not session.header.stalled.visible


def test_a_closed_pages_notification_area_is_forgotten_so_its_document_can_go():
    # Panel 1.9's notification area registers a view per page and never drops it: every page
    # load of the console kept its whole Bokeh document alive (~2.5 MB, for good).
    import gc
    import weakref

    import panel as pn
    from bokeh.document import Document
    from panel.io.notifications import NotificationArea

    from tradelab.ui.console import forget_views_of

    closed, open_page = Document(), Document()
    NotificationArea().get_root(closed)
    kept = NotificationArea().get_root(open_page)
    assert forget_views_of(closed) == 1
    assert not any(view[2] is closed for view in pn.state._views.values())
    assert kept.ref["id"] in pn.state._views  # another page's view stays
    gone = weakref.ref(closed)
    del closed
    gc.collect()
    assert gone() is None
    assert forget_views_of(open_page) == 1
