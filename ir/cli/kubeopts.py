"""Kubernetes connection options, the kubectl way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ir.cluster.kube import Kube, connect

AS_KEY = "ir.kube.as"


def _remember_as(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value:
        ctx.meta[AS_KEY] = value


as_option = click.option(
    "--as",
    "act_as",
    metavar="USER",
    envvar="IR_KUBE_AS",
    expose_value=False,
    callback=_remember_as,
    help="Act as this user or service account (kubectl's --as: Impersonate-User), e.g. "
    "system:serviceaccount:ir-system:ir-responder, so that identity's RBAC and admission "
    "policies bound what ir does. Env: IR_KUBE_AS.",
)


def acting_as() -> str | None:
    """The --as of the command being run (None outside a click command or without it)."""
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get(AS_KEY) if ctx is not None else None


def kube_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = as_option(func)
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
    return connect(kubeconfig, kube_context, namespace, act_as=acting_as())


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


def collector_options(image_default: str | None = None) -> Callable[[Any], Any]:
    """--collector-image and its settings (ir.cluster.collector.CollectorSettings); the command
    gets `collector` (None without an image)."""

    def decorate(fn: Any) -> Any:
        options = [
            click.option(
                "--collector-image",
                metavar="IMAGE",
                envvar="IR_COLLECTOR_IMAGE",
                default=image_default,
                show_default=image_default is not None,
                help="ir's node-collector image. For a pod on a node ir is not on, a "
                "short-lived privileged pod of this image, pinned to that node (hostPID, "
                "read-only runtime state, no exec into the suspect), captures the containers. "
                "Env: IR_COLLECTOR_IMAGE.",
            ),
            click.option(
                "--collector-namespace",
                default="ir-collectors",
                show_default=True,
                metavar="NS",
                help="Namespace of the collector pod (the one namespace that needs Pod "
                "Security privileged).",
            ),
            click.option(
                "--collector-upload",
                type=click.Choice(["direct", "relay"]),
                default="direct",
                show_default=True,
                help="With an S3 store: the collector uploads the bundle itself (direct; this ir "
                "then verifies it in S3 and adds a custody record) or sends it back through the "
                "apiserver for this ir to upload (relay). A local store is always relayed.",
            ),
            click.option(
                "--collector-service-account",
                default="ir-node-collector",
                show_default=True,
                metavar="NAME",
                help="Service account of a direct-upload collector: reads the pod's Kubernetes "
                "context (read-only RBAC in deploy/kustomize/node-collector) and, with IRSA or "
                "workload identity, holds the S3 role.",
            ),
            click.option(
                "--collector-secret",
                default="ir-store",
                show_default=True,
                metavar="NAME",
                help="Secret in the collector namespace whose keys become a direct-upload "
                "collector's environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
                "AWS_ENDPOINT_URL_S3...); optional: without it the pod's role is used. Never on "
                "the command line.",
            ),
        ]
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def collector_settings(
    collector_image: str | None,
    collector_namespace: str,
    collector_upload: str,
    collector_service_account: str,
    collector_secret: str | None,
) -> Any:
    """The CollectorSettings of the options above (None without an image)."""
    from ir.cluster.collector import CollectorSettings

    if not collector_image:
        return None
    return CollectorSettings(
        collector_image,
        collector_namespace,
        collector_upload,
        collector_service_account,
        collector_secret or None,
    )


cluster_name_option = click.option(
    "--cluster-name",
    metavar="NAME",
    envvar="IR_CLUSTER_NAME",
    help="This cluster's name, as alerts give it (the EKS cluster name in GuardDuty findings, "
    "an Alertmanager `cluster` label). An alert that names a cluster acts on a node only when "
    "it is this one; a GuardDuty finding never acts on a node without it. Env: IR_CLUSTER_NAME.",
)
