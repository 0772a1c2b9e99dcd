"""Option chain pricing: scalar (option by option) vs vectorized (one numpy call), and IV solves.

Figures (medians over interleaved rounds, all measured in this run):
  chains_per_s   price + greeks of a chain of --strikes strikes, CE and PE, at once:
                 scalar `pricing.bs_greeks` per option vs `chain.chain_greeks`; ratio
  iv_per_s       implied volatility solves: `pricing.implied_vol` (Let's Be Rational) vs
                 `scipy.optimize.brentq` on the scalar price; ratio, and worst error of each
  feed_ticks_per_s  SimulatedFeed.ticks() flat out, nothing consuming (the pricing ceiling)

Usage: .venv/bin/python benchmarks/chain.py [--strikes 41] [--rounds 5] [--json]
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from itertools import islice
from typing import Any

import click
import numpy as np
from scipy.optimize import brentq

from tradelab.benchmarking import format_table, machine_info, median
from tradelab.market.chain import chain_greeks
from tradelab.market.feeds import SimulatedFeed, SimulatedFeedConfig
from tradelab.market.pricing import bs_greeks, bs_price, implied_vol

SPOT, YEARS, RATE = 24013.5, 9 / 365, 0.065


def make_chain(strikes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`strikes` strikes 50 apart around the spot, each as CE and PE, with a smile."""
    atm = round(SPOT / 50) * 50
    grid = atm + 50.0 * (np.arange(strikes) - strikes // 2)
    strike = np.concatenate([grid, grid])
    calls = np.repeat([True, False], strikes)
    vols = np.clip(0.13 - 0.1 * np.log(strike / SPOT) + 3.0 * np.log(strike / SPOT) ** 2, 0.02, 3)
    return strike, calls, vols


def scalar_chain(strike: np.ndarray, calls: np.ndarray, vols: np.ndarray) -> Callable[[int], Any]:
    rows = list(zip(strike.tolist(), calls.tolist(), vols.tolist(), strict=True))

    def run(n: int) -> None:
        for _ in range(n):
            for k, c, v in rows:
                bs_greeks(SPOT, k, YEARS, RATE, v, c)

    return run


def vector_chain(strike: np.ndarray, calls: np.ndarray, vols: np.ndarray) -> Callable[[int], Any]:
    def run(n: int) -> None:
        for _ in range(n):
            chain_greeks(SPOT, strike, YEARS, RATE, vols, calls)

    return run


def iv_problems(strike: np.ndarray, calls: np.ndarray, vols: np.ndarray) -> list[tuple]:
    out = []
    for k, c, v in zip(strike.tolist(), calls.tolist(), vols.tolist(), strict=True):
        price = bs_price(SPOT, k, YEARS, RATE, v, c)
        low = max((SPOT - k * math.exp(-RATE * YEARS)) * (1 if c else -1), 0.0)
        if price - low > 1e-6 * SPOT:  # vol identifiable: some time value left
            out.append((price, k, c, v))
    return out


def brent_iv(price: float, strike: float, call: bool) -> float:
    return brentq(
        lambda v: bs_price(SPOT, strike, YEARS, RATE, v, call) - price, 1e-6, 5.0, xtol=1e-12
    )


def iv_solver(problems: list[tuple], solve: Callable[[float, float, bool], float]):
    errors: list[float] = []

    def run(n: int) -> None:
        done = 0
        while done < n:
            for price, k, c, v in problems[: n - done]:
                errors.append(abs(solve(price, k, c) - v))
            done += min(len(problems), n - done)

    return run, errors


def feed_ticks(ticks: int, strikes_each_side: int) -> Callable[[int], Any]:
    def run(n: int) -> None:
        config = SimulatedFeedConfig(
            seed=n, strikes_each_side=strikes_each_side, as_fast_as_possible=True
        )
        for _ in islice(SimulatedFeed(config).ticks(), ticks):
            pass

    return run


@click.command(help=__doc__.splitlines()[0])
@click.option("--strikes", default=41, show_default=True, help="strikes in the chain (odd)")
@click.option("--chains", default=200, show_default=True, help="chains priced per sample")
@click.option("--solves", default=2000, show_default=True, help="IV solves per sample")
@click.option("--ticks", default=50_000, show_default=True, help="feed ticks per sample")
@click.option("--feed-strikes", default=5, show_default=True, help="feed strikes each side")
@click.option("--rounds", default=5, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
def main(
    strikes: int,
    chains: int,
    solves: int,
    ticks: int,
    feed_strikes: int,
    rounds: int,
    as_json: bool,
) -> None:
    strike, calls, vols = make_chain(strikes)
    problems = iv_problems(strike, calls, vols)
    lbr_run, lbr_err = iv_solver(problems, lambda p, k, c: implied_vol(p, SPOT, k, YEARS, RATE, c))
    brent_run, brent_err = iv_solver(problems, brent_iv)
    # (name, ops per sample, run); every round runs every case once, in this order.
    cases: list[tuple[str, int, Callable[[int], Any]]] = [
        ("chain_scalar", chains, scalar_chain(strike, calls, vols)),
        ("chain_vector", chains, vector_chain(strike, calls, vols)),
        ("iv_lets_be_rational", solves, lbr_run),
        ("iv_brentq", solves, brent_run),
        ("feed_ticks", ticks, feed_ticks(ticks, feed_strikes)),
    ]
    for _, n, run in cases:  # warm-up: imports, caches, first-call costs
        run(max(1, n // 20))
    samples: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    for _ in range(rounds):
        for name, n, run in cases:
            started = time.perf_counter()
            run(n)
            samples[name].append(n / (time.perf_counter() - started))
    rate = {name: median(values) for name, values in samples.items()}
    check = chain_greeks(SPOT, strike, YEARS, RATE, vols, calls)
    worst_gap = max(
        abs(bs_greeks(SPOT, k, YEARS, RATE, v, c).price - p)
        for k, c, v, p in zip(strike, calls, vols, check.price, strict=True)
    )
    figures = {
        "chain_scalar_per_s": rate["chain_scalar"],
        "chain_vector_per_s": rate["chain_vector"],
        "chain_vector_vs_scalar_ratio": rate["chain_vector"] / rate["chain_scalar"],
        "chain_max_price_gap": worst_gap,
        "iv_lets_be_rational_per_s": rate["iv_lets_be_rational"],
        "iv_brentq_per_s": rate["iv_brentq"],
        "iv_lbr_vs_brentq_ratio": rate["iv_lets_be_rational"] / rate["iv_brentq"],
        "iv_lets_be_rational_max_error": max(lbr_err),
        "iv_brentq_max_error": max(brent_err),
        "feed_ticks_per_s": rate["feed_ticks"],
    }
    result = {
        "benchmark": "chain",
        "config": {
            "strikes": strikes,
            "options": len(strike),
            "chains": chains,
            "solves": solves,
            "iv_problems": len(problems),
            "ticks": ticks,
            "feed_instruments": 1 + 2 * (2 * feed_strikes + 1),
            "rounds": rounds,
        },
        "figures": figures,
        "samples": samples,
        "machine": machine_info(),
    }
    if as_json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return
    rows = [
        [f"price+greeks, {len(strike)} options, scalar", rate["chain_scalar"], "chains/s"],
        [f"price+greeks, {len(strike)} options, vectorized", rate["chain_vector"], "chains/s"],
        ["implied vol, Let's Be Rational", rate["iv_lets_be_rational"], "solves/s"],
        ["implied vol, scipy brentq", rate["iv_brentq"], "solves/s"],
        ["simulated feed, flat out", rate["feed_ticks"], "ticks/s"],
    ]
    print(format_table(["case", "rate", "unit"], rows))
    print(
        f"vectorized / scalar: {figures['chain_vector_vs_scalar_ratio']:.1f}x "
        f"(max price gap {worst_gap:.2e}); LBR / brentq: "
        f"{figures['iv_lbr_vs_brentq_ratio']:.2f}x (max IV error "
        f"{figures['iv_lets_be_rational_max_error']:.1e} vs "
        f"{figures['iv_brentq_max_error']:.1e})"
    )


if __name__ == "__main__":
    main()
