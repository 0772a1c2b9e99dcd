"""`panel serve notebooks/console.ipynb --plugins tradelab.ui.plugin`: the console's extra routes.

Panel imports this module when the server starts and mounts its `ROUTES`; building them creates
(and starts) the process's shared host, so the engine runs before the first session opens. The
server's process runs a session, so its collector is tuned as the `tradelab` command's is.
"""

from __future__ import annotations

from tradelab.collector import tune_collector
from tradelab.ui.host import shared_host
from tradelab.ui.routes import extra_routes

tune_collector()
ROUTES = extra_routes(shared_host())
