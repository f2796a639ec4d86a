"""`ir serve`: the webhook receiver that turns authenticated alerts into playbook runs: auth,
limits, dedupe, rate limits, a bounded queue with back-pressure, workers, graceful shutdown,
audit, health and metrics; TLS with certificate rotation, a separate metrics listener, and HMAC
replay state that survives a restart (docs/serve-transport.md).

May import ir.playbook (and what it may import); never ir.cluster or ir.cli.
"""
