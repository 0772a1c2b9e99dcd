"""Many callers placing orders at once, and kill -9: each caller handles only its own broker
callbacks, and what a returned `place_order` caused (and a risk halt) survives SIGKILL."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tradelab.engine import Engine
from tradelab.errors import OrderDeniedError, TradelabError
from tradelab.trading.execution import ExecutionDesk
from tradelab.trading.orderdrill import SYMBOLS, check_orders, paper_broker, paper_session
from tradelab.trading.risk import RiskConfig, RiskGate

ROOT = Path(__file__).resolve().parents[1]


def test_eight_callers_each_handle_only_their_own_broker_callbacks(tmp_path):
    engine, broker = paper_session(str(tmp_path / "j.duckdb"))
    desk = ExecutionDesk(broker, engine.submit)
    delivered: list[tuple[str, int]] = []
    broker.add_listener(lambda u: delivered.append((u.order_id, threading.get_ident())))
    placed: dict[str, int] = {}

    def trade(n: int) -> None:
        for i in range(15):
            oid = desk.place_order(SYMBOLS[(n + i) % 4], "BUY" if i % 2 else "SELL", 75)
            placed[oid] = threading.get_ident()

    try:
        threads = [threading.Thread(target=trade, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert len(placed) == 8 * 15
        strangers = [(oid, ident) for oid, ident in delivered if placed[oid] != ident]
        assert strangers == [], f"{len(strangers)} updates ran on another caller's thread"
        # Every order filled at once, and its fill is in the store when place_order returned.
        trades = engine.store.get("trading.trades")
        assert len(trades) == 8 * 15
    finally:
        engine.stop()


def spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tradelab.trading.orderdrill", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_both(proc: subprocess.Popen, writer_pid: int | None) -> str:
    if writer_pid is not None:
        os.kill(writer_pid, signal.SIGKILL)
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err[-2000:]
    return out


@pytest.mark.timeout(180)
def test_fills_of_returned_orders_survive_kill_9_of_engine_and_writer(tmp_path):
    journal = str(tmp_path / "orders.duckdb")
    proc = spawn("orders", journal, "8")
    head = proc.stdout.readline()
    assert head.startswith("READY"), proc.stderr.read()[-2000:]
    lines = []
    deadline = time.monotonic() + 60  # start-up on a loaded 2-core machine; acks come in ms
    while len(lines) < 200 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("ACK "):
            lines.append(line)
    out = kill_both(proc, int(head.split()[1]))
    acks = [line.split() for line in lines + out.splitlines() if line.startswith("ACK ")]
    # The last line may be cut by the kill: only whole ones (with their fill) count.
    acks = [a for a in acks if len(a) >= 3]
    assert len(acks) >= 100
    report = check_orders(journal, acks)
    assert report["acked_fills"] >= len(acks)


@pytest.mark.timeout(180)
def test_daily_loss_halt_survives_kill_9_and_restart_until_an_operator_resumes(tmp_path):
    journal = str(tmp_path / "halt.duckdb")
    proc = spawn("halt", journal)
    line = proc.stdout.readline()
    assert line.strip() == "HALTED", proc.stderr.read()[-2000:]
    kill_both(proc, None)
    engine = Engine(journal_path=journal).start()
    try:
        gate = RiskGate(RiskConfig(daily_loss_limit=500.0), engine.store, engine.submit)
        desk = ExecutionDesk(paper_broker(), engine.submit, risk=gate)
        assert gate.state == "halted"
        assert engine.store.get("risk.control")["by"] == "risk"
        assert engine.store.get("risk.daily_loss_breach")["limit"] == 500.0
        with pytest.raises(OrderDeniedError, match="risk state is halted"):
            desk.place_order(SYMBOLS[1], "BUY", 75)
        gate.resume("ops-ravi", "restarted and checked the book")
        desk.place_order(SYMBOLS[1], "BUY", 75)
    finally:
        engine.stop()
    engine = Engine(journal_path=journal).start()  # the resume is journaled like the halt
    try:
        assert engine.store.get("risk.control")["state"] == "active"
    finally:
        engine.stop()


def test_the_broker_sees_an_order_only_once_its_submission_is_applied(tmp_path):
    # Another thread may fill an order the moment the broker has it (the feed's next quote);
    # its order.filled / trade.executed must then come after order.submitted in the journal.
    engine, broker = paper_session(str(tmp_path / "j.duckdb"))
    seen_by_broker: list[str | None] = []
    submit_order = broker.submit_order

    def recording(request):
        order = engine.store.get(f"trading.orders.{request.order_id}", None)
        seen_by_broker.append(None if order is None else order["status"])
        return submit_order(request)

    broker.submit_order = recording
    desk = ExecutionDesk(broker, engine.submit)
    try:
        for i in range(5):
            desk.place_order(SYMBOLS[i % 4], "BUY", 75)
    finally:
        engine.stop()
    assert seen_by_broker == ["submitted"] * 5


def test_a_bus_handler_placing_two_entries_cannot_pass_a_limit_with_room_for_one(tmp_path):
    # On the kernel thread a submission is not applied when submit returns: the gate must keep
    # counting the first order until the store has it.
    engine, broker = paper_session(str(tmp_path / "j.duckdb"))
    gate = RiskGate(RiskConfig(max_open_positions=1), engine.store, engine.submit)
    desk = ExecutionDesk(broker, engine.submit, risk=gate)
    results = []

    def place_two(event):
        if results:
            return
        for i, symbol in enumerate(SYMBOLS[1:3]):
            try:
                desk.place_order(symbol, "BUY", 75, strategy=f"k{i}")
                results.append("ok")
            except OrderDeniedError as exc:
                results.append(exc.check)

    engine.bus.subscribe("mark.updated", place_two, name="kernel-placer")
    try:
        engine.submit("mark.updated", {"symbol": SYMBOLS[1], "price": 100.5}, wait=True)
        engine.wait_applied()
        deadline = time.monotonic() + 30
        while len(results) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        engine.flush()
        engine.wait_applied()
        assert results == ["ok", "max_open_positions"]
        assert len(engine.store.get("trading.open_positions")) == 1
        desk.place_order(SYMBOLS[1], "BUY", 75, strategy="k0")  # adds to the open one
        assert gate._in_flight_orders() == []
    finally:
        engine.stop()


def test_ids_of_orders_placed_from_a_bus_handler_are_not_kept_forever(tmp_path):
    engine, broker = paper_session(str(tmp_path / "j.duckdb"))
    desk = ExecutionDesk(broker, engine.submit)
    placed = []

    def place(event):
        if len(placed) < 600:
            quantity = 75 if len(placed) % 3 else 7  # every third refused: not a whole lot
            try:
                placed.append(desk.place_order(SYMBOLS[1], "BUY", quantity))
            except TradelabError:
                placed.append(None)

    engine.bus.subscribe("mark.updated", place, name="kernel-placer")
    try:
        for i in range(600):
            engine.submit("mark.updated", {"symbol": SYMBOLS[1], "price": 100.0 + i % 7})
        deadline = time.monotonic() + 60  # the handlers' orders are queued behind the marks
        while len(engine.store.get("trading.orders", None) or {}) < 600:  # refused ones too
            assert time.monotonic() < deadline
            time.sleep(0.02)
        engine.wait_applied()  # and published
        assert len(placed) == 600
        assert desk._claimed == set()
    finally:
        engine.stop()
