"""tradelab.yaml: the shipped example is what `tradelab config` prints, a file's values reach the
objects a session is built from, flags given override the file, and a bad key or value is one
usage error (exit 2) naming the dotted key and what it allows."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from tradelab.cli import EXIT_USAGE
from tradelab.cli import main as cli
from tradelab.errors import InvalidInputError
from tradelab.journal import JournalReader
from tradelab.settings import SECTIONS, load_settings, section_keys
from tradelab.settings_dump import dump_settings

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = "data/nifty_sample_1m.csv"


def write(tmp_path: Path, data: object) -> str:
    path = tmp_path / "tradelab.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return str(path)


def test_shipped_example_is_exactly_what_tradelab_config_prints():
    result = CliRunner().invoke(cli, ["config"])
    assert result.exit_code == 0, result.stderr
    shipped = (ROOT / "tradelab.example.yaml").read_text(encoding="utf-8")
    assert result.output == shipped, "regenerate: tradelab config > tradelab.example.yaml"


def test_printed_config_names_every_setting_with_its_doc_and_reads_back_unchanged(tmp_path):
    text = dump_settings()
    data = yaml.safe_load(text)
    assert list(data) == list(SECTIONS)
    for section in SECTIONS:
        assert list(data[section]) == section_keys(section)
        for key in section_keys(section):
            doc = " ".join(SECTIONS[section].param[key].doc.split())
            assert doc.split()[0] in text  # each setting's doc is a comment beside it
    result = CliRunner().invoke(cli, ["config", "--config", write(tmp_path, text)])
    assert result.exit_code == 0, result.stderr
    assert result.output == text


def test_a_files_values_show_in_the_printed_config_and_reach_the_lab(tmp_path):
    path = write(
        tmp_path,
        {
            "lab": {
                "journal_path": str(tmp_path / "j.duckdb"),
                "seed": 3,
                "strategy": "sma_cross",
                "strategy_params": {"fast": 3, "slow": "8"},
            },
            "engine": {"max_queued_events": 123, "writer_process": False},
            "sim_feed": {"spot": 25000.0, "session_date": date(2025, 11, 13)},
            "broker": {"slippage_ticks": 2},
            "risk": {"daily_loss_limit": 5000, "max_order_quantity": None},
            "reconciler": {"dry_run": True},
            "runner": {"inbox_limit": 500, "hook_stall_after_s": 0.5},
        },
    )
    printed = CliRunner().invoke(cli, ["config", "--config", path])
    assert printed.exit_code == 0, printed.stderr
    shown = yaml.safe_load(printed.output)
    assert shown["engine"]["max_queued_events"] == 123
    assert shown["lab"]["strategy_params"] == {"fast": 3, "slow": "8"}
    assert "sma_cross takes:" in printed.output  # the chosen strategy's parameters documented

    lab = load_settings(path).make_lab()
    try:
        assert lab.engine.config.max_queued_events == 123
        assert lab.engine.config.journal_path == str(tmp_path / "j.duckdb")
        assert lab.feed.config.spot == 25000.0 and lab.feed.config.seed == 3
        assert lab.feed.config.session_date == date(2025, 11, 13)
        assert lab.broker.config.slippage_ticks == 2
        assert lab.risk_config.daily_loss_limit == 5000
        assert lab.reconciler_config.dry_run is True
        assert lab.runner_config.inbox_limit == 500
        assert [(s.fast, s.slow) for s in lab.strategies] == [(3, 8)]
    finally:
        lab.broker.close()


def invoke_bad(tmp_path, data, command=("config",)):
    result = CliRunner().invoke(cli, [*command, "--config", write(tmp_path, data)])
    assert result.exit_code == EXIT_USAGE, (result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tradelab: error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("data", "named", "allowed"),
    [
        ({"engine": {"max_queued_events": 0}}, "engine.max_queued_events", "an integer >= 1"),
        ({"engine": {"max_queued_evnts": 5}}, "engine.max_queued_evnts", "max_queued_events"),
        ({"engine": {"wal_autocheckpoint": "lots"}}, "engine.wal_autocheckpoint", "lots"),
        ({"engine": {"journal_path": "x.duckdb"}}, "engine.journal_path", "lab.journal_path"),
        ({"lab": {"journal_path": ""}}, "lab.journal_path", "an empty path names no file"),
        ({"lab": {"feed": "live"}}, "lab.feed", "one of 'sim', 'replay'"),
        ({"lab": {"ticks_per_second": 2.5}}, "lab.ticks_per_second", "from 1 to 10000"),
        ({"lab": {"bar_intervals": ["2h"]}}, "lab.bar_intervals", "bar lengths of at most 1h"),
        ({"risk": {"daily_loss_limit": "a lot"}}, "risk.daily_loss_limit", "a number >= 0.0"),
        ({"risk": {"on_breach": "panic"}}, "risk.on_breach", "'halted', 'reducing'"),
        ({"reconciler": {"missed_fill": "x"}}, "reconciler.missed_fill", "'adopt', 'flag'"),
        ({"sim_feed": {"seed": 3}}, "sim_feed.seed", "lab.seed"),
        ({"broker": {"capital": -1}}, "broker.capital", "a number >= 0.0"),
        ({"runner": {"inbox_limit": 0}}, "runner.inbox_limit", "an integer >= 1"),
        ({"runner": {"hook_stall_after_s": 0}}, "runner.hook_stall_after_s", "a number > 0.0"),
        ({"lab": {"seed": True}}, "lab.seed", "a yes/no, not a number"),
        ("sim_feed: {session_date: '13 Nov'}", "sim_feed.session_date", "a date, YYYY-MM-DD"),
        ("sim_feed: {session_date: 2025-13-40}", "sim_feed.session_date", "month must be in"),
        ({"markets": {}}, "'markets'", "lab, engine, sim_feed"),
        ({"engine": [1, 2]}, "'engine'", "expected a mapping"),
        ({"lab": {"strategy": "sma"}}, "lab.strategy", "known: sma_cross, short_straddle, none"),
        ({"lab": {"strategy": "no_file.py:Mine"}}, "lab.strategy", "no file 'no_file.py'"),
        ({"lab": {"strategy_params": {"lots": 99}}}, "lab.strategy_params.lots", "at most 50"),
        ({"lab": {"strategy_params": {"lots": 2.5}}}, "lab.strategy_params.lots", "whole number"),
        ({"lab": {"strategy_params": {"fast": 3}}}, "lab.strategy_params.fast", "entry_time"),
        (
            {"lab": {"strategy": "sma_cross", "strategy_params": {"fast": "x"}}},
            "lab.strategy_params.fast",
            "'x' is not an integer",
        ),
        ("engine: [unclosed", "not valid YAML", "tradelab.yaml"),
        ("- a list", "holds a list", "expected a mapping"),
    ],
)
def test_a_bad_key_or_value_is_one_usage_error_naming_the_key_and_what_is_allowed(
    tmp_path, data, named, allowed
):
    line = invoke_bad(tmp_path, data)
    assert named in line and allowed in line, line


@pytest.mark.parametrize("journal_path", ["", "  "])
def test_an_empty_journal_path_is_a_usage_error_naming_the_setting_not_a_directory(
    tmp_path, journal_path
):
    line = invoke_bad(tmp_path, {"lab": {"journal_path": journal_path}}, ("run", "--duration", "0"))
    assert "lab.journal_path" in line and "an empty path names no file" in line, line
    assert "directory" not in line


def test_flags_given_override_the_file_and_the_file_sets_the_rest(tmp_path):
    file_journal, flag_journal = tmp_path / "file.duckdb", tmp_path / "flag.duckdb"
    path = write(
        tmp_path,
        {
            "lab": {
                "journal_path": str(file_journal),
                "feed": "replay",
                "replay_path": SAMPLE,
                "speed": 5.0,
                "strategy": "sma_cross",
                "strategy_params": {"fast": 3, "slow": 8, "symbol": "NIFTY"},
            },
            "engine": {"writer_process": False},
        },
    )
    result = CliRunner().invoke(
        cli,
        ["run", "--config", path, "--journal", str(flag_journal), "--speed", "max",
         "--param", "slow=9", "--every", "0.2"],
    )  # fmt: skip
    assert result.exit_code == 0, (result.output, result.stderr)
    assert "the replayed session ended" in result.output  # feed and file from the config
    assert flag_journal.exists() and not file_journal.exists()
    [started] = [
        e.payload
        for e in JournalReader(flag_journal).events(topic="runner.state_changed")
        if e.payload["state"] == "running"
    ]
    assert started["strategy"] == "sma_cross"
    assert (started["params"]["fast"], started["params"]["slow"]) == (3, 9)


def test_run_and_backtest_refuse_a_bad_config_before_opening_a_journal(tmp_path):
    journal = tmp_path / "j.duckdb"
    bad = {"engine": {"group_commit_ms": 5000}}
    line = invoke_bad(tmp_path, bad, ("run", "--journal", str(journal), "--duration", "0"))
    assert "engine.group_commit_ms" in line and "from 0.0 to 1000.0" in line
    command = ("backtest", SAMPLE, "--strategy", "sma_cross", "--symbol", "NIFTY")
    line = invoke_bad(tmp_path, bad, (*command, "--journal", str(journal)))
    assert "engine.group_commit_ms" in line
    assert not journal.exists()


def test_load_settings_overrides_are_checked_like_the_files_values():
    settings = load_settings(overrides={"lab.seed": 11, "risk.max_open_positions": 2})
    assert settings.lab.seed == 11 and settings.risk.max_open_positions == 2
    with pytest.raises(InvalidInputError, match=r"risk\.max_open_positions.*>= 0"):
        load_settings(overrides={"risk.max_open_positions": -1})


def test_a_strategy_given_on_the_command_line_does_not_take_the_files_other_strategy_params(
    tmp_path,
):
    path = write(tmp_path, {"lab": {"strategy": "sma_cross", "strategy_params": {"fast": 3}}})
    journal = tmp_path / "j.duckdb"
    result = CliRunner().invoke(
        cli,
        ["run", "--config", path, "--strategy", "short_straddle", "--journal", str(journal),
         "--duration", "0"],
    )  # fmt: skip
    assert result.exit_code == 0, (result.output, result.stderr)
    assert "this run's strategy: short_straddle)" in result.output


def test_a_strategy_file_named_in_the_yaml_is_found_beside_it(tmp_path, monkeypatch):
    from tradelab.settings import load_settings

    folder = tmp_path / "cfg"
    folder.mkdir()
    (folder / "mine.py").write_text(
        "from tradelab.runner import Strategy\n\nclass Mine(Strategy):\n    pass\n"
    )
    config = folder / "tradelab.yaml"
    config.write_text("lab:\n  strategy: mine.py:Mine\n")
    monkeypatch.chdir(tmp_path)  # not the YAML's folder
    assert load_settings(config).lab.strategy == f"{folder / 'mine.py'}:Mine"


def test_a_strategy_parameter_without_a_doc_is_printed_without_one(tmp_path):
    (tmp_path / "mine.py").write_text(
        "import param\nfrom tradelab.runner import Strategy\n\nclass Mine(Strategy):\n"
        "    size = param.Integer(default=1)\n"
        "    symbol = param.String(default='ABC', doc='Instrument traded.')\n"
    )
    path = write(tmp_path, {"lab": {"strategy": str(tmp_path / "mine.py") + ":Mine"}})
    printed = CliRunner().invoke(cli, ["config", "--config", path])
    assert printed.exit_code == 0, printed.stderr
    assert "#   size: [an integer; default 1]" in printed.output
    assert "#   symbol: Instrument traded. [text; default 'ABC']" in printed.output


def test_numbers_written_with_an_exponent_are_numbers_as_in_yaml_1_2(tmp_path):
    # PyYAML (YAML 1.1) reads `1e6` as text; a user means a million.
    path = write(tmp_path, "risk:\n  daily_loss_limit: 1e6\n  max_order_quantity: 2E3\n")
    settings = load_settings(path)
    assert settings.risk.daily_loss_limit == 1_000_000.0
    assert settings.risk.max_order_quantity == 2000
    with pytest.raises(InvalidInputError, match="max_order_quantity"):
        load_settings(write(tmp_path, "risk:\n  max_order_quantity: 2.5\n"))
    path = write(tmp_path, "risk:\n  max_total_notional: 2.5e5\n  max_order_notional: 1.0E3\n")
    settings = load_settings(path)
    assert (settings.risk.max_total_notional, settings.risk.max_order_notional) == (2.5e5, 1e3)


@pytest.mark.parametrize(
    "text",
    [
        "reconciler:\n  interval_s: .inf\n",
        "reconciler:\n  interval_s: 1e10\n",
        "engine:\n  checkpoint_idle_seconds: .inf\n",
        "engine:\n  checkpoint_idle_seconds: 1e10\n",
        "engine:\n  open_timeout_seconds: 1e12\n",
        "risk:\n  max_total_notional: .inf\n",
    ],
)
def test_infinite_or_endless_waits_are_refused_by_name(tmp_path, text):
    # An infinite interval passed param's bounds and killed the reconciler's thread at run
    # time (OverflowError), or reached the writer process as null.
    key = text.split("\n")[1].split(":")[0].strip()
    with pytest.raises(InvalidInputError, match=key):
        load_settings(write(tmp_path, text))


def test_an_engine_given_an_infinite_setting_in_python_is_refused_by_name():
    from tradelab.config import EngineConfig, config_with

    with pytest.raises(InvalidInputError, match="checkpoint_idle_seconds=inf.*not a finite"):
        config_with(None, {"checkpoint_idle_seconds": float("inf")})
    with pytest.raises(ValueError, match="segment_every_seconds"):  # param's bound: a day
        EngineConfig(segment_every_seconds=float("inf"))


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("lab:\n  seed: 1\nlab:\n  seed: 2\n", "'lab' is given twice"),
        ("lab:\n  seed: 1\n  seed: 2\n", "'seed' is given twice"),
        (b"\xff\xfe garbage\n", "is not UTF-8 text"),
    ],
)
def test_a_repeated_key_or_a_file_that_is_not_text_is_a_usage_error(tmp_path, text, named):
    path = tmp_path / "tradelab.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli, ["config", "--config", str(path)])
    assert result.exit_code == EXIT_USAGE and named in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("lab:\n  bar_intervals: []\n", "lab.bar_intervals in"),
        ("lab:\n  feed_stall_after_seconds: 2\n  as_fast_as_possible: true\n", "needs a paced"),
    ],
)
def test_config_refuses_the_settings_a_session_refuses_together(tmp_path, text, said):
    """`tradelab config` passed these files and `run` then refused them."""
    from click.testing import CliRunner

    from tradelab.cli import main as cli

    path = tmp_path / "tradelab.yaml"
    path.write_text(text)
    result = CliRunner().invoke(cli, ["config", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert said in result.stderr


def test_a_whole_float_for_an_integer_parameter_is_that_integer_everywhere(tmp_path):
    # A tool's 2.0 was refused from a file and Lab(strategy_params=) in param's words ("not
    # <class 'float'>"), taken elsewhere.
    from tradelab.lab_config import LabConfig, configured_strategies
    from tradelab.runner import make_strategy

    path = write(
        tmp_path, {"lab": {"strategy": "short_straddle", "strategy_params": {"lots": 2.0}}}
    )
    result = CliRunner().invoke(cli, ["config", "--config", path])
    assert result.exit_code == 0, result.stderr
    [straddle] = configured_strategies(LabConfig(strategy_params={"lots": 2.0}))
    assert straddle.lots == 2 and type(straddle.lots) is int
    assert make_strategy("short_straddle", {"lots": "2.0"}).lots == 2  # --param lots=2.0
    with pytest.raises(InvalidInputError, match="'1e300' is not an integer"):
        make_strategy("sma_cross", {"slow": "1e300"})  # not a 301-digit integer
