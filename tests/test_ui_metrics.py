"""`/metrics` served by a real tornado server over a running Lab: Prometheus text that parses, figures
that move as the engine works, the console's extra figures, and auth when it is configured."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_lab import wait_for
from test_ui_auth import SECRET, basic, cookie, get, serve_routes
from test_ui_commands import started_lab

from tradelab.ui.auth import AuthSettings
from tradelab.ui.commands import CommandRefused, OperatorCommands
from tradelab.ui.metrics_route import metrics_routes


@pytest.fixture
def lab(tmp_path):
    lab = started_lab(tmp_path / "lab.duckdb")
    yield lab
    lab.stop()


def scrape(base: str, headers: dict | None = None) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value of one scrape of /metrics."""
    status, text, response_headers = get(f"{base}/metrics", headers)
    assert status == 200, text
    assert response_headers["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_parse_and_move_as_the_engine_works(lab):
    commands = OperatorCommands(lab)
    figures = {"sessions": 3.0, "push_latency_p99_seconds": 0.05, "bad name": 1.0}
    routes = metrics_routes(lab, extra=lambda: figures, commands=commands)
    with serve_routes(routes) as base:
        assert wait_for(lambda: lab.router.ticks_routed > 0)
        first = scrape(base)
        assert wait_for(lambda: lab.store.version > first[("tradelab_engine_applied_seq", ())])
        with pytest.raises(CommandRefused):
            commands.execute(None, "resume_trading", reason="not halted")
        commands.execute(None, "pause")
        assert wait_for(lambda: lab.runner.state_of("sma_cross") == "paused")
        second = scrape(base)

    for name in ("tradelab_engine_applied_seq", "tradelab_feed_ticks_total"):
        assert second[(name, ())] > first[(name, ())] > 0
    assert second[("tradelab_engine_state", (("state", "running"),))] == 1.0
    assert second[("tradelab_engine_queue_limit", ())] > 0
    assert ("tradelab_engine_queue_high_water", ()) in second
    assert second[("tradelab_journal_durable_seq", ())] > 0
    assert second[("tradelab_journal_unsynced_events", ())] >= 0
    assert second[("tradelab_bus_events_per_second", ())] > 0
    assert second[("tradelab_risk_state", (("state", "active"),))] == 1.0
    assert second[("tradelab_risk_state", (("state", "halted"),))] == 0.0
    # The live book's trimming (a fresh session: nothing trimmed yet).
    assert second[("tradelab_book_history_trimmed_total", (("kind", "fills"),))] == 0.0
    assert second[("tradelab_broker_history_trimmed_total", (("kind", "orders"),))] == 0.0
    paused = (("state", "paused"), ("strategy", "sma_cross"))
    assert (
        first[("tradelab_strategy_state", paused)],
        second[("tradelab_strategy_state", paused)],
    ) == (0.0, 1.0)
    assert second[("tradelab_console_commands_total", (("command", "pause"),))] == 1.0
    assert second[("tradelab_console_commands_refused_total", (("reason", "not_now"),))] == 1.0
    assert second[("tradelab_sessions", ())] == 3.0
    assert second[("tradelab_push_latency_p99_seconds", ())] == 0.05
    assert not any("bad" in name for name, _ in second)
    # The bus's own collector shares the registry: per-topic counts.
    bus_marks = [
        value
        for (name, labels), value in second.items()
        if name == "tradelab_bus_events_total" and ("topic", "mark.updated") in labels
    ]
    assert bus_marks and bus_marks[0] > 0


def test_metrics_survive_failing_extra_figures(lab):
    def broken() -> dict[str, float]:
        raise RuntimeError("console gone")

    with serve_routes(metrics_routes(lab, extra=broken)) as base:
        assert ("tradelab_engine_applied_seq", ()) in scrape(base)


def test_metrics_need_a_user_when_auth_is_configured(lab, tmp_path):
    users = tmp_path / "users.json"
    users.write_text('{"scraper": "s3cret", "alice": "wonder"}')
    auth = AuthSettings.configure(cookie_secret=SECRET, basic_auth_file=users, operators=["alice"])
    with serve_routes(metrics_routes(lab, auth)) as base:
        status, text, _ = get(f"{base}/metrics")
        assert status == 401 and "tradelab" not in text
        assert get(f"{base}/metrics", basic("scraper", "wrong"))[0] == 401
        # Any logged-in user may read the figures (viewers see everything read-only).
        assert ("tradelab_engine_applied_seq", ()) in scrape(base, basic("scraper", "s3cret"))
        assert ("tradelab_engine_applied_seq", ()) in scrape(base, cookie("bob"))


def test_metrics_export_journal_commit_and_critical_ack_latency(lab):
    routes = metrics_routes(lab)
    with serve_routes(routes) as base:
        for i in range(5):  # a symbol nothing trades: only the journal notices
            lab.engine.submit(
                "mark.updated", {"symbol": "LATENCY", "price": 1.0 + i}, critical=True
            )
        lab.engine.flush()
        figures = scrape(base)

    for stem in ("tradelab_journal_commit_latency", "tradelab_journal_critical_ack_latency"):
        p50 = figures[(f"{stem}_ms", (("quantile", "0.5"),))]
        p99 = figures[(f"{stem}_ms", (("quantile", "0.99"),))]
        assert 0 < p50 <= p99 <= figures[(f"{stem}_max_ms", ())]
    acked = figures[("tradelab_journal_critical_ack_latency_samples_total", ())]
    assert acked >= 5
    assert figures[("tradelab_journal_commit_latency_samples_total", ())] >= acked
    assert figures[("tradelab_journal_latency_unsampled_batches_total", ())] == 0
    assert figures[("tradelab_journal_ack_log_syncs_total", ())] >= 1


def test_metrics_carry_the_bridges_bounds_and_the_critical_priority_waits(lab):
    # Neither was on /metrics: the bridge's history and pending queue are bounded and drop
    # when full, and the README names the waits beside their seconds.
    from tradelab.bridge.server import bridge_routes
    from tradelab.ui.routes import bridge_figures

    hub = bridge_routes(lab.engine)[0][2]["hub"]
    routes = metrics_routes(lab, extra=lambda: bridge_figures(hub))
    with serve_routes(routes) as base:
        scraped = scrape(base)
    assert ("tradelab_engine_critical_priority_waits_total", ()) in scraped
    assert scraped[("tradelab_bridge_pending_limit", ())] > 0
    assert scraped[("tradelab_bridge_history_capacity", ())] > 0
    for name in ("clients", "pending_dropped", "resyncs", "dropped", "write_timeouts"):
        assert scraped[(f"tradelab_bridge_{name}", ())] == 0
