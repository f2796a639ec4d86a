"""Kubernetes connection options, the kubectl way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ir.cluster.kube import Kube, connect


def kube_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option(
        "--kubeconfig",
        metavar="FILE",
        envvar="KUBECONFIG",
        help="kubeconfig file (default $KUBECONFIG, ~/.kube/config, or in-cluster).",
    )(func)
    func = click.option(
        "--context", "kube_context", metavar="NAME", help="kubeconfig context (default: current)."
    )(func)
    func = click.option(
        "-n", "--namespace", metavar="NS", help="Namespace (default: the context's, else default)."
    )(func)
    return func


def kube_from(kubeconfig: str | None, kube_context: str | None, namespace: str | None) -> Kube:
    return connect(kubeconfig, kube_context, namespace)


dry_run_option = click.option(
    "--dry-run",
    is_flag=True,
    help="Change nothing: print every API request that would be sent (reads still happen).",
)
protected_option = click.option(
    "--allow-protected-namespace",
    is_flag=True,
    help="Allow acting in kube-system, kube-public and kube-node-lease.",
)


def probe_image_option(fn: Any) -> Any:
    """--probe-image: prove a quarantine by traffic (ir.cluster.probe)."""
    return click.option(
        "--probe-image",
        metavar="IMAGE",
        envvar="IR_PROBE_IMAGE",
        help="Image of a short-lived probe pod (busybox sh, nc, timeout) that connects to the "
        "suspect before and after the quarantine policy, so ir can say the cluster enforces it. "
        "Without it: 'policy applied, enforcement not verified'. Env: IR_PROBE_IMAGE.",
    )(fn)
