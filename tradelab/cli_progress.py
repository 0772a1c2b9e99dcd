"""`tradelab run`'s progress line (where the session is, its book and its health), and the
commands' log lines on stderr, each starting a line of its own after a progress line."""

from __future__ import annotations

import logging
import shutil
import sys

import click


def money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def count_of(n: int, noun: str) -> str:
    """'1 fill', '4,015 fills': a count with its noun, for the commands' and console's words."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


# A tick overdue this long while the market is open: FEED SILENT (the console's stale default).
FEED_SILENT_AFTER_S = 5.0


class RunProgress:
    """The run's progress: one status line per update, or (on a terminal) one line rewritten."""

    def __init__(self, lab: object, in_place: bool) -> None:
        self.lab, self.in_place, self._open = lab, in_place, False

    def show(self) -> None:
        s = self.lab.status()
        # A dead market-data line showed only the same seq, line after line. Judged by the
        # feed's own schedule: a replay at 1x is quiet for seconds between ticks on time.
        late = s.get("feed_late_s")
        running = s["session_fraction"] < 1.0 and not s.get("market_closed")
        silent = late if running and late is not None and late > FEED_SILENT_AFTER_S else None
        filled = int(s["session_fraction"] * 20)
        percent = int(s["session_fraction"] * 100)  # floored as the bar is: 100 % means done
        # Starts with "seq ": scripts that wait for a running session look for it.
        line = (
            f"seq {s['seq']:>9}  [{'#' * filled}{'.' * (20 - filled)}] "
            f"{percent:3d}%  {s['exchange_time']:%d %b %H:%M:%S} IST  "
            f"{s['symbol']} {s['index'] or 0:>9.2f}  ticks {s['ticks']:>8}  bars {s['bars']:>4}  "
            f"orders {s['orders']:>3}  fills {s['fills']:>3}  "
            f"open positions {s['open_positions']}  day P&L {money(s['daily_pnl'])}"
        )
        alerts = "" if silent is None else f"  FEED SILENT {silent:.0f}s"
        if s["risk"] != "active":  # denied orders count in `orders`: say why nothing fills
            alerts += f"  risk {s['risk'].upper()}"
        if s.get("flatten_given_up"):  # the breach's flatten stopped trying: a person must
            alerts += "  FLATTEN GIVEN UP"
        if s["broker"] != "ok":  # orders are rejected and nothing reconciles while it lasts
            alerts += f"  broker {s['broker'].upper()}"
        stalled = s.get("stalled_hook")
        if stalled:  # every strategy and its exits wait for it
            alerts += f"  STALLED {stalled['strategy']}.{stalled['hook']} {stalled['seconds']:.0f}s"
        line += alerts
        if self.in_place:
            # Wider than the terminal, the line would wrap and `\r` rewrite only its last row:
            # a shorter one keeps the alerts, which come last.
            width = shutil.get_terminal_size((200, 24)).columns - 1
            if len(line) > width:
                head = (
                    f"seq {s['seq']}  {percent}%  {s['exchange_time']:%d %b %H:%M:%S}  "
                    f"fills {s['fills']}  open {s['open_positions']}  "
                    f"P&L {money(s['daily_pnl'])}"
                )
                line = (head[: max(width - len(alerts), 0)] + alerts)[:width]
            click.echo(f"\r{line}\x1b[K", nl=False)
            self._open = True
        else:
            click.echo(line)

    def end(self) -> None:
        if self._open:
            click.echo()
            self._open = False


def clear_progress_line() -> None:
    """On a terminal, rub out a progress line (backtest's, run's) a message would follow on."""
    if sys.stderr.isatty():
        sys.stderr.write("\r\x1b[K")


class StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time (as logging's last-resort handler does)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass

    def emit(self, record: logging.LogRecord) -> None:
        clear_progress_line()  # a warning starts its own line, not after "... bars (35%)"
        super().emit(record)


class NoTracebacks(logging.Formatter):
    """Log records as one line each: a command's failure is told by `fail`, not by a traceback."""

    def formatException(self, ei: object) -> str:  # noqa: N802 (logging's name)
        return ""

    def formatStack(self, stack_info: str) -> str:  # noqa: N802
        return ""
