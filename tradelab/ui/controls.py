"""Operator controls of one session: runner start / pause / resume / stop, flatten, resume after a halt,
strategy parameters, reconcile now. Built only for an operator; every click goes through
`OperatorCommands.execute`, which checks the user again.

Widgets are per session; strategy parameter widgets are built from the param declarations, not
bound to the shared strategy objects (a watcher there would outlive the session). What an
operator typed or a strategy declared (reasons, values, refusals) is shown as text, never
parsed as markup: the page shows what the journal holds.
"""

from __future__ import annotations

from typing import Any

import panel as pn
import param

from tradelab.errors import TradelabError
from tradelab.ui.badge import Badge

_WIDGETS = {
    param.Boolean: pn.widgets.Checkbox,
    param.Integer: pn.widgets.IntInput,
    param.Number: pn.widgets.FloatInput,
    param.String: pn.widgets.TextInput,
}

# As the Str pane showed it (monospace), wrapped at the page's edge.
_MESSAGE_STYLE = "font-family:ui-monospace,monospace;font-size:12px;white-space:pre-wrap"


def _param_widget(pname: str, parameter: param.Parameter, value: Any) -> pn.widgets.Widget:
    if isinstance(parameter, param.Selector):
        return pn.widgets.Select(label=pname, options=list(parameter.objects), value=value)
    for kind, widget in _WIDGETS.items():
        if isinstance(parameter, kind):
            # No start/end on the input: the browser would put an out-of-range value back
            # without a word; the command refuses it naming the bounds instead.
            return widget(label=pname, value=value)
    return pn.widgets.TextInput(label=pname, value=str(value), disabled=True)


class Controls:
    """The operator panel; `message` shows what the last command did or why it was refused."""

    def __init__(self, commands: Any, user: str | None, strategies: dict[str, Any]) -> None:
        self.commands, self.user = commands, user
        # A text component, not a Str pane: Panel's Str puts its text into the page as markup.
        self.message = Badge("tl-command-result", style=_MESSAGE_STYLE)
        self.start = self._button("Start", "tl-runner-start", "primary", "start")
        self.pause = self._button("Pause", "tl-runner-pause", "warning", "pause")
        self.resume = self._button("Resume", "tl-runner-resume", "success", "resume")
        self.stop = self._button("Stop", "tl-runner-stop", "danger", "stop")
        self.flatten = self._button("Flatten all", "tl-flatten", "danger", "flatten")
        self.reconcile = self._button("Reconcile now", "tl-reconcile", "default", "reconcile")
        self.reason = pn.widgets.TextInput(placeholder="reason to resume trading", width=260)
        self.resume_trading = pn.widgets.Button(
            label="Resume trading", css_classes=["tl-resume-trading"], color="primary"
        )
        self.resume_trading.on_click(lambda _: self.run("resume_trading", reason=self.reason.value))
        forms = [self._params_form(name, s) for name, s in strategies.items()]
        # One wrapping row across the page: runner buttons, resume after a halt, the parameter
        # forms, then what the last command did.
        self.layout = pn.FlexBox(
            pn.Row(self.start, self.pause, self.resume, self.stop, self.flatten, self.reconcile),
            pn.Row(self.reason, self.resume_trading),
            *forms,
            self.message,
            align_items="flex-start",
            css_classes=["tl-controls"],
            sizing_mode="stretch_width",
        )

    def _button(self, label: str, css: str, kind: str, command: str) -> pn.widgets.Button:
        button = pn.widgets.Button(label=label, css_classes=[css], color=kind)
        button.on_click(lambda _: self.run(command))
        return button

    def _params_form(self, name: str, strategy: Any) -> pn.viewable.Viewable:
        widgets = {
            pname: _param_widget(pname, parameter, getattr(strategy, pname))
            for pname, parameter in strategy.param.objects("existing").items()
            if pname != "name" and not parameter.constant
        }
        apply = pn.widgets.Button(label=f"Apply {name} parameters", css_classes=["tl-set-params"])
        # What this page showed: only the values edited here are sent, so a form opened before
        # another page's change does not put the other values back (a lost update).
        shown = {k: w.value for k, w in widgets.items()}

        def send(_: Any) -> None:
            edited = {k: w.value for k, w in widgets.items() if w.value != shown[k]}
            if not edited:
                self.message.set(f"set_params: no parameter of {name} was changed here")
                return
            text = self.run("set_params", strategy=name, params=edited)
            if "refused" not in text:
                shown.update(edited)

        apply.on_click(send)
        return pn.Card(*widgets.values(), apply, title=f"{name} parameters", collapsed=True)

    def run(self, command: str, **args: Any) -> str:
        """Execute through the commands object (which re-checks the user) and show the result."""
        try:
            text = self.commands.execute(self.user, command, **args)
        except TradelabError as exc:
            text = f"{command} refused: {exc}"
        self.message.set(text)
        return text
