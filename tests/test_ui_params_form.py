"""The console's parameter form: what Apply sends, and the current values it follows."""

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
    controls = Controls(commands, "alice", {"knobs": Knobs()})
    *widgets, apply = controls.forms["knobs"].card.objects
    by_name = {w.name: w for w in widgets}
    apply.clicks += 1  # nothing edited: nothing sent, and the page says so
    assert commands.calls == [] and "no change" in controls.message.text
    by_name["lots"].value = 0  # out of its bounds: sent, for the command to refuse by name
    apply.clicks += 1
    assert commands.calls == [("set_params", {"strategy": "knobs", "params": {"lots": 0}})]


def test_a_stale_form_applies_what_it_shows_and_follows_the_journaled_values():
    commands = Recording()
    journaled = {"knobs": {"lots": 1, "stop_loss_pct": 30.0}}
    controls = Controls(
        commands, "alice", {"knobs": Knobs()}, current_params=lambda name: journaled[name]
    )
    form = controls.forms["knobs"]
    lots, stop = form.widgets["lots"], form.widgets["stop_loss_pct"]
    journaled["knobs"] = {"lots": 2, "stop_loss_pct": 30.0}  # another page set lots=2
    lots.value = 1  # this page, not refreshed yet, applies the 1 it shows
    form.send()
    assert commands.calls == [("set_params", {"strategy": "knobs", "params": {"lots": 1}})]
    commands.calls.clear()
    journaled["knobs"] = {"lots": 2, "stop_loss_pct": 45.0}  # then another change elsewhere
    stop.value = 60.0  # being edited here when the page catches up
    controls.follow({"knobs": journaled["knobs"], "other": {"lots": 9}})
    assert (lots.value, stop.value) == (2, 60.0)  # the current lots; the edit kept
    form.send()  # what was edited here, not the other (current) values
    assert commands.calls == [
        ("set_params", {"strategy": "knobs", "params": {"stop_loss_pct": 60.0}})
    ]
    commands.calls.clear()
    journaled["knobs"] = {"lots": 2, "stop_loss_pct": 60.0}
    controls.follow(journaled)
    form.send()  # the form shows the current values: nothing to send
    assert commands.calls == [] and "no change" in controls.message.text
    lots.value = 3
    journaled["knobs"] = {"lots": 3, "stop_loss_pct": 60.0}  # set to 3 elsewhere meanwhile
    form.send()
    assert commands.calls == [] and "no change" in controls.message.text


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


def test_an_empty_field_and_a_fraction_in_an_integer_field_are_refused_saying_why():
    # An empty field reached param as "not <class 'NoneType'>"; the browser's integer input
    # put 2.5 back without a word, and the page then said "no change".
    commands = Recording()
    controls = Controls(commands, "alice", {"knobs": Knobs()})
    form = controls.forms["knobs"]
    form.widgets["lots"].value = None
    form.send()
    assert commands.calls == []
    assert controls.message.text == "set_params refused: lots of knobs is empty; enter a value"
    form.widgets["lots"].value = 2.5  # reaches the command, which names why it is refused
    form.send()
    assert commands.calls == [("set_params", {"strategy": "knobs", "params": {"lots": 2.5}})]
    commands.calls.clear()
    form.widgets["lots"].value = 3.0  # a whole number is the integer
    form.send()
    assert commands.calls == [("set_params", {"strategy": "knobs", "params": {"lots": 3}})]
    assert type(commands.calls[0][1]["params"]["lots"]) is int


def test_a_refused_number_is_named_as_typed_and_an_emptied_field_shows_its_value_again():
    # 2.5 read "must be an integer, not <class 'float'>", 1e300 was printed as its 301 digits,
    # and an emptied field showed "NaN" after its refusal.
    from tradelab.runner.strategy import checked_params

    knobs = Knobs()
    for value, said in (
        (2.5, "must be a whole number, not 2.5"),
        (1e300, "must be at most 50, not 1e+300"),
    ):
        try:
            checked_params(knobs, {"lots": value})
        except Exception as exc:
            assert f"parameter 'lots' of strategy 'knobs' {said}" == str(exc)
        else:
            raise AssertionError(f"lots={value} was taken")
    # A whole number written as a float (JSON's 7.0, a command's) is that integer.
    assert checked_params(knobs, {"lots": 7.0}) == {"lots": 7}
    assert type(checked_params(knobs, {"lots": 7.0})["lots"]) is int
    controls = Controls(Recording(), "alice", {"knobs": knobs})
    form = controls.forms["knobs"]
    form.widgets["stop_loss_pct"].value = None
    form.send()
    assert form.widgets["stop_loss_pct"].value == 30.0
