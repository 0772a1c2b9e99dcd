"""short_straddle restarted while it holds its legs: they are its legs from the first event on."""

from __future__ import annotations

from test_runner_scripted import CE, LOT, PE, fills, run_script

from tradelab.runner import ShortStraddle

ENTRY = [
    ("09:20", {"NIFTY": 24010.0, CE: 150.0, PE: 140.0}, None),  # entry: ATM 24000
    ("09:21", {"NIFTY": 24000.0, CE: 152.0, PE: 138.0}, None),  # both legs fill here
]


def signal_topics(events):
    return [e.topic for e in events if e.topic.startswith("signal.")]


def test_an_options_bar_first_after_a_restart_does_not_clear_the_straddles_signal(tmp_path):
    events, _ = run_script(tmp_path, ShortStraddle(), ENTRY)
    assert signal_topics(events) == ["signal.detected"]
    # The restarted strategy's first event is a bar of a leg, not of the index.
    after = [("09:40", {"NIFTY": 24020.0, CE: 151.0, PE: 139.0}, None)]
    events, positions = run_script(tmp_path, ShortStraddle(), after, bar_symbol=CE)
    assert signal_topics(events) == [] and positions == {CE: -LOT, PE: -LOT}


def test_a_straddle_restarted_past_its_exit_time_still_times_its_legs_out(tmp_path):
    run_script(tmp_path, ShortStraddle(), ENTRY)
    after = [
        ("15:20", {"NIFTY": 24020.0, CE: 151.0, PE: 139.0}, None),  # restarted after 15:15
        ("15:21", {"NIFTY": 24020.0, CE: 150.0, PE: 138.0}, None),  # the buy-backs fill
    ]
    events, positions = run_script(tmp_path, ShortStraddle(), after)
    assert sorted(f[:2] for f in fills(events)) == [(CE, "BUY"), (PE, "BUY")]
    assert positions == {CE: 0, PE: 0}
