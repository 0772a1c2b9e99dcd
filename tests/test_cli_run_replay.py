"""`tradelab run` replays: trades, determinism, bars, several days, restarts that play on."""

from __future__ import annotations

import math
from datetime import datetime

import pytest

from tests.run_command import SAMPLE, invoke
from tradelab.analytics import Analytics
from tradelab.cli import EXIT_USAGE
from tradelab.journal import JournalReader
from tradelab.market.clock import ist_date
from tradelab.market.instruments import IST


def test_replay_at_max_speed_trades_the_chosen_strategy_with_its_params(tmp_path):
    journal = tmp_path / "r.duckdb"
    result = invoke(
        "--feed", "replay", SAMPLE, "--speed", "max", "--strategy", "sma_cross",
        "--param", "fast=3", "--param", "slow=8", "--param", "symbol=NIFTY",
        "--journal", str(journal), "--every", "0.2",
    )  # fmt: skip
    assert result.exit_code == 0, (result.output, result.stderr)
    assert "the replayed session ended" in result.output
    # Progress lines start "seq " (what scripts wait for); the last one shows the session done.
    progress = [line for line in result.output.splitlines() if line.startswith("seq ")]
    assert progress and "[####################] 100%" in progress[-1]
    assert (
        "this run's strategy: sma_cross)" in result.output
        and "stopped cleanly at seq" in result.output
    )
    reader = JournalReader(journal)
    [started] = [
        e.payload
        for e in reader.events(topic="runner.state_changed")
        if e.payload["state"] == "running"
    ]
    assert started["strategy"] == "sma_cross"
    assert (started["params"]["fast"], started["params"]["slow"]) == (3, 8)
    fills = list(reader.events(topic="trade.executed"))
    assert fills and {f.payload["symbol"] for f in fills} == {"NIFTY"}


def test_a_users_own_strategy_file_trades_a_session_with_its_params(tmp_path):
    (tmp_path / "mine.py").write_text(
        "import param\n"
        "from tradelab.runner import Strategy\n\n"
        "S = 'NIFTY25N1824000CE'\n\n"
        "class BuyOnce(Strategy):\n"
        "    strategy_name = 'buy_once'\n"
        "    quantity = param.Integer(default=1)\n\n"
        "    def on_bar(self, ctx, bar):\n"
        "        if bar['symbol'] == S and not ctx.position(S) "
        "and not ctx.working(S):\n"
        "            ctx.buy(S, self.quantity)\n"
    )
    journal = tmp_path / "r.duckdb"
    spec = f"{tmp_path / 'mine.py'}:BuyOnce"
    result = invoke(
        "--feed", "replay", SAMPLE, "--speed", "max", "--strategy", spec,
        "--param", "quantity=75", "--journal", str(journal),
    )  # fmt: skip
    assert result.exit_code == 0, (result.output, result.stderr)
    fills = [e.payload for e in JournalReader(journal).events(topic="trade.executed")]
    assert [(f["strategy"], f["side"], f["quantity"]) for f in fills] == [("buy_once", "BUY", 75)]
    assert (
        "live book (this journal's last 5 sessions; this run's strategy: buy_once): 1 order, "
        "1 fill" in result.output
    )
    assert fills[0]["symbol"] == "NIFTY25N1824000CE"
    wrong = invoke("--strategy", spec, "--param", "qty=2", "--journal", str(tmp_path / "x.duckdb"))
    assert wrong.exit_code == EXIT_USAGE
    assert "has no parameter 'qty'; it has quantity" in wrong.stderr


def test_max_speed_replay_gives_the_same_trades_and_journal_run_after_run(tmp_path):
    # The feed plays the next timestamp only once the runner has handled everything before it,
    # so thread timing cannot move a fill: same file and strategy, same journal content.
    from tradelab.runner.backtest import content_hash

    runs = []
    for name in ("a", "b"):
        journal = tmp_path / f"{name}.duckdb"
        result = invoke(
            "--feed", "replay", SAMPLE, "--speed", "max", "--strategy", "sma_cross",
            "--param", "fast=3", "--param", "slow=8", "--param", "symbol=NIFTY",
            "--journal", str(journal), "--every", "0.5",
        )  # fmt: skip
        assert result.exit_code == 0, (result.output, result.stderr)
        fills = [e.payload for e in JournalReader(journal).events(topic="trade.executed")]
        runs.append((fills, content_hash(journal)))
    (fills_a, hash_a), (fills_b, hash_b) = runs
    assert len(fills_a) >= 2
    assert fills_a == fills_b
    assert hash_a == hash_b


def test_max_speed_sim_session_runs_in_lockstep_and_gives_the_same_journal_run_after_run(
    tmp_path,
):
    # Unpaced, the simulated feed used to race ahead of the strategy: its fills landed wherever
    # the feed happened to be. In lockstep every tick is handled before the next is played, so
    # the same seed gives the same orders, fills and journal content.
    from tradelab.runner.backtest import content_hash

    runs = []
    for name in ("a", "b"):
        journal = tmp_path / f"{name}.duckdb"
        result = invoke(
            "--speed", "max", "--ticks-per-second", "5", "--strategy", "short_straddle",
            "--journal", str(journal), "--every", "0.5",
        )  # fmt: skip
        assert result.exit_code == 0, (result.output, result.stderr)
        assert "the simulated session ended" in result.output
        fills = [e.payload for e in JournalReader(journal).events(topic="trade.executed")]
        runs.append((fills, content_hash(journal)))
    (fills_a, hash_a), (fills_b, hash_b) = runs
    assert len(fills_a) >= 2  # the straddle's two legs in, and out again
    assert fills_a == fills_b
    assert hash_a == hash_b


@pytest.fixture(scope="module")
def sma_replay(tmp_path_factory) -> JournalReader:
    """The sample replayed at max speed with sma_cross 3/8 on NIFTY: its journal."""
    journal = tmp_path_factory.mktemp("sma") / "r.duckdb"
    result = invoke(
        "--feed", "replay", SAMPLE, "--speed", "max", "--strategy", "sma_cross",
        "--param", "fast=3", "--param", "slow=8", "--param", "symbol=NIFTY",
        "--journal", str(journal),
    )  # fmt: skip
    assert result.exit_code == 0, (result.output, result.stderr)
    return JournalReader(journal)


def test_a_replay_builds_its_files_own_bars_and_sma_cross_trades_one_series(sma_replay):
    # The sample holds 1-minute bars; the session builds 15m and 1h by default. Replayed, it
    # builds 1m bars too, and sma_cross (interval '') trades the first series it sees, the
    # 1m one: with slow=8 its first fill comes within minutes, where 15m bars would take 2 h.
    reader = sma_replay
    bars = [e.payload for e in reader.events(topic="market.bar") if e.payload["symbol"] == "NIFTY"]
    assert {b["interval"] for b in bars} == {"1m", "15m", "1h"}
    first_1m = min(b["start"] for b in bars if b["interval"] == "1m")
    fills = [e.payload for e in reader.events(topic="trade.executed")]
    assert fills
    first_fill_ns = min(f["ts"] for f in fills)
    assert first_fill_ns - first_1m < 30 * 60 * 10**9, "sma_cross waited for 15m bars"
    assert len(fills) > 20  # a day of 1m crosses, not a handful of 15m/1h ones


@pytest.mark.parametrize("speed", ["max", "100000"])
def test_a_replay_of_several_days_is_one_session_a_day_with_its_own_daily_pnl(tmp_path, speed):
    rows = ["Date,Open,High,Low,Close"]
    for day in (3, 4, 5):  # 2025-11-03..05, Monday to Wednesday: 30 one-minute bars each
        for minute in range(30):
            price = 100 + (minute // 4 % 2) * 3 + day
            rows.append(f"2025-11-{day:02d} 09:{15 + minute:02d},{price},{price},{price},{price}")
    bars = tmp_path / "acme.csv"
    bars.write_text("\n".join(rows) + "\n")
    journal = tmp_path / "r.duckdb"
    result = invoke(
        "--feed", "replay", str(bars), "--speed", speed, "--strategy", "sma_cross",
        "--param", "fast=2", "--param", "slow=3", "--journal", str(journal),
    )  # fmt: skip
    assert result.exit_code == 0, (result.output, result.stderr)
    reader = JournalReader(journal)
    resets = [e.payload["session_date"] for e in reader.events(topic="pnl.session_reset")]
    assert resets == ["2025-11-03", "2025-11-04", "2025-11-05"]
    opened = [e.payload["session_date"] for e in reader.events(topic="market.session_opened")]
    closed = [e.payload["session_date"] for e in reader.events(topic="market.session_closed")]
    assert opened == closed == resets
    # No bar spans two days: each day's partial bars close with its session.
    for bar in reader.events(topic="market.bar"):
        start, end = bar.payload["start"], bar.payload["end"]
        assert ist_date(start) == ist_date(end - 1)
    store = Analytics(journal).state_at(ts="2025-11-06 00:00")
    assert store.get("pnl.daily")["session_date"] == "2025-11-05"


def test_a_max_speed_replay_stamps_a_fill_at_the_quote_it_filled_against(sma_replay):
    # sma_cross orders when a 1m bar closes, i.e. on the first tick of the next minute; the
    # broker fills at once against that tick's quote, so the fill carries that tick's time. The
    # replayed ticks are 15 s apart: a fill stamped with the next tick's time is 15 s late.
    reader = sma_replay
    bar_ends = {
        e.payload["end"]
        for e in reader.events(topic="market.bar")
        if e.payload["symbol"] == "NIFTY" and e.payload["interval"] == "1m"
    }
    fills = [e.payload for e in reader.events(topic="trade.executed")]
    assert len(fills) > 20
    late = [f["ts"] for f in fills if f["ts"] not in bar_ends]
    assert not late, f"{len(late)} of {len(fills)} fills stamped after the quote they took"


def test_a_replay_dated_before_1970_plays_every_bar_and_trades_and_resumes(tmp_path):
    """A clock before 1970 is negative: "nothing journaled yet" must not read as a time."""
    rows = ["timestamp,symbol,open,high,low,close,volume"]
    for i in range(120):
        hour, minute = divmod(9 * 60 + 15 + i, 60)
        close = 100 + 10 * math.sin(i / 4)
        rows.append(
            f"1962-11-12T{hour:02d}:{minute:02d}:00+05:30,OLD,"
            f"{close:.2f},{close + 1:.2f},{close - 1:.2f},{close:.2f},5"
        )
    bars = tmp_path / "old.csv"
    bars.write_text("\n".join(rows) + "\n")
    journal = tmp_path / "old.duckdb"
    args = ["--feed", "replay", str(bars), "--strategy", "sma_cross", "--param", "fast=3"]
    args += ["--param", "slow=8", "--speed", "max", "--journal", str(journal)]
    result = invoke(*args)
    assert result.exit_code == 0, (result.output, result.stderr)
    fills = JournalReader(journal).events(topic="trade.executed")
    assert len(fills) >= 2 and fills[0].payload["ts"] < 0
    again = invoke(*args)  # the restart resumes after the last mark: nothing played twice
    assert again.exit_code == 0, (again.output, again.stderr)
    assert len(JournalReader(journal).events(topic="trade.executed")) == len(fills)


ON_STOP_BUYER = """
from tradelab.runner import Strategy


class OnStopBuyer(Strategy):
    strategy_name = "on_stop_buyer"

    def on_stop(self, ctx):
        try:
            ctx.buy("ACME", 1, order_type="LIMIT", limit_price=600.0)
        except Exception as exc:
            ctx.log.warning("on_stop order refused: %s", exc)
"""


def ist_time(ts_ns):
    return datetime.fromtimestamp(ts_ns / 1e9, tz=IST)


def five_minute_bars(path, until, days=("2024-03-04",)):
    rows = ["Datetime,Open,High,Low,Close,Volume"]
    for day in days:
        minute = 9 * 60 + 15
        while minute <= until:
            price = 500 + (minute % 7)
            hhmm = f"{minute // 60:02d}:{minute % 60:02d}"
            rows.append(f"{day} {hhmm}:00,{price},{price},{price},{price},100")
            minute += 5
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")


def test_a_restart_plays_more_of_a_day_a_file_closed_and_an_order_after_the_close_is_refused(
    tmp_path,
):
    strategy = tmp_path / "buyer.py"
    strategy.write_text(ON_STOP_BUYER)
    morning, day = tmp_path / "a" / "ACME.csv", tmp_path / "b" / "ACME.csv"
    five_minute_bars(morning, 12 * 60)
    five_minute_bars(day, 15 * 60 + 25)
    journal = tmp_path / "r.duckdb"
    for bars in (morning, morning, day):
        result = invoke(
            "--feed", "replay", str(bars), "--speed", "max", "--journal", str(journal),
            "--strategy", f"{strategy}:OnStopBuyer",
        )  # fmt: skip
        assert result.exit_code == 0, (result.output, result.stderr)
        # Each run ends with the session closed: its on_stop order is after hours.
        assert "on_stop order refused: market is closed at 2024-03-04 15:30:00 IST" in (
            result.output + result.stderr
        )
    sessions = [
        (e.topic.rsplit("_", 1)[1], f"{ist_time(e.payload['ts']):%H:%M}")
        for e in JournalReader(journal).events()
        if e.topic.startswith("market.session_")
    ]
    # The morning file closed the day at its last bar; the same file again played nothing
    # more; the whole day's file opened it again for what the morning had not had.
    assert sessions == [("opened", "09:15"), ("closed", "12:05"), ("opened", "12:05"),
                        ("closed", "15:30")]  # fmt: skip


def sessions_of(journal):
    return [
        (e.topic.rsplit("_", 1)[1], f"{ist_time(e.payload['ts']):%d %H:%M}")
        for e in JournalReader(journal).events()
        if e.topic.startswith("market.session_")
    ]


@pytest.mark.parametrize("speed", ["max", "100000"])
def test_a_restart_whose_file_goes_on_to_later_days_opens_each_and_closes_it_at_1530(
    tmp_path, speed
):
    first_day, three_days = tmp_path / "a" / "ACME.csv", tmp_path / "b" / "ACME.csv"
    five_minute_bars(first_day, 15 * 60 + 25)
    five_minute_bars(three_days, 15 * 60 + 20, days=("2024-03-04", "2024-03-05", "2024-03-06"))
    journal = tmp_path / "r.duckdb"
    for bars in (first_day, three_days):
        result = invoke(
            "--feed", "replay", str(bars), "--speed", speed, "--journal", str(journal),
            "--strategy", "none",
        )  # fmt: skip
        assert result.exit_code == 0, (result.output, result.stderr)
    # Each later day is opened (its P&L started) and closed at the exchange's close, not at
    # its last tick (15:25); the last day at the file's end.
    assert sessions_of(journal) == [
        ("opened", "04 09:15"), ("closed", "04 15:30"), ("opened", "05 09:15"),
        ("closed", "05 15:30"), ("opened", "06 09:15"), ("closed", "06 15:25"),
    ]  # fmt: skip
    resets = [e.payload["session_date"] for e in JournalReader(journal).events()
              if e.topic == "pnl.session_reset"]  # fmt: skip
    assert resets == ["2024-03-04", "2024-03-05", "2024-03-06"]


def test_a_replay_of_30_minute_bars_builds_30m_bars_and_trades_them(tmp_path):
    # The README promises the file's own bar length; it used to be built only when it was
    # one of 1m/5m/15m/1h: a 30m file got 15m and 1h bars, and interval=30m was refused.
    rows = ["Date,Open,High,Low,Close"]
    for day in (3, 4, 5):
        for i in range(12):  # 09:15 .. 14:45, 30 minutes apart
            hour, minute = divmod(9 * 60 + 15 + 30 * i, 60)
            close = 100 + 5 * math.sin((day * 12 + i) / 2)
            rows.append(
                f"2025-11-{day:02d} {hour:02d}:{minute:02d},{close},{close},{close},{close}"
            )
    bars = tmp_path / "m30.csv"
    bars.write_text("\n".join(rows) + "\n")
    journal = tmp_path / "r.duckdb"
    result = invoke(
        "--feed", "replay", str(bars), "--speed", "max", "--strategy", "sma_cross",
        "--param", "fast=2", "--param", "slow=4", "--param", "interval=30m",
        "--journal", str(journal),
    )  # fmt: skip
    assert result.exit_code == 0, (result.output, result.stderr)
    reader = JournalReader(journal)
    own = [e.payload for e in reader.events(topic="market.bar") if e.payload["interval"] == "30m"]
    assert len(own) == 36
    assert all(b["end"] - b["start"] == 30 * 60 * 10**9 for b in own)
    # Each 30m bar is the file's bar again: built from its quotes, anchored at 09:15.
    assert [b["close"] for b in own] == [float(r.rsplit(",", 1)[1]) for r in rows[1:]]
    assert reader.events(topic="trade.executed")


def test_any_bar_length_up_to_an_hour_can_be_configured_and_is_built_from_the_0915_open(
    tmp_path,
):
    # lab.bar_intervals offered only 1m/5m/15m/1h: a 3-minute or 10-minute chart was refused.
    rows = ["Date,Open,High,Low,Close"]
    for minute in range(30):  # 09:15 .. 09:44, one bar a minute, closes 1..30
        rows.append(
            f"2025-11-03 09:{15 + minute:02d},{minute + 1},{minute + 1.5},{minute + 0.5},{minute + 1}"
        )
    bars = tmp_path / "m1.csv"
    bars.write_text("\n".join(rows) + "\n")
    config = tmp_path / "t.yaml"
    config.write_text("lab:\n  bar_intervals: [3m, 10m, 60m]\n")
    journal = tmp_path / "r.duckdb"
    result = invoke(
        "--config", str(config), "--feed", "replay", str(bars), "--speed", "max",
        "--strategy", "none", "--journal", str(journal),
    )  # fmt: skip
    assert result.exit_code == 0, (result.output, result.stderr)
    built = [e.payload for e in JournalReader(journal).events(topic="market.bar")]
    assert {b["interval"] for b in built} == {"1m", "3m", "10m", "60m"}  # as named
    three = [b for b in built if b["interval"] == "3m"]
    assert len(three) == 10
    open_ns = datetime(2025, 11, 3, 9, 15, tzinfo=IST).timestamp() * 10**9
    assert [(b["start"] - open_ns) / 60e9 for b in three] == [3.0 * i for i in range(10)]
    # Each 3m bar spans three of the file's bars: first open, last close, extremes between.
    assert [(b["open"], b["close"]) for b in three] == [(3 * i + 1, 3 * i + 3) for i in range(10)]


def test_a_bar_length_over_an_hour_is_refused_naming_the_setting(tmp_path):
    config = tmp_path / "t.yaml"
    config.write_text("lab:\n  bar_intervals: [15m, 2h]\n")
    journal = tmp_path / "r.duckdb"
    result = invoke("--config", str(config), "--duration", "0", "--journal", str(journal))
    assert result.exit_code == EXIT_USAGE, (result.output, result.stderr)
    assert "lab.bar_intervals" in result.stderr and "'2h' is not a bar length" in result.stderr
    assert not journal.exists()
