"""Kubernetes names an alert may carry, validated before anything acts on them (DNS-1123, label
and annotation syntax), and the namespaces protected by default.

Every check is a full match on the whole string: a trailing newline, a slash, a space or a shell
metacharacter makes a name invalid, so it can never address another object or namespace.
"""

from __future__ import annotations

import re

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
CONTAINER_ID = re.compile(r"[0-9a-f]{12,64}")
CONTAINER_RUNTIMES = ("docker", "containerd", "cri-o", "crio")
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")

PROTECTED_NAMESPACES: tuple[str, ...] = ("kube-system", "kube-public", "kube-node-lease")
#: the only label and annotation keys ir sets (deploy/kustomize/base/admission.yaml enforces it)
IR_KEY_PREFIX = "ir.forensics/"
MAX_ANNOTATION_VALUE = 4096


def is_dns1123_label(name: object) -> bool:
    """Namespaces, container names: lower-case alphanumerics and '-', at most 63 characters."""
    return isinstance(name, str) and len(name) <= 63 and DNS1123_LABEL.fullmatch(name) is not None


def is_dns1123_subdomain(name: object) -> bool:
    """Pod, node, service-account and workload names: labels joined by '.', at most 253."""
    return (
        isinstance(name, str) and len(name) <= 253 and DNS1123_SUBDOMAIN.fullmatch(name) is not None
    )


def split_container_id(value: object) -> tuple[str, str | None] | None:
    """`containerd://<hex>` or `<hex>` → (hex id, runtime or None); None when invalid."""
    if not isinstance(value, str):
        return None
    runtime = None
    if "://" in value:
        runtime, _, value = value.partition("://")
        if runtime not in CONTAINER_RUNTIMES:
            return None
    if CONTAINER_ID.fullmatch(value) is None:
        return None
    return value, runtime


def label_key_problem(key: object) -> str | None:
    """Why `key` is not a valid label/annotation key (`[prefix/]name`); None when valid."""
    if not isinstance(key, str) or not key:
        return "must be a non-empty string"
    prefix, slash, name = key.rpartition("/")
    if slash and not is_dns1123_subdomain(prefix):
        return f"prefix {prefix!r} is not a DNS-1123 subdomain"
    if len(name) > 63 or _LABEL_NAME.fullmatch(name) is None:
        return f"name {name!r} must be 1-63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric"
    return None


def label_value_problem(value: object) -> str | None:
    """Why `value` is not a valid label value; None when valid (empty is valid)."""
    if not isinstance(value, str):
        return "must be a string"
    if value and (len(value) > 63 or _LABEL_NAME.fullmatch(value) is None):
        return "must be at most 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric"
    return None


def annotation_value_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if len(value) > MAX_ANNOTATION_VALUE:
        return f"longer than {MAX_ANNOTATION_VALUE} characters"
    return None
