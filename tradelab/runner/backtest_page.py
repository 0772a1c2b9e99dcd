"""A backtest as one standalone page (`tradelab backtest --html`): what was run, the figures a
reader looks for first (final equity, return, drawdown, round trips won), the price with every
fill, the equity and its drawdown, then the round trips and the fills as tables.

Bokeh models only (the charts rendered from HoloViews, the rest as HTML in `Div`s), saved with
BokehJS inline: the page opens offline and needs no server.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from tradelab.errors import InvalidInputError
from tradelab.runner.backtest import BacktestResult
from tradelab.runner.backtest_tables import fills_table, round_trips_table

# A table longer than this shows its first and last halves: a 100K-bar run's ~4,000 round trips
# would make a page of megabytes that no one scrolls; --json and the journal hold every row.
TABLE_ROWS_SHOWN = 500

# Each Div draws in its own shadow root: every one carries the style.
_STYLE = """
<style>
.tl-page { font-family: system-ui, sans-serif; color: #222; }
.tl-page h1 { font-size: 22px; margin: 4px 0; }
.tl-page .tl-what { color: #555; font-size: 13px; margin-bottom: 10px; }
.tl-cards { display: flex; flex-wrap: wrap; gap: 10px; }
.tl-card { border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; min-width: 130px; }
.tl-card .tl-label { font-size: 12px; color: #666; }
.tl-card .tl-value { font-size: 20px; font-weight: 600; }
.tl-up { color: #1a7f37; } .tl-down { color: #c62828; }
.tl-note { font-size: 13px; color: #8a5a00; margin-top: 6px; }
.tl-table { max-height: 420px; overflow: auto; border: 1px solid #eee; }
.tl-table table { border-collapse: collapse; font-size: 12px; font-variant-numeric: tabular-nums; }
.tl-table th { position: sticky; top: 0; background: #f6f6f6; }
.tl-table th, .tl-table td { padding: 2px 10px; text-align: right; white-space: nowrap; }
.tl-foot { font-size: 12px; color: #666; }
</style>
"""


def write_backtest_page(
    result: BacktestResult, path: str | Path, details: Mapping[str, str] | None = None
) -> None:
    """Write `result`'s page to `path`; `details` (label: text, e.g. the strategy and its
    parameters, the file) is shown under the title as what was run."""
    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    page = backtest_page(result, details or {})
    html_text = file_html(page, resources=INLINE, title=page_title(result))
    # Panel (imported with HoloViews) adds its ES-module shim to every Bokeh page as a server
    # path; a file has no server and the page uses no Panel model, so the tag only fails.
    html_text = _SERVER_SCRIPT.sub("", html_text)
    try:
        Path(path).write_text(html_text, encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot write the chart to {str(path)!r}: {exc}") from None


_SERVER_SCRIPT = re.compile(r'<script src="static/[^"]*"></script>\n?')


def page_title(result: BacktestResult) -> str:
    fills = len(result.fills)
    return f"{result.symbol} ({result.interval}), {fills:,} fill{'' if fills == 1 else 's'}"


def backtest_page(result: BacktestResult, details: Mapping[str, str]):  # -> bokeh Column
    """The page's bokeh layout (see the module docstring)."""
    import holoviews as hv
    from bokeh.layouts import column
    from bokeh.models import Div

    charts = hv.render(result.plot().opts(shared_axes=True), backend="bokeh")
    charts.sizing_mode = "stretch_width"
    parts = [Div(text=_STYLE + _heading(result, details), sizing_mode="stretch_width"), charts]
    if result.trades:
        parts.append(_table_div("Round trips", round_trips_table(result)))
    if result.fills:
        parts.append(_table_div("Fills", fills_table(result)))
    parts.append(
        Div(
            text=f'{_STYLE}<div class="tl-page tl-foot">journal content hash '
            f"{result.content_hash}</div>",
            sizing_mode="stretch_width",
        )
    )
    return column(*parts, sizing_mode="stretch_width")


def _heading(result: BacktestResult, details: Mapping[str, str]) -> str:
    what = " · ".join(f"{html.escape(k)} {html.escape(v)}" for k, v in details.items())
    net = result.final_equity - result.cash
    won = sum(1 for t in result.trades if t["net_pnl"] > 0)
    cards = [
        ("final equity", f"{result.final_equity:,.2f}", net),
        ("return on cash", f"{net / result.cash:+.2%}", net),
        ("net P&L", f"{net:+,.2f}", net),
        ("max drawdown", f"{result.max_drawdown:,.2f}", result.max_drawdown),
        (
            "round trips won",
            f"{won:,} of {len(result.trades):,}"
            + (f" ({won / len(result.trades):.0%})" if result.trades else ""),
            0.0,
        ),
        ("fills", f"{len(result.fills):,}", 0.0),
        ("fees", f"{result.fees:,.2f}", 0.0),
        ("bars", f"{result.bars:,}", 0.0),
    ]
    shown = "".join(
        f'<div class="tl-card"><div class="tl-label">{label}</div>'
        f'<div class="tl-value {_tone(sign)}">{value}</div></div>'
        for label, value, sign in cards
    )
    notes = "".join(f'<div class="tl-note">{html.escape(n)}</div>' for n in _notes(result))
    return (
        f'<div class="tl-page"><h1>Backtest: {html.escape(page_title(result))}</h1>'
        f'<div class="tl-what">{what}</div><div class="tl-cards">{shown}</div>{notes}</div>'
    )


def figures_html(result: BacktestResult) -> str:
    """The page's title, figures and notes alone (a result's view in a notebook)."""
    return _STYLE + _heading(result, {})


def _tone(sign: float) -> str:
    return "tl-up" if sign > 0 else "tl-down" if sign < 0 else ""


def _notes(result: BacktestResult) -> list[str]:
    """What a reader must not miss: a strategy that failed, refused or unfilled orders, a
    position still open (valued at the last close)."""
    notes = [f"strategy {name} failed: {why}" for name, why in result.failed_strategies.items()]
    if result.refused_orders:
        first = result.refused_orders[0]
        notes.append(
            f"{len(result.refused_orders):,} order(s) refused, none traded; the first: "
            f"{first['reason']}"
        )
    if result.unfilled_orders:
        notes.append(f"{len(result.unfilled_orders):,} order(s) still working at the end")
    held = {s: q for s, q in result.open_positions.items() if q}
    if held:
        notes.append(
            "open at the end, valued at the last close: "
            + ", ".join(f"{q:+,} {s}" for s, q in held.items())
        )
    return notes


def _table_div(title: str, table: pd.DataFrame):
    from bokeh.models import Div

    rows = len(table)
    note = ""
    if rows > TABLE_ROWS_SHOWN:
        half = TABLE_ROWS_SHOWN // 2
        gap = pd.DataFrame([["…"] * table.shape[1]], columns=table.columns)
        table = pd.concat([table.head(half), gap, table.tail(half)], ignore_index=True)
        note = (
            f'<div class="tl-foot">the first and last {half:,} of {rows:,}; '
            "--json and the journal hold every row</div>"
        )
    body = table.to_html(index=False, border=0, escape=True)
    return Div(
        text=f'{_STYLE}<div class="tl-page"><h3>{title} ({rows:,})</h3>{note}'
        f'<div class="tl-table">{body}</div></div>',
        sizing_mode="stretch_width",
    )
