"""Event bus throughput: tradelab's EventBus beside a plain call, a naive bus, pyee and blinker.

Every contender gets the same do-nothing handler(s) and publishes `n` events per round on one
topic; rounds are interleaved and medians reported. tradelab runs with history, metrics and
handler isolation on. Single-threaded; run it on a quiet machine and read ratios, not absolutes.
"""

from __future__ import annotations

import fnmatch
import gc
import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

import click

from tradelab.benchmarking import Case, format_table, machine_info, median, run_interleaved
from tradelab.benchmarking.options import bench_options, command
from tradelab.bus import EventBus
from tradelab.errors import InvalidInputError
from tradelab.events import Event, TopicRegistry, TopicSpec

TOPIC = "market.tick"
# A second transient topic: journaled ones reach a bus only through the engine's kernel.
OTHER_TOPIC = "market.depth"
PAYLOAD = {"symbol": "NIFTY", "ltp": 24012.5}
NAIVE = "naive dict+lock bus"
TARGETS = {  # publishes/s this machine should reach with metrics, history, isolation on
    "1 subscriber": 2.4e6,
    "10 subscribers": 1.0e6,
}


def _handler(event: Any) -> None:
    return None


def _make_handlers(count: int) -> list[Callable[[Any], None]]:
    """Distinct do-nothing functions: N subscribers are N different handlers, as in real use."""

    def make() -> Callable[[Any], None]:
        def handler(event: Any) -> None:
            return None

        return handler

    return [make() for _ in range(count)]


def _blinker_receiver(sender: Any) -> None:
    return None


class NaiveBus:
    """The baseline: a dict of handler lists behind a lock, no isolation, no history."""

    def __init__(self, wildcard: bool = False) -> None:
        self._lock = threading.Lock()
        self._subs: dict[str, list[Callable[[Any], Any]]] = {}
        self._wildcard = wildcard

    def subscribe(self, pattern: str, handler: Callable[[Any], Any]) -> None:
        with self._lock:
            self._subs.setdefault(pattern, []).append(handler)

    def publish(self, topic: str, payload: Any) -> None:
        with self._lock:
            if self._wildcard:  # what a naive wildcard bus does: match every pattern each time
                handlers = [
                    h for p, hs in self._subs.items() if fnmatch.fnmatchcase(topic, p) for h in hs
                ]
            else:
                handlers = list(self._subs.get(topic, ()))
        for handler in handlers:
            handler(payload)


def _loop(call: Callable[..., Any], *args: Any) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            call(*args)

    return run


def _loop1(call: Callable[[Any], Any], arg: Any) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            call(arg)

    return run


def _loop2(call: Callable[[Any, Any], Any], a: Any, b: Any) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            call(a, b)

    return run


def _registry() -> TopicRegistry:
    registry = TopicRegistry()
    registry.register(TopicSpec(OTHER_TOPIC, transient=True, description="order book depth"))
    return registry


def _tradelab_bus(pattern: str, handlers: list[Callable[[Any], None]]) -> EventBus:
    bus = EventBus(registry=_registry(), name="bench")
    for handler in handlers:
        bus.subscribe(pattern, handler)
    return bus


def _cases_for(scenario: str, subscribers: int, pattern: str, peers: bool) -> list[Case]:
    event = Event(0, 0, TOPIC, "", PAYLOAD)
    cases: list[Case] = []
    handlers = _make_handlers(subscribers)

    def plain(n: int) -> None:
        for _ in range(n):
            for h in handlers:
                h(event)

    cases.append(Case(scenario, "plain function call (floor)", plain))
    naive = NaiveBus(wildcard=pattern != TOPIC)
    for handler in handlers:
        naive.subscribe(pattern, handler)
    name = NAIVE if pattern == TOPIC else NAIVE + " (fnmatch scan)"
    cases.append(Case(scenario, name, _loop2(naive.publish, TOPIC, PAYLOAD)))
    if peers and pattern == TOPIC:
        try:
            import pyee

            emitter = pyee.EventEmitter()
            for handler in handlers:
                emitter.add_listener(TOPIC, handler)
            cases.append(
                Case(scenario, "pyee EventEmitter.emit", _loop2(emitter.emit, TOPIC, PAYLOAD))
            )
        except ImportError:
            pass
        try:
            import blinker

            signal = blinker.Signal()
            receivers = [_make_receiver() for _ in range(subscribers)]
            for receiver in receivers:
                signal.connect(receiver, weak=False)
            cases.append(Case(scenario, "blinker Signal.send", _loop1(signal.send, PAYLOAD)))
        except ImportError:
            pass
    bus = _tradelab_bus(pattern, handlers)
    cases.append(Case(scenario, "tradelab publish_event(Event)", _loop1(bus.publish_event, event)))
    bus2 = _tradelab_bus(pattern, handlers)
    cases.append(
        Case(scenario, "tradelab publish(topic, payload)", _loop2(bus2.publish, TOPIC, PAYLOAD))
    )
    return cases


def _make_receiver() -> Callable[[Any], None]:
    def receiver(sender: Any) -> None:
        return None

    return receiver


def _reentrant_cases() -> list[Case]:
    """Cost of a handler that publishes: queued (tradelab) vs two top-level publishes."""
    scenario = "handler publishes 1 more"
    outer = Event(0, 0, TOPIC, "", PAYLOAD)
    inner = Event(0, 0, OTHER_TOPIC, "", PAYLOAD)
    nested = EventBus(registry=_registry(), name="bench-nested")
    nested.subscribe(TOPIC, lambda event: nested.publish_event(inner))
    nested.subscribe(OTHER_TOPIC, _handler)
    flat = EventBus(registry=_registry(), name="bench-flat")
    flat.subscribe(TOPIC, _handler)
    flat.subscribe(OTHER_TOPIC, _handler)

    def two_publishes(n: int, publish: Callable[[Event], None] = flat.publish_event) -> None:
        for _ in range(n):
            publish(outer)
            publish(inner)

    naive = NaiveBus()
    naive.subscribe(TOPIC, lambda payload: naive.publish(OTHER_TOPIC, payload))
    naive.subscribe(OTHER_TOPIC, _handler)
    return [
        Case(scenario, NAIVE + " (nested call)", _loop2(naive.publish, TOPIC, PAYLOAD)),
        Case(scenario, "tradelab 2 top-level publish_event", two_publishes),
        Case(scenario, "tradelab publish_event, inner queued", _loop1(nested.publish_event, outer)),
    ]


def run_bus_benchmark(n: int = 1_000_000, rounds: int = 5, peers: bool = True) -> dict[str, Any]:
    """Run every scenario; return a JSON-ready dict with per-case medians and ratios."""
    scenarios: list[tuple[str, int, str]] = [
        ("1 subscriber", 1, TOPIC),
        ("10 subscribers", 10, TOPIC),
        ("1 wildcard subscriber", 1, "market.*"),
    ]
    cases: list[Case] = []
    for scenario, subscribers, pattern in scenarios:
        cases += _cases_for(scenario, subscribers, pattern, peers)
    cases += _reentrant_cases()
    gc.collect()
    run_interleaved(cases, n, rounds, warmup_n=min(n, 20_000))
    results = []
    for case in cases:
        ops = median(case.ops_per_s(n))
        results.append(
            {
                "scenario": case.scenario,
                "contender": case.contender,
                "ops_per_s_median": ops,
                "ns_per_op_median": 1e9 / ops,
                "rounds_ops_per_s": case.ops_per_s(n),
            }
        )
    for row in results:
        base = next(
            (
                r
                for r in results
                if r["scenario"] == row["scenario"] and r["contender"].startswith(NAIVE)
            ),
            None,
        )
        # The median of per-round ratios: both sides of a ratio ran in the same round, so load
        # from other processes on a shared machine mostly cancels out.
        row["ratio_vs_naive"] = (
            median(
                [
                    mine / theirs
                    for mine, theirs in zip(
                        row["rounds_ops_per_s"], base["rounds_ops_per_s"], strict=True
                    )
                ]
            )
            if base
            else None
        )
    return {
        "benchmark": "bus",
        "n": n,
        "rounds": rounds,
        "machine": machine_info(),
        "results": results,
        "summary": _summary(results),
    }


def _summary(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    def ops(scenario: str, contender: str) -> float | None:
        for row in results:
            if row["scenario"] == scenario and row["contender"] == contender:
                return row["ops_per_s_median"]
        return None

    summary: dict[str, Any] = {}
    for scenario, target in TARGETS.items():
        for contender in ("tradelab publish_event(Event)", "tradelab publish(topic, payload)"):
            got = ops(scenario, contender)
            summary[f"{scenario} / {contender}"] = {
                "ops_per_s": got,
                "target": target,
                "met": bool(got and got >= target),
            }
    one = ops("1 subscriber", "tradelab publish_event(Event)")
    ten = ops("10 subscribers", "tradelab publish_event(Event)")
    wild = ops("1 wildcard subscriber", "tradelab publish_event(Event)")
    if one and ten:
        summary["ns_per_extra_subscriber"] = (1e9 / ten - 1e9 / one) / 9
    if one and wild:
        summary["wildcard_vs_exact"] = wild / one
    return summary


def render_table(result: dict[str, Any]) -> str:
    rows = [
        (
            r["scenario"],
            r["contender"],
            r["ops_per_s_median"],
            r["ns_per_op_median"],
            r["ratio_vs_naive"],
        )
        for r in result["results"]
    ]
    table = format_table(["scenario", "contender", "ops/s (median)", "ns/op", "vs naive"], rows)
    m = result["machine"]
    lines = [
        f"bus benchmark: n={result['n']:,} x {result['rounds']} interleaved rounds; "
        f"Python {m['python']}, {m['cpus']} cpus, {m['memory_gib']} GiB, {m['date']}",
        "",
        table,
        "",
    ]
    for name, value in result["summary"].items():
        if isinstance(value, dict):
            got = value["ops_per_s"]
            verdict = "met" if value["met"] else "MISSED"
            lines.append(f"{name}: {got:,.0f}/s (target {value['target']:,.0f}/s) {verdict}")
        else:
            lines.append(f"{name}: {value:.2f}")
    return "\n".join(lines)


@command(__doc__)
@bench_options(1_000_000, "Publishes per round and contender.")
@click.option("--no-peers", is_flag=True, help="Skip pyee and blinker.")
def main(as_json: bool, rounds: int, n: int, no_peers: bool) -> None:
    emit(n, rounds, as_json=as_json, peers=not no_peers)


def emit(n: int, rounds: int, *, as_json: bool, peers: bool = True) -> dict[str, Any]:
    """Run and print (table or JSON); shared by `benchmarks/bus.py` and `tradelab bench bus`."""
    if n < 1 or rounds < 1:
        raise InvalidInputError(f"n {n} and rounds {rounds} must both be >= 1")
    result = run_bus_benchmark(n, rounds, peers)
    print(json.dumps(result, indent=2) if as_json else render_table(result))
    return result
