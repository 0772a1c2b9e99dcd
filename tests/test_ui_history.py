"""The metrics tab's history: the journaled `metrics.sampled` figures of earlier runs (read from
the journal at start) then this run's (from the bus), bounded, charted with HoloViews at most
every few seconds per session."""

from __future__ import annotations

import holoviews as hv
from test_lab import wait_for

from tradelab.events import Event
from tradelab.lab import Lab
from tradelab.ui import console as console_module
from tradelab.ui.config import ConsoleConfig
from tradelab.ui.console import ConsoleSession
from tradelab.ui.history import CHARTED, MetricsHistory
from tradelab.ui.host import ConsoleHost


def _lab(journal, every=0.1) -> Lab:
    return Lab(
        journal_path=str(journal),
        speed=600.0,
        ticks_per_second=100,
        strategy="none",
        metrics_sample_seconds=every,
    )


def test_history_is_bounded_and_counts_what_it_drops():
    history = MetricsHistory(size=3)
    for seq in range(1, 6):
        history.on_event(
            Event(seq, seq * 10**9, "metrics.sampled", "engine", {"events_per_s": float(seq)})
        )
    version, frame = history.frame()
    assert (version, history.dropped) == (5, 2)
    assert list(frame["seq"]) == [3, 4, 5] and list(frame["events_per_s"]) == [3.0, 4.0, 5.0]
    assert history.frame()[1] is frame  # built once per version
    assert history.seed("/nonexistent/journal.duckdb") == 0


def test_console_shows_earlier_runs_samples_then_live_ones(tmp_path, monkeypatch):
    journal = tmp_path / "h.duckdb"
    earlier = _lab(journal).start()
    try:
        assert wait_for(lambda: earlier.metrics_sampler.samples >= 3, timeout=10)
    finally:
        earlier.stop()
    journaled = earlier.metrics_sampler.samples

    host = ConsoleHost(_lab(journal, every=0.2), ConsoleConfig(chart_points=500)).start()
    try:
        _, frame = host.metrics_history.frame()
        assert len(frame) >= journaled  # from the journal, at start
        # The earlier run had no console (no sessions figure); this one's samples have one.
        assert frame["sessions"].iloc[:journaled].isna().all()
        assert frame["sessions"].iloc[journaled:].notna().all()
        session = ConsoleSession(host, "alice")
        host.session_opened("s1", "alice")
        session.refresh()
        assert session.metrics_history.object is None  # its tab is hidden: no figure sent
        session.details.active = session.metrics_tab  # opened: drawn at once
        plot = session.metrics_history.object
        assert isinstance(plot, hv.Layout) and len(plot) == len(CHARTED)
        # Every time shown names its clock: these samples are on the journal's (the wall's).
        curves = [c for overlay in plot for c in overlay if isinstance(c, hv.Curve)]
        assert {c.kdims[0].pprint_label for c in curves} == {"journal time (IST)"}

        shown = session._history_version
        assert wait_for(lambda: host.metrics_history.frame()[0] > shown, timeout=10)
        session.refresh()  # within the redraw period: the chart is not rebuilt
        assert session.metrics_history.object is plot
        monkeypatch.setattr(console_module, "_HISTORY_EVERY_NS", 0)
        session.refresh()
        assert session.metrics_history.object is not plot
        _, frame = host.metrics_history.frame()
        assert len(frame) > journaled and frame["sessions"].iloc[-1] == 1  # the console's figure
        assert frame["seq"].is_monotonic_increasing
    finally:
        host.stop()
    assert "sessions" not in host.lab.metrics_sampler.figures()  # the host took its source back


def test_a_lab_without_sampler_still_serves_a_console(tmp_path):
    host = ConsoleHost(_lab(tmp_path / "n.duckdb", every=0)).start()
    try:
        session = ConsoleSession(host, None)
        session.refresh()
        assert session.metrics_history.object is None and host.lab.metrics_sampler is None
    finally:
        host.stop()


def test_a_restarted_console_goes_on_from_the_pnl_curve_its_journal_holds(tmp_path):
    from tradelab.analytics import Analytics

    journal = tmp_path / "pnl.duckdb"
    earlier = Lab(journal_path=str(journal), speed=600.0, ticks_per_second=100).start()
    try:  # the straddle sells at 09:20 exchange time, half a second in at 600x
        assert wait_for(lambda: earlier.status()["fills"] >= 2, timeout=60)
        store = earlier.engine.store
        assert wait_for(lambda: store.get("market.bars", None), timeout=10)  # a closed bar too
    finally:
        earlier.stop()
    curve = Analytics(journal).sql("SELECT exchange_ts, net FROM equity ORDER BY seq")
    assert len(curve) >= 3 and curve["net"].ne(0).any()

    config = ConsoleConfig(sample_seconds=60.0)  # the live samples come after the seed
    host = ConsoleHost(_lab(journal), config).start()
    try:
        frame = host.equity_frame()
        assert list(frame["net_pnl"])[: len(curve)] == list(curve["net"])
        first = frame["time"].iloc[0]
        assert first.tz is None and first.hour == 9  # naive IST, the exchange clock
        session = ConsoleSession(host, "alice")
        session.refresh()
        shown = list(session.charts.equity_source.data["net_pnl"])
        assert shown[: len(curve)] == list(curve["net"])
        # The tape too: a page filtered on trades shows the earlier run's, as the table does.
        trades = Analytics(journal).sql("SELECT seq FROM events WHERE topic = 'trade.executed'")
        rows = host.view.changes_since(0).tape
        assert {r.seq for r in rows if r.topic == "trade.executed"} >= set(trades["seq"])
        assert all(isinstance(r.payload, dict) for r in rows)
    finally:
        host.stop()
    assert ConsoleHost(_lab(tmp_path / "new.duckdb"), config).seed_equity(tmp_path / "x") == 0
    assert ConsoleHost(_lab(tmp_path / "new.duckdb"), config).seed_tape(tmp_path / "x") == 0


def test_the_intraday_pnl_curve_holds_the_last_exchange_day_and_starts_over_on_the_next(
    tmp_path, monkeypatch
):
    # The "Intraday net P&L" chart carried every earlier day's cumulative net: on Monday it
    # still began on Friday, with a flat line over the weekend.
    import threading
    from datetime import datetime

    import pandas as pd

    from tradelab.market.instruments import IST
    from tradelab.ui import host as host_module

    def at(day, hhmm):
        hour, minute = map(int, hhmm.split(":"))
        return int(datetime(2025, 11, day, hour, minute, tzinfo=IST).timestamp() * 10**9)

    earlier = pd.DataFrame(
        {
            "exchange_ts": [at(14, "09:30"), at(14, "15:00"), at(17, "09:30"), at(17, "10:00")],
            "net": [100.0, 250.0, 200.0, 310.0],  # cumulative: Monday opened on Friday's 250
        }
    )
    monkeypatch.setattr(host_module, "_read_earlier_run", lambda *args: earlier)
    host = ConsoleHost(_lab(tmp_path / "j.duckdb"), ConsoleConfig())
    assert host.seed_equity(tmp_path / "j.duckdb") == 2
    assert list(host.equity) == [(at(17, "09:30"), -50.0), (at(17, "10:00"), 60.0)]

    # Live: the day's net; a new session_date starts the curve over.
    daily = {"net": 75.0, "session_date": "2025-11-17"}
    host.lab.engine.store = type("Store", (), {"get": lambda self, path, default: daily})()
    host.lab.clock.set(at(17, "10:30"))
    host.config.sample_seconds = 0.05
    sampler = threading.Thread(target=host._sample)
    sampler.start()
    assert wait_for(lambda: host.equity[-1] == (at(17, "10:30"), 75.0), timeout=10)
    daily = {"net": -5.0, "session_date": "2025-11-18"}
    host.lab.clock.set(at(18, "09:16"))
    assert wait_for(lambda: list(host.equity) == [(at(18, "09:16"), -5.0)], timeout=10)
    host._stop.set()
    sampler.join(10)
