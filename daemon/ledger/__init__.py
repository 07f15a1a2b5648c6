"""The stock ledger's rules: every one that touches the database, one module per domain.

``engine`` owns the single connection and runs batches of commands (group commit); ``tx``
is what a command carries; ``schema`` the migrations; ``snapshots`` the read-only readers
for big reads. The domains: ``catalog`` (SKUs), ``stock`` (moves, journal, idempotency
keys), ``sets``, ``shops``, ``listings``, ``orders``, ``jobs``, ``imports``, ``status``.
Only the ledger task (``daemon.actors.ledger``) calls the engine; docs/architecture.md
follows one request through it.
"""
