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
    assert commands.calls == [] and "no parameter of knobs was changed" in controls.message.object
    by_name["lots"].value = 0  # out of its bounds: sent, for the command to refuse by name
    apply.clicks += 1
    assert commands.calls == [("set_params", {"strategy": "knobs", "params": {"lots": 0}})]
