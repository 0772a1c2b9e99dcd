"""Analytics over the journal: SQL views (orders, fills, round trips, positions over time, equity,
drawdown, daily P&L, reconciliation, risk, latency), the state as of any seq or time, and plots.

`Analytics(journal_path).sql("SELECT * FROM trades")`; `tradelab.analytics.plots` for HoloViews.
"""

from tradelab.analytics.analytics import Analytics, sql
from tradelab.analytics.asof import AsOf, StateDiff, diff_states
from tradelab.analytics.views import PUBLIC_VIEWS
from tradelab.errors import QueryError

__all__ = ["PUBLIC_VIEWS", "Analytics", "AsOf", "QueryError", "StateDiff", "diff_states", "sql"]
