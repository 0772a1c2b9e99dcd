"""The trading book: orders, fills, positions and P&L as reducers over journaled events."""
