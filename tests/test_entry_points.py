"""The benchmark and script entry points: each answers --help, the command lines that
benchmarks/README.md and the scripts' usage lines document still parse, and a cheap one runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = sorted(
    str(p.relative_to(ROOT)) for p in [*ROOT.glob("benchmarks/*.py"), *ROOT.glob("scripts/*.py")]
)
# As benchmarks/README.md and each script's docstring write them (options only, no values
# that would need a long run to check: parsing is what is tested here).
DOCUMENTED = [
    "benchmarks/book.py --rounds 5",
    "benchmarks/book.py --marks 20000 --rounds 5 --json",
    "benchmarks/bus.py --json",
    "benchmarks/bus.py --n 1000000 --rounds 5 --json",
    "benchmarks/critical_path.py --json",
    "benchmarks/critical_path.py --events 2000 --rounds 5 --stream-rate 40000 "
    "--stream-seconds 3 --feeders 2 --json",
    "benchmarks/feed.py --json",
    "benchmarks/feed.py --rate 10000 --seconds 3 --ticks 50000 --rounds 3 --speed 60 "
    "--strikes 5 --json",
    "benchmarks/journal.py --events 200000 --rounds 3 --json",
    "benchmarks/journal.py --events 200000 --rounds 3 --paced-rate 120000",
    "benchmarks/journal.py --paced-rate 100000 --paced-seconds 3 --brokers 8 "
    "--layouts thread,process,pinned --json",
    "benchmarks/overload.py --seconds 5 --json",
    "benchmarks/overload.py --seconds 60 --no-flood --rss-cap-mb 1500 --stop-timeout 60 "
    "--ack-timeout 30",
    "benchmarks/push_latency.py --target floor --quick --json",
    "benchmarks/push_latency.py --target console --seconds 60 --steady-seconds 10 "
    "--storm-rate 1000 --cycles 100 --json",
    "benchmarks/recovery.py --events 1000000 --rounds 3 --json",
    "benchmarks/replica.py --rounds 3 --no-full-replicas --json",
    "benchmarks/replica.py --throughput-only --no-full-replicas --events 300000 --rounds 7 --json",
    "benchmarks/backtest.py --bars 100000 --rounds 1 --json",
    "benchmarks/soak.py --minutes 3 --rate 2000 --sample 5 --thread-writer --json",
    "benchmarks/store.py --rounds 7 --json",
    "benchmarks/store.py --n 100000 --rounds 5 --rate-hz 20 --json",
    "scripts/crash_loop.py --rounds 100 --seed 3",
    "scripts/crash_loop.py --rounds 100 --dir /tmp --seed 1 --min-kill 0.2 --max-kill 1.5",
    "scripts/make_sample_data.py --out data",
]
# Imports each entry point as its file (its directory first on sys.path, as `python file` does)
# and lets click parse the line without running the command.
PARSE = """
import importlib.util, json, shlex, sys
from pathlib import Path
parsed = {}
for line in json.loads(sys.argv[2]):
    script, *args = shlex.split(line)
    path = Path(sys.argv[1]) / script
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location("entry_" + path.stem, path)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    parsed[line] = module.main.make_context(path.name, args).params
print(json.dumps(parsed, default=str))
"""


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this tree's tradelab, as the README runs it
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_every_entry_point_is_listed():
    assert len(ENTRY_POINTS) >= 11 and "benchmarks/bus.py" in ENTRY_POINTS


@pytest.mark.parametrize("script", ENTRY_POINTS)
def test_entry_point_answers_help(script):
    done = run(script, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: ") and "--help" in done.stdout


def test_documented_command_lines_still_parse():
    done = run("-c", PARSE, str(ROOT), json.dumps(DOCUMENTED), timeout=120)
    assert done.returncode == 0, done.stderr
    parsed = json.loads(done.stdout)
    assert parsed["benchmarks/journal.py --events 200000 --rounds 3 --json"]["as_json"] is True
    assert parsed["benchmarks/store.py --rounds 7 --json"]["rounds"] == 7
    layouts = parsed[DOCUMENTED[10]]["layouts"]
    assert layouts == ["thread", "process", "pinned"]
    assert parsed["scripts/crash_loop.py --rounds 100 --seed 3"]["seed"] == 3


@pytest.mark.parametrize(
    "args",
    [
        ("benchmarks/bus.py", "--rounds", "0"),
        ("benchmarks/journal.py", "--layouts", "thread,disk"),
        ("benchmarks/overload.py", "--seconds", "-1"),
    ],
)
def test_out_of_range_options_are_usage_errors_naming_the_option(args):
    done = run(*args)
    assert done.returncode == 2
    assert args[1] in done.stderr and args[2] in done.stderr


def test_bus_benchmark_runs_and_prints_one_json_object():
    done = run("benchmarks/bus.py", "--n", "2000", "--rounds", "1", "--no-peers", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["n"] == 2000 and result["rounds"] == 1
    contenders = {r["contender"] for r in result["results"]}
    assert not any("pyee" in c or "blinker" in c for c in contenders)
    assert all(r["ops_per_s_median"] > 0 for r in result["results"])


def test_percentiles_interpolate_between_samples_and_handle_few_values():
    from tradelab.benchmarking import percentiles

    assert percentiles(list(range(1, 101)), 50, 99) == [50.5, 99.01]
    assert percentiles([0.004], 50, 99) == [0.004, 0.004]
    assert all(v != v for v in percentiles([], 50))  # nan: no samples, no figure


def test_benchmark_tables_write_every_rate_alike():
    from tradelab.benchmarking import format_table

    table = format_table(["what", "per s"], [["a", 70455.2], ["b", 153192.0], ["c", 12.345]])
    assert [line.split()[-1] for line in table.splitlines()[2:]] == ["70,455", "153,192", "12.35"]


def test_tradelab_bench_commands_share_the_scripts_options():
    for name in ("bus", "store"):
        done = run("-m", "tradelab.cli", "bench", name, "--help")
        assert done.returncode == 0, done.stderr
        assert all(flag in done.stdout for flag in ("--json", "--rounds", "--n "))
    done = run("-m", "tradelab.cli", "bench", "bus", "--n", "2000", "--rounds", "1", "--no-peers")
    assert done.returncode == 0, done.stderr
    assert "1 subscriber" in done.stdout and "wildcard_vs_exact" in done.stdout


def test_python_dash_m_tradelab_is_the_tradelab_command():
    """Where the `tradelab` script is not on PATH (a bare checkout, another venv's python)."""
    from tradelab import __version__

    done = run("-m", "tradelab", "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"tradelab, version {__version__}"
    done = run("-m", "tradelab", "verify", "/nonexistent/journal.duckdb")
    assert done.returncode == 2 and "journal.duckdb" in done.stderr
