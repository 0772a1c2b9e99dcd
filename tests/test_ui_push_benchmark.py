"""benchmarks/push_latency.py's reading of the pages' long frames: the longest first, bounded,
and each long frame gap matched to the long frames that overlap it (none: the renderer was
not scheduled)."""

from __future__ import annotations

from tradelab.benchmarking.browser import long_frames


def _frame(start, duration):
    return {"kind": "long-animation-frame", "start_ms": start, "duration_ms": duration}


def test_long_frames_are_ranked_bounded_and_matched_to_the_gaps_they_cover():
    page0 = {
        "frames": [_frame(1000.0, 120.0), _frame(3000.0, 60.0)],
        "gaps": [
            {"gap_ms": 133.3, "end_ms": 1130.0},  # covers the 120 ms frame
            {"gap_ms": 83.3, "end_ms": 5000.0},  # no long frame then: a starved renderer
        ],
        "count": 2,
    }
    page1 = {"frames": [_frame(2000.0, 250.0)], "gaps": [], "count": 7}
    out = long_frames([([], [], page0), ([], [], page1)], top=2)
    assert out["long_tasks_per_page"] == [2, 7]
    assert [(f["page"], f["duration_ms"]) for f in out["long_tasks_top"]] == [
        (1, 250.0),
        (0, 120.0),
    ]
    assert out["frame_gaps_top"] == [
        {"page": 0, "gap_ms": 133.3, "long_frames_ms": [120.0]},
        {"page": 0, "gap_ms": 83.3, "long_frames_ms": []},
    ]
