"""An exit whose level fired but was refused (trading halted) is shown as refused, not armed."""

from __future__ import annotations

from types import SimpleNamespace

from contracts.local_kernel import LocalKernel
from test_book import SYM, fill

from tradelab.ui.frames import positions

PID = f"s1:{SYM}"
REFUSAL = "risk state is halted (halted by risk: daily loss limit crossed); exits need a resume"


def exit_updated(kernel, reason, stop, **extra):
    body = {"position_id": PID, "reason": reason, "stop": stop, "target": None, "trail": None}
    kernel.submit("trade.exit_updated", {**body, "best": None, "exit_order": None, **extra})


def shown_status(kernel):
    [row] = positions(SimpleNamespace(store=kernel.store)).to_dict("records")
    return row["stop"], row["status"]


def test_a_refused_stop_exit_reads_refused_until_its_next_update():
    k = LocalKernel()
    fill(k, 1, "SELL", 75, 170.0)
    exit_updated(k, "set", 221.0)
    assert shown_status(k) == (221.0, "open")
    exit_updated(k, "exit_refused", 221.0, refusal=REFUSAL)
    assert k.store.get(f"trading.exits.{PID}")["refused"] == REFUSAL
    assert shown_status(k) == (221.0, "exit refused: risk state is halted")
    exit_updated(k, "exit_stop", 221.0)  # tried again after a resume: the exit is placed
    assert "refused" not in k.store.get(f"trading.exits.{PID}")
    assert shown_status(k) == (221.0, "open")
    assert k.replayed_store().state_hash() == k.store.state_hash()


def test_a_resume_arms_the_refused_level_again():
    # Resumed with the price back inside the stop: no exit update comes, and the row still
    # said the exit was refused, under an active risk state.
    k = LocalKernel()
    fill(k, 1, "SELL", 75, 170.0)
    exit_updated(k, "exit_refused", 221.0, refusal=REFUSAL)
    k.submit("risk.resumed", {"reason": "reviewed", "by": "alice"}, key="risk")
    assert shown_status(k) == (221.0, "open")
    assert k.store.get(f"trading.exits.{PID}")["stop"] == 221.0
    assert k.replayed_store().state_hash() == k.store.state_hash()
