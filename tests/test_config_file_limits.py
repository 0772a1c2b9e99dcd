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
