"""Broker reconciliation: compare the book with the broker, record and fix the differences.

`tradelab.broker.reconcile.reducers` is the module of its reducers (registered in
tradelab.engine.store)."""

from tradelab.broker.reconcile.diff import KINDS, BrokerView, Mismatch, find_mismatches
from tradelab.broker.reconcile.reconciler import (
    POLICIES,
    Reconciler,
    ReconcilerConfig,
    ReconciliationReport,
)

__all__ = [
    "KINDS",
    "POLICIES",
    "BrokerView",
    "Mismatch",
    "ReconciliationReport",
    "Reconciler",
    "ReconcilerConfig",
    "find_mismatches",
]
