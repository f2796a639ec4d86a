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
