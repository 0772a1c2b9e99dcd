"""The console's parameter form: what Apply sends."""

import param

from tradelab.runner import Strategy
from tradelab.ui.controls import Controls


class Knobs(Strategy):
    strategy_name = "knobs"
    lots = param.Integer(default=1, bounds=(1, 50))
    stop_loss_pct = param.Number(default=30.0, bounds=(0.0, None))


class Recording:
    def __init__(self):
        self.calls = []

    def execute(self, user, command, **args):
        self.calls.append((command, args))
        return f"{command} done"


def test_apply_sends_only_what_was_edited_on_this_page_and_keeps_out_of_range_values():
    commands = Recording()
    controls = Controls(commands, "alice", {})
    card = controls._params_form("knobs", Knobs())
    *widgets, apply = card.objects
    by_name = {w.name: w for w in widgets}
    apply.clicks += 1  # nothing edited: nothing sent, and the page says so
    assert commands.calls == [] and "no parameter of knobs was changed" in controls.message.text
    by_name["lots"].value = 0  # out of its bounds: sent, for the command to refuse by name
    apply.clicks += 1
    assert commands.calls == [("set_params", {"strategy": "knobs", "params": {"lots": 0}})]


class Echo:
    """Answers as the real commands do: the reason and the values as given."""

    def execute(self, user, command, **args):
        if command == "resume_trading":
            return f"trading resumed ({args['reason']})"
        return f"{command} refused: entry_time {args['params']['lots']!r} is not a time of day"


def test_the_result_shows_what_the_operator_typed_exactly_as_text():
    markup = "checked by analyst <b>x</b> & <img src=x onerror=alert(1)>"
    controls = Controls(Echo(), "alice", {})
    controls.reason.value = markup
    controls.resume_trading.clicks += 1
    # A text component (set as textContent in the browser), holding exactly what was typed.
    assert controls.message.text == f"trading resumed ({markup})"
