"""Automated response: playbook schema and validation, alert parsers (one module per source, one
normal form), matching, and the engine that runs steps through the `ResponseActions` protocol.

Imports only ir.errors, ir.clock and PyYAML; the real Kubernetes actions (ir.cluster) implement
`ir.playbook.actions.ResponseActions` and are handed in, never imported here.
"""
