"""Kill -9 the engine mid-storm, again and again, and check that nothing acknowledged is lost."""

from __future__ import annotations

import random

from crash_child import run_round


def test_sigkill_storm_loses_no_acknowledged_critical_event_and_recovers_exact_state(tmp_path):
    path = str(tmp_path / "crash.duckdb")
    rng = random.Random(20241121)
    rounds = [run_round(path, seed, rng.uniform(0.3, 1.2)) for seed in range(20)]
    # The storm did real work: criticals were acknowledged, snapshots were used on recovery.
    assert sum(r["acked"] for r in rounds) > 100
    assert any(r["snapshot"] is not None for r in rounds)
    assert rounds[-1]["last_seq"] > rounds[0]["last_seq"]
