"""`panel serve notebooks/console.ipynb --plugins tradelab.ui.plugin`: the console's extra routes.

Panel imports this module when the server starts and mounts its `ROUTES`; building them creates
(and starts) the process's shared host, so the engine runs before the first session opens.
"""

from __future__ import annotations

from tradelab.ui.host import shared_host
from tradelab.ui.routes import extra_routes

ROUTES = extra_routes(shared_host())
