"""A config file nested far too deep, or holding a huge value, is refused in one line."""

from __future__ import annotations

from click.testing import CliRunner

from tradelab.cli import main


def test_a_deeply_nested_config_is_one_usage_error(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text(
        "lab:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 400)) + "  " * 400 + "x: 1\n"
    )
    result = CliRunner().invoke(main, ["config", "--config", str(deep)])
    assert result.exit_code == 2
    assert "nested too deeply" in result.output and "Traceback" not in result.output


def test_a_huge_refused_value_is_not_echoed_whole(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("lab:\n  seed: " + "A" * 1_000_000 + "\n")
    result = CliRunner().invoke(main, ["config", "--config", str(big)])
    assert result.exit_code == 2 and "lab.seed" in result.output
    assert len(result.output) < 2_000 and "1,000,002 characters" in result.output


def test_settings_a_run_cannot_honour_are_refused_at_load_naming_the_bound(tmp_path):
    # They used to pass `tradelab config` and then fail the run: a traceback (OverflowError
    # from the bus's ring) and a writer that could not open the journal (DuckDB's limit).
    for key, value, allowed in (
        ("history_size", 10**20, "an integer from 0 to 10000000"),
        ("writer_memory_mb", 10**20, "an integer from 64 to 4194304"),
    ):
        config = tmp_path / f"{key}.yaml"
        config.write_text(f"engine:\n  {key}: {value}\n")
        result = CliRunner().invoke(main, ["config", "--config", str(config)])
        assert result.exit_code == 2, result.output
        assert f"engine.{key}" in result.output and allowed in result.output


def test_the_state_schema_version_is_the_codes_not_a_setting(tmp_path):
    # Set to 2, it wrote a journal this same tradelab then refused ("upgrade tradelab").
    config = tmp_path / "v2.yaml"
    config.write_text("engine:\n  state_schema_version: 2\n")
    result = CliRunner().invoke(
        main, ["run", "--config", str(config), "--journal", str(tmp_path / "j.duckdb")]
    )
    assert result.exit_code == 2
    assert "engine.state_schema_version" in result.output and "is not a setting" in result.output
    assert "delete this line" in result.output
    assert not (tmp_path / "j.duckdb").exists()
    dump = CliRunner().invoke(main, ["config"]).output
    assert "state_schema_version: " not in dump
    # A file `tradelab config` wrote before, with the code's own value, still loads.
    config.write_text("engine:\n  state_schema_version: 1\n")
    assert CliRunner().invoke(main, ["config", "--config", str(config)]).exit_code == 0
