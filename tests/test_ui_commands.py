"""Operator commands against a real running Lab: only operators act, every command names its user
in the journaled events, and bad arguments change nothing."""

from __future__ import annotations

import pytest
from test_lab import wait_for

from tradelab.broker.reconcile import ReconcilerConfig
from tradelab.lab import Lab
from tradelab.runner.examples import SmaCross
from tradelab.ui.commands import CommandRefused, OperatorCommands


def started_lab(path) -> Lab:
    return Lab(
        journal_path=str(path),
        ticks_per_second=10_000,
        speed=600.0,
        strikes_each_side=1,
        strategies=[SmaCross(fast=5, slow=20)],
        reconciler=ReconcilerConfig(settle_s=0.0, interval_s=3600, run_on_start=False),
    ).start()


@pytest.fixture
def lab(tmp_path):
    lab = started_lab(tmp_path / "lab.duckdb")
    # The strategy's start is applied (then `recorded` leaves it out even if published later).
    assert wait_for(lambda: lab.store.get("runner.previous", None) == "added")
    yield lab
    lab.stop()


def recorded(lab: Lab, pattern: str) -> list:
    """The payloads of `pattern` events applied from now on (a live list)."""
    seen: list = []
    after = lab.store.version

    def keep(event) -> None:
        if event.seq > after:
            seen.append(event.payload)

    lab.engine.bus.subscribe(pattern, keep)
    return seen


def test_viewer_is_refused_and_nothing_changes(lab):
    commands = OperatorCommands(lab, operators=frozenset({"alice"}))
    journaled = recorded(lab, "operator.command")
    transitions = recorded(lab, "runner.state_changed")
    for user in ("bob", None):
        with pytest.raises(CommandRefused, match="is not an operator") as refused:
            commands.execute(user, "pause")
        assert refused.value.reason == "not_operator"
    with pytest.raises(CommandRefused, match="not an operator"):
        commands.execute("bob", "flatten")
    lab.engine.flush()
    assert lab.runner.state_of("sma_cross") == "running"
    assert journaled == [] and transitions == []
    assert commands.metrics()["refused"] == {"not_operator": 3}
    assert commands.is_operator("alice") and not commands.is_operator("bob")


def test_operator_pause_and_resume_are_journaled_with_the_user(lab):
    commands = OperatorCommands(lab, operators=frozenset({"alice"}))
    journaled = recorded(lab, "operator.command")
    transitions = recorded(lab, "runner.state_changed")
    assert "sma_cross" in commands.execute("alice", "pause")
    assert wait_for(lambda: lab.runner.state_of("sma_cross") == "paused")
    with pytest.raises(CommandRefused, match="is paused: cannot pause"):
        commands.execute("alice", "pause", strategy="sma_cross")
    commands.execute("alice", "resume", strategy="sma_cross")
    assert wait_for(lambda: lab.runner.state_of("sma_cross") == "running")
    assert wait_for(lambda: len(transitions) == 2)
    assert [(t["state"], t["who"]) for t in transitions] == [
        ("paused", "alice"),
        ("running", "alice"),
    ]
    assert [(j["who"], j["command"]) for j in journaled] == [
        ("alice", "pause"),
        ("alice", "resume"),
    ]
    assert commands.metrics()["executed"] == {"pause": 1, "resume": 1}


def test_without_auth_everyone_is_an_operator_recorded_as_local(lab, caplog):
    commands = OperatorCommands(lab)
    transitions = recorded(lab, "runner.state_changed")
    commands.execute(None, "stop", strategy="sma_cross")
    assert wait_for(lambda: lab.runner.state_of("sma_cross") == "stopped")
    assert wait_for(lambda: transitions and transitions[-1]["who"] == "local")
    with pytest.raises(CommandRefused, match="no strategy can resume"):
        commands.execute(None, "resume")
    # Logged as journaled: by 'local', and the command named once.
    [line] = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert line.startswith("command 'resume' by 'local' refused: no strategy can resume")


def test_unknown_command_strategy_or_argument_is_refused_by_name(lab):
    commands = OperatorCommands(lab)
    with pytest.raises(CommandRefused, match="unknown command 'explode'"):
        commands.execute(None, "explode")
    with pytest.raises(CommandRefused, match="no strategy named 'nope'") as refused:
        commands.execute(None, "pause", strategy="nope")
    assert refused.value.reason == "bad_args"
    with pytest.raises(CommandRefused, match="unknown argument 'when'"):
        commands.execute(None, "flatten", when="now")
    assert commands.metrics()["refused"] == {"unknown_command": 1, "bad_args": 2}


def test_set_params_checks_against_declarations_and_changes_nothing_when_bad(lab):
    commands = OperatorCommands(lab, operators=frozenset({"alice"}))
    changes = recorded(lab, "runner.params_changed")
    strategy = lab.runner.strategies["sma_cross"]
    for params, error in (
        ({"fast": -3}, "fast"),
        ({"fast": 7, "speed": 2}, "no parameter 'speed'"),
        ({"slow": "many"}, "'many' is not an integer"),
        ({}, "non-empty mapping"),
    ):
        with pytest.raises(CommandRefused, match=error):
            commands.execute("alice", "set_params", strategy="sma_cross", params=params)
    with pytest.raises(CommandRefused, match="cannot be changed"):
        commands.execute("alice", "set_params", strategy="sma_cross", params={"name": "x"})
    lab.engine.flush()
    assert (strategy.fast, strategy.slow) == (5, 20) and changes == []

    result = commands.execute("alice", "set_params", strategy="sma_cross", params={"fast": "8"})
    assert "fast=8" in result
    assert wait_for(lambda: changes)
    assert strategy.fast == 8
    assert changes == [
        {
            "runner": "lab",
            "strategy": "sma_cross",
            "params": {"fast": 8},
            "previous": {"fast": 5},
            "who": "alice",
        }
    ]


def test_flatten_closes_open_positions_and_records_the_user(lab):
    commands = OperatorCommands(lab, operators=frozenset({"alice"}))
    journaled = recorded(lab, "operator.command")
    symbol = lab.feed.symbols[2]
    assert wait_for(lambda: lab.store.get(f"market.marks.{symbol}", None) is not None)
    lab.place_order(symbol, "BUY", 75)
    position = f"trading.positions.manual:{symbol}"
    assert wait_for(lambda: (lab.store.get(position, None) or {}).get("net_quantity") == 75)
    assert "1 closing order sent" in commands.execute("alice", "flatten")
    assert wait_for(lambda: lab.store.get(position)["net_quantity"] == 0)
    lab.engine.wait_applied()  # subscribers get the event on the kernel thread
    assert journaled[-1]["who"] == "alice" and len(journaled[-1]["args"]["orders"]) == 1
    assert commands.execute("alice", "flatten") == "flatten: no open position"


def test_flatten_says_which_working_orders_it_cancelled(lab):
    # It cancelled them and said "no open position": the operator and the record missed them.
    commands = OperatorCommands(lab, operators=frozenset({"alice"}))
    journaled = recorded(lab, "operator.command")
    symbol = lab.feed.symbols[2]
    assert wait_for(lambda: lab.store.get(f"market.marks.{symbol}", None) is not None)
    resting = lab.place_order(symbol, "BUY", 75, order_type="LIMIT", limit_price=0.05)
    assert wait_for(lambda: resting in (lab.store.get("trading.working", None) or {}))
    said = commands.execute("alice", "flatten")
    assert said == "flatten: 1 working order cancelled, no open position"
    lab.engine.wait_applied()
    assert journaled[-1]["args"] == {"orders": [], "cancelled": [resting]}
    assert resting not in (lab.store.get("trading.working", None) or {})


def test_resume_trading_needs_a_halt_and_a_reason_and_names_the_user(lab):
    commands = OperatorCommands(lab, operators=frozenset({"alice"}))
    with pytest.raises(CommandRefused, match="not halted") as refused:
        commands.execute("alice", "resume_trading", reason="checked")
    with pytest.raises(CommandRefused, match="not halted"):  # said before the empty reason
        commands.execute("alice", "resume_trading", reason="")
    assert refused.value.reason == "not_now"
    lab.risk.halt("test", "drill")
    for args in ({}, {"reason": "  "}):
        with pytest.raises(CommandRefused, match="reason"):
            commands.execute("alice", "resume_trading", **args)
    assert lab.risk.state == "halted"
    commands.execute("alice", "resume_trading", reason="limits checked")
    control = lab.store.get("risk.control")
    assert (control["state"], control["by"], control["reason"]) == (
        "active",
        "alice",
        "limits checked",
    )


def test_reconcile_now_reports_and_is_journaled(lab):
    commands = OperatorCommands(lab, operators=frozenset({"alice"}))
    journaled = recorded(lab, "operator.command")
    runs = lab.reconciler.runs
    assert commands.execute("alice", "reconcile") == "reconciliation: book and broker agree"
    assert lab.reconciler.runs == runs + 1
    lab.broker.faults.hold_outside_position(lab.feed.symbols[2], 75, 100.0)
    assert "1 differences (unknown_position)" in commands.execute("alice", "reconcile")
    lab.engine.wait_applied()  # subscribers get the event on the kernel thread
    assert [j["who"] for j in journaled] == ["alice", "alice"]


def test_start_runs_a_stopped_strategy_again_and_is_refused_when_nothing_can_start(lab):
    commands = OperatorCommands(lab, operators=frozenset({"alice"}))
    journaled = recorded(lab, "operator.command")
    transitions = recorded(lab, "runner.state_changed")
    with pytest.raises(CommandRefused, match="no strategy can start") as refused:
        commands.execute("alice", "start")
    assert refused.value.reason == "not_now"
    with pytest.raises(CommandRefused, match="is running: cannot start"):
        commands.execute("alice", "start", strategy="sma_cross")
    commands.execute("alice", "stop")
    assert wait_for(lambda: lab.runner.state_of("sma_cross") == "stopped")
    assert commands.execute("alice", "start") == "start asked for sma_cross"
    assert wait_for(lambda: lab.runner.state_of("sma_cross") == "running")
    assert wait_for(lambda: len(transitions) == 2)
    started = transitions[-1]
    assert (started["state"], started["previous"], started["who"]) == (
        "running",
        "stopped",
        "alice",
    )
    assert started["params"] == {"fast": 5, "slow": 20} | started["params"]
    assert wait_for(lambda: lab.store.get("runner.status", None) == "running")
    assert [j["command"] for j in journaled] == ["stop", "start"]
    lab.runner.stop(who="alice")  # the runner itself gone: nothing can start any more
    with pytest.raises(CommandRefused, match="is not running: cannot start"):
        commands.execute("alice", "start", strategy="sma_cross")


def test_a_failed_strategy_can_be_started_again(lab):
    commands = OperatorCommands(lab)
    strategy = lab.runner.strategies["sma_cross"]

    def boom(ctx, bar):
        raise RuntimeError("bad bar")

    strategy.on_bar = boom  # the instance's hook: the runner calls getattr(strategy, hook)
    assert wait_for(lambda: lab.runner.state_of("sma_cross") == "failed", timeout=30)
    del strategy.on_bar
    commands.execute(None, "start", strategy="sma_cross")
    assert wait_for(lambda: lab.runner.state_of("sma_cross") == "running")


def test_a_command_the_stopped_runner_cannot_take_is_refused_and_counted(lab):
    commands = OperatorCommands(lab, operators=frozenset({"alice"}))
    lab.runner.stop()
    with pytest.raises(CommandRefused, match="cannot set_params"):
        commands.execute("alice", "set_params", strategy="sma_cross", params={"fast": 8})
    assert commands.metrics()["refused"] == {"not_now": 1}


def test_a_flatten_that_fails_still_says_which_working_orders_it_cancelled():
    # "0 closing order(s) sent" while three working orders had been cancelled.
    from types import SimpleNamespace

    from tradelab.trading.flatten import FlattenError

    def flatten(exit_only, cancelled, kept):
        cancelled += ["O1", "O2"]
        raise FlattenError([], {"s:X": "BUY 75: trading halted"})

    journaled = []
    lab = SimpleNamespace(
        desk=SimpleNamespace(flatten=flatten),
        engine=SimpleNamespace(submit=lambda topic, payload, **kw: journaled.append(payload)),
    )
    commands = OperatorCommands(lab, operators=frozenset({"alice"}))
    with pytest.raises(CommandRefused, match=r"flatten failed \(2 working orders cancelled\)"):
        commands.execute("alice", "flatten")
    assert journaled[-1]["args"] == {"cancelled": ["O1", "O2"]}
    assert journaled[-1]["result"].startswith("failed (2 working orders cancelled)")


def test_a_paused_strategy_can_be_stopped_from_the_console(lab):
    # An operator pauses, then decides to stop it for good.
    commands = OperatorCommands(lab, operators=frozenset({"alice"}))
    commands.execute("alice", "pause", strategy="sma_cross")
    assert wait_for(lambda: lab.runner.state_of("sma_cross") == "paused")
    from tradelab.ui.frames import header

    lab.engine.wait_applied()
    assert header(lab)["strategy_holds"] == {"sma_cross": "paused by alice"}  # who held it
    said = commands.execute("alice", "stop", strategy="sma_cross")
    assert said.startswith("stop asked for sma_cross")
    assert wait_for(lambda: lab.runner.state_of("sma_cross") == "stopped")


def _flatten_commands_on_a_long(latency_ms: int):
    """Operator commands over a risk test session holding 150 of SYM bought by strategy a,
    whose broker then fills `latency_ms` after an order."""
    from types import SimpleNamespace

    from tests.risk_session import SYM, Session

    s = Session()
    lab = SimpleNamespace(desk=s.desk, engine=SimpleNamespace(submit=lambda *a, **k: None))
    s.desk.place_order(SYM, "BUY", 150, strategy="a")
    s.broker.config.latency_ms = latency_ms
    return s, OperatorCommands(lab)


def test_flatten_says_an_earlier_close_is_still_working_not_that_nothing_is_open():
    # Pressed twice before the first close filled, it said "no open position".
    _, commands = _flatten_commands_on_a_long(latency_ms=2000)
    assert commands.execute(None, "flatten") == "flatten: 1 closing order sent"
    assert commands.execute(None, "flatten") == "flatten: 1 earlier closing order still working"


def test_flatten_with_a_close_filled_but_not_booked_does_not_say_nothing_is_open():
    # The close filled at the broker and its report was lost: pressed again, Flatten said
    # "no open position" of a book that still showed the position open.
    from tests.risk_session import SYM

    s, commands = _flatten_commands_on_a_long(latency_ms=1000)
    commands.execute(None, "flatten")
    s.broker.faults.drop_fill_reports(1)
    s.clock.advance(2 * 10**9)
    s.broker.set_quote(SYM, 100.0, 101.0, size=10_000)
    said = commands.execute(None, "flatten")
    assert said.startswith("flatten: nothing to send: the open positions' closes are filled")
    assert s.broker.positions() in ({}, {SYM: 0})  # and nothing more was sold
