"""The live console: a coalescing view of the engine's events shared by every browser session,
the Panel layout each session builds over it (`tradelab serve`, `notebooks/console.ipynb`), the
operator commands, auth for the extra routes, and `/metrics`.

Importing this package does not import Panel: `tradelab.ui.config` and `tradelab.ui.view` are
plain Python; `host`, `console` and `routes` import Panel when imported themselves.
"""
