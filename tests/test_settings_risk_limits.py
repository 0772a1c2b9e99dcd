"""A config file whose only risk limit is the daily loss limit has one."""

from __future__ import annotations

from tradelab.settings import risk_limits


def test_a_daily_loss_limit_alone_is_a_risk_limit(tmp_path):
    path = tmp_path / "tradelab.yaml"
    path.write_text("risk:\n  daily_loss_limit: 5000\n")
    risk = risk_limits(path)
    assert risk is not None and risk.daily_loss_limit == 5000
    (tmp_path / "none.yaml").write_text("risk: {}\n")
    assert risk_limits(tmp_path / "none.yaml") is None
