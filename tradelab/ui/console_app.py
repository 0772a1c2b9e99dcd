"""The console as a Panel app script: what `tradelab serve` serves when the repository's
notebooks/console.ipynb is not beside the package (installed from a wheel). The notebook's
served path, line for line; run only by a Panel server, never imported."""

import panel as pn

from tradelab.ui.console import served_console

pn.extension("tabulator", notifications=True)

# The server process's one host, built by `tradelab serve` before the first session.
served_console(user=pn.state.user).servable(title="tradelab console")
