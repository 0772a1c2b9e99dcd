"""Operator controls of one session: runner start / pause / resume / stop, flatten, resume after a halt,
strategy parameters, reconcile now. Built only for an operator; every click goes through
`OperatorCommands.execute`, which checks the user again.

Widgets are per session; strategy parameter widgets are built from the param declarations, not
bound to the shared strategy objects (a watcher there would outlive the session). What an
operator typed or a strategy declared (reasons, values, refusals) is shown as text, never
parsed as markup: the page shows what the journal holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import panel as pn
import param

from tradelab.errors import TradelabError
from tradelab.ui.badge import Badge

_WIDGETS = {
    param.Boolean: pn.widgets.Checkbox,
    # A FloatInput for an Integer too: the browser's integer input puts a fraction back without
    # a word; here 2.5 reaches the command, which refuses it saying why (a whole 2.0 is 2).
    param.Integer: pn.widgets.FloatInput,
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

    def __init__(
        self,
        commands: Any,
        user: str | None,
        strategies: dict[str, Any],
        current_params: Callable[[str], Mapping[str, Any] | None] | None = None,
    ) -> None:
        """`current_params(name)`: the strategy's parameters as journaled now (None: not yet;
        default: the strategy object's own values)."""
        self.commands, self.user = commands, user
        self.current_params = current_params
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
        self.forms = {name: ParamsForm(self, name, s) for name, s in strategies.items()}
        # One wrapping row across the page: runner buttons, resume after a halt, the parameter
        # forms, then what the last command did.
        self.layout = pn.FlexBox(
            pn.Row(self.start, self.pause, self.resume, self.stop, self.flatten, self.reconcile),
            pn.Row(self.reason, self.resume_trading),
            *(form.card for form in self.forms.values()),
            self.message,
            align_items="flex-start",
            css_classes=["tl-controls"],
            sizing_mode="stretch_width",
        )

    def _button(self, label: str, css: str, kind: str, command: str) -> pn.widgets.Button:
        button = pn.widgets.Button(label=label, css_classes=[css], color=kind)
        button.on_click(lambda _: self.run(command))
        return button

    def follow(self, params: Mapping[str, Mapping[str, Any]]) -> None:
        """Show each strategy's current parameters (`runner.by_strategy.<name>.params`) in its
        form, where this page's operator is not editing."""
        for name, form in self.forms.items():
            if params.get(name):
                form.follow(params[name])

    def run(self, command: str, **args: Any) -> str:
        """Execute through the commands object (which re-checks the user) and show the result."""
        try:
            text = self.commands.execute(self.user, command, **args)
        except TradelabError as exc:
            text = f"{command} refused: {exc}"
        self.message.set(text)
        return text


class ParamsForm:
    """One strategy's parameter form. It follows the strategy's current values (`follow`)
    except in the fields this page's operator has edited. Apply sends the fields edited here
    (so a change another page made since is not put back: a lost update), or, with none edited,
    the fields that differ from the current values (a form shown before a push caught up); both
    compared with the current values, read when Apply is clicked: 'no change' means what the
    form shows is what the strategy runs."""

    def __init__(self, controls: Controls, name: str, strategy: Any) -> None:
        self.controls, self.name, self.strategy = controls, name, strategy
        self.widgets = {
            pname: _param_widget(pname, parameter, getattr(strategy, pname))
            for pname, parameter in strategy.param.objects("existing").items()
            if pname != "name" and not parameter.constant
        }
        # The current values as this page last showed them: a field that differs was edited.
        self.shown = {k: w.value for k, w in self.widgets.items()}
        apply = pn.widgets.Button(label=f"Apply {name} parameters", css_classes=["tl-set-params"])
        apply.on_click(lambda _: self.send())
        self.card = pn.Card(
            *self.widgets.values(), apply, title=f"{name} parameters", collapsed=True
        )

    def follow(self, params: Mapping[str, Any]) -> None:
        """Show `params` (the strategy's current values) in the fields not edited here."""
        for pname, widget in self.widgets.items():
            if pname not in params:
                continue
            value = str(params[pname]) if widget.disabled else params[pname]
            if widget.value == self.shown[pname]:
                widget.value = value
            self.shown[pname] = value

    def current(self) -> Mapping[str, Any]:
        read = self.controls.current_params
        journaled = read(self.name) if read is not None else None
        if journaled is None:
            return {k: getattr(self.strategy, k) for k in self.widgets}
        return journaled

    def send(self) -> None:
        values = {k: self._value(k, w.value) for k, w in self.widgets.items() if not w.disabled}
        empty = [k for k, v in values.items() if v is None and not self._param(k).allow_None]
        if empty:  # else param's "not <class 'NoneType'>"
            for pname in empty:  # an emptied number field would show "NaN": the value it had
                self.widgets[pname].value = self.shown[pname]
            self.controls.message.set(
                f"set_params refused: {', '.join(empty)} of {self.name} is empty; enter a value"
            )
            return
        asked = {k: v for k, v in values.items() if v != self.shown[k]} or values
        current = self.current()
        changes = {k: v for k, v in asked.items() if k not in current or v != current[k]}
        if not changes:
            self.controls.message.set(
                f"set_params: no change: the form shows {self.name}'s current parameters"
            )
            return
        text = self.controls.run("set_params", strategy=self.name, params=changes)
        if "refused" not in text:
            self.shown.update(changes)

    def _param(self, pname: str) -> param.Parameter:
        return self.strategy.param[pname]

    def _value(self, pname: str, value: Any) -> Any:
        """A field's value as the parameter takes it: a whole number in an Integer's field
        (a FloatInput's 2.0) is the integer 2."""
        if isinstance(self._param(pname), param.Integer) and isinstance(value, float):
            return int(value) if value.is_integer() else value
        return value
