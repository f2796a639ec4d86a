"""Kubernetes: resolve pods, collect their context, quarantine, replace and release them.
Every change to a cluster goes through ir.cluster.ops (dry-run, action log, retries).
May import collect, runtime, bundle, store."""
