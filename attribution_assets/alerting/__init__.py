"""Operator alerts: payloads from posterior rows (:mod:`.payload`), the week's alert files
(:mod:`.tables`), webhook delivery with retries, idempotency keys and a ledger (:mod:`.delivery`), and
the Dagster ``notifier`` resource (:mod:`.resource`, the only module here that imports Dagster)."""
