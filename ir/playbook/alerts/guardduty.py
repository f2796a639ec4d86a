"""Amazon GuardDuty findings about EKS (Runtime Monitoring and EKS audit log monitoring).

Accepted as sent by an EventBridge rule (`{"detail-type": "GuardDuty Finding", "source":
"aws.guardduty", "detail": <finding>}`, e.g. through an API destination), as a bare finding, or as
a GetFindings response (`{"findings": [...]}`). Keys are camelCase in EventBridge and the REST API
and PascalCase in boto3 output; both are read.

Target: `resource.kubernetesDetails.kubernetesWorkloadDetails` (type "pods" → a pod, other types →
a workload), `kubernetesUserDetails.username` of the form `system:serviceaccount:NS:NAME` → a
service account, `resource.instanceDetails` (the worker node; its private DNS name is the EKS node
name) → the node.
"""

from __future__ import annotations

from typing import Any

from ir.playbook.alerts.model import Alert, AlertError, as_text, parse_alert_time_exact

SOURCE = "guardduty"
MAX_FINDINGS = 100
_ENVELOPE_FIELDS = (
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
)


def detect(document: dict[str, Any]) -> bool:
    if (
        document.get("source") == "aws.guardduty"
        or document.get("detail-type") == "GuardDuty Finding"
    ):
        return True
    if isinstance(_get(document, "findings"), list):
        return True
    return (
        _get(document, "schemaVersion") is not None
        and _get(document, "resource") is not None
        and (isinstance(_get(document, "type"), str))
    )


def parse(document: dict[str, Any]) -> list[Alert]:
    """Each finding → one Alert. Raises AlertError on the wrong shape or types."""
    envelope: dict[str, Any] = {}
    if "detail" in document and (
        "detail-type" in document or document.get("source") == "aws.guardduty"
    ):
        if document.get("detail-type") != "GuardDuty Finding":
            raise AlertError(
                f"guardduty: EventBridge event of type {str(document.get('detail-type'))[:64]!r}, "
                "expected 'GuardDuty Finding'"
            )
        envelope = {k: document[k] for k in _ENVELOPE_FIELDS if k in document}
        findings: Any = [document["detail"]]
    elif isinstance(_get(document, "findings"), list):
        findings = _get(document, "findings")
    else:
        findings = [document]
    if len(findings) > MAX_FINDINGS:
        raise AlertError(
            f"guardduty: {len(findings)} findings in one body; the limit is {MAX_FINDINGS}"
        )
    alerts = []
    for index, finding in enumerate(findings):
        camel = _camel(finding)
        notes = () if camel == finding else ("keys converted from PascalCase (boto3) to camelCase",)
        alerts.append(_parse_finding(index, camel, envelope, notes))
    return alerts


def _camel(value: Any) -> Any:
    """boto3 prints findings with PascalCase keys; EventBridge and the REST API use camelCase.
    Playbook JSON Pointers are written against camelCase, so the raw finding is kept in that form."""
    if isinstance(value, dict):
        return {
            (k[:1].lower() + k[1:] if isinstance(k, str) else k): _camel(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def _parse_finding(
    index: int, finding: Any, envelope: dict[str, Any], notes_in: tuple[str, ...]
) -> Alert:
    where = f"guardduty: finding[{index}]"
    if not isinstance(finding, dict):
        raise AlertError(f"{where} must be an object")
    finding_type = as_text(_get(finding, "type"), limit=512)
    if finding_type is None:
        raise AlertError(f"{where}: 'type' must be a non-empty string")
    finding_id = as_text(_get(finding, "id"), limit=256)
    if finding_id is None:
        raise AlertError(f"{where}: 'id' must be a non-empty string")
    severity = _get(finding, "severity")
    if isinstance(severity, bool) or not isinstance(severity, (int, float, str)):
        raise AlertError(f"{where}: 'severity' must be a number")
    try:
        severity_value = float(severity)
    except ValueError:
        raise AlertError(f"{where}: 'severity' {str(severity)[:32]!r} is not a number") from None
    if not 0 <= severity_value <= 10:
        raise AlertError(f"{where}: 'severity' {severity_value} is outside 0-10")
    resource = _obj(finding, "resource", where)
    service = _obj(finding, "service", where)
    notes: list[str] = list(notes_in)
    # the last time GuardDuty saw the activity; a finding without it is timed by its last update
    time_field, time_value = "eventLastSeen", _get(service, "eventLastSeen")
    for fallback, value in (
        ("updatedAt", _get(finding, "updatedAt")),
        ("createdAt", _get(finding, "createdAt")),
    ):
        if time_value:
            break
        time_field, time_value = fallback, value
    if time_field != "eventLastSeen":
        notes.append(f"no service.eventLastSeen: the time is the finding's {time_field}")
    when = parse_alert_time_exact(time_value, f"{where}: time (eventLastSeen/updatedAt)")

    kubernetes = _obj(resource, "kubernetesDetails", where)
    workload = _obj(kubernetes, "kubernetesWorkloadDetails", where)
    user = _obj(kubernetes, "kubernetesUserDetails", where)
    namespace = pod = workload_kind = workload_name = None
    container = container_id = service_account = None
    if workload:
        kind = (as_text(_get(workload, "type"), limit=64) or "").lower()
        name = as_text(_get(workload, "name"), limit=512)
        namespace = as_text(_get(workload, "namespace"), limit=512)
        if kind in ("pods", "pod"):
            pod = name
        else:
            workload_kind, workload_name = kind or None, name
        service_account = as_text(_get(workload, "serviceAccountName"), limit=512)
        containers = _get(workload, "containers")
        if isinstance(containers, list) and containers and isinstance(containers[0], dict):
            container = as_text(_get(containers[0], "name"), limit=512)
            container_id = _with_runtime(containers[0])
            if len(containers) > 1:
                notes.append(
                    f"{len(containers)} containers named; the first is the target container"
                )
    username = as_text(_get(user, "username"), limit=512) if user else None
    if username and username.startswith("system:serviceaccount:") and not workload:
        parts = username.split(":")
        if len(parts) == 4:
            namespace, service_account = parts[2], parts[3]
    container_details = _obj(resource, "containerDetails", where)
    if container_details and not container_id:
        container_id = _with_runtime(container_details)
    resource_type = as_text(_get(resource, "resourceType"), limit=64)
    eks = _obj(resource, "eksClusterDetails", where)
    node = instance_id = None
    if resource_type == "EKSCluster" or eks or kubernetes:
        instance = _obj(resource, "instanceDetails", where)
        node = _node_name(instance)
        instance_id = as_text(_get(instance, "instanceId"), limit=64)
    else:
        # GuardDuty Runtime Monitoring also watches plain EC2 hosts and ECS: an instance there is
        # no node of a Kubernetes cluster, and must never be cordoned as one
        notes.append(
            f"not a Kubernetes finding (resourceType {resource_type or 'missing'}): no node or "
            "pod of a cluster is named"
        )
    additional = _obj(service, "additionalInfo", where)
    if additional.get("sample") is True:
        notes.append("GuardDuty sample finding (generated, not observed)")
    feature = as_text(_get(service, "featureName"), limit=64)
    cluster = as_text(_get(eks, "name"), limit=100)
    tags = tuple(
        t
        for t in (
            f"resource:{resource_type}" if resource_type else "",
            f"feature:{feature}" if feature else "",
            f"eks-cluster:{cluster}" if cluster else "",
        )
        if t
    )
    return Alert(
        source=SOURCE,
        rule=finding_type,
        priority=_priority(severity_value),
        priority_original=f"{severity_value:g}",
        time=when.utc,
        time_original=when.original,
        alert_id=finding_id,
        tags=tags,
        summary=as_text(_get(finding, "title"), limit=4096) or "",
        namespace=namespace,
        pod=pod,
        container=container,
        container_id=container_id,
        node=node,
        service_account=service_account,
        workload_kind=workload_kind,
        workload_name=workload_name,
        raw=finding,
        envelope=envelope,
        notes=tuple(notes),
        cluster=cluster,
        instance_id=instance_id,
        time_ns=when.ns,
        time_precision=when.precision,
    )


def _priority(severity: float) -> str:
    """GuardDuty bands: Low 1.0-3.9, Medium 4.0-6.9, High 7.0-8.9, Critical 9.0-10.0."""
    if severity >= 9:
        return "alert"
    if severity >= 7:
        return "critical"
    if severity >= 4:
        return "warning"
    return "notice"


def _get(obj: Any, name: str) -> Any:
    """camelCase (EventBridge, REST) or PascalCase (boto3) key."""
    if not isinstance(obj, dict):
        return None
    if name in obj:
        return obj[name]
    return obj.get(name[:1].upper() + name[1:])


def _obj(parent: Any, name: str, where: str) -> dict[str, Any]:
    value = _get(parent, name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AlertError(f"{where}: '{name}' must be an object")
    return value


def _with_runtime(container: dict[str, Any]) -> str | None:
    cid = as_text(_get(container, "id"), limit=256)
    runtime = as_text(_get(container, "containerRuntime"), limit=32)
    if cid and runtime and "://" not in cid:
        return f"{runtime}://{cid}"
    return cid


def _node_name(instance: dict[str, Any]) -> str | None:
    interfaces = _get(instance, "networkInterfaces")
    if isinstance(interfaces, list):
        for interface in interfaces:
            name = as_text(_get(interface, "privateDnsName"), limit=253)
            if name:
                return name
    return None
