"""RunSpecs of our containers in rendered knative/: Knative Services and our own Deployments.

The environment is resolved by tests/support/deployed.py (the same resolution the
start-up check tests use); what is added here is the rest of the container: command,
args, security context, volumes, port, probes, and the values the platform itself
injects (Knative Serving's PORT and K_*; a SinkBinding's K_SINK and K_CE_OVERRIDES).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tests.support.deployed import knative_env
from tools.asdeployed.spec import (
    Probe,
    RunSpec,
    SecretMount,
    SpecError,
    Tmpfs,
    image_of,
    quantity_bytes,
)

KSVC = ("serving.knative.dev/v1", "Service")
DEPLOYMENT = ("apps/v1", "Deployment")
SINK_BINDING = ("sources.knative.dev/v1", "SinkBinding")
PROBES = (("startupProbe", "startup"), ("readinessProbe", "readiness"), ("livenessProbe", "liveness"))
# Where Knative Eventing's broker ingress takes a Broker's events (what K_SINK holds in the cluster).
BROKER_URL = "http://broker-ingress.knative-eventing.svc.cluster.local/{namespace}/{name}"

Docs = Iterable[dict[str, Any]]


def _key(doc: Mapping[str, Any]) -> tuple[str, str]:
    return (str(doc.get("apiVersion")), str(doc.get("kind")))


def _ours(doc: Mapping[str, Any]) -> bool:
    containers = doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    return any("bloodcell-" in str(c.get("image", "")) for c in containers)


def workloads(docs: Docs) -> list[dict[str, Any]]:
    """Knative Services and Deployments that run one of our images, in rendered order."""
    return [doc for doc in docs if _key(doc) in (KSVC, DEPLOYMENT) and _ours(doc)]


def _port_number(value: Any, ports: Mapping[str, int], default: int, where: str) -> int:
    if value is None:
        return default
    if isinstance(value, int):
        return value
    if str(value).isdigit():
        return int(value)
    if str(value) not in ports:
        raise SpecError(f"{where}: probe port {value!r} names no port of the container")
    return ports[str(value)]


def probes(
    container: Mapping[str, Any], port: int, *, knative_service: bool, where: str
) -> tuple[Probe, ...]:
    """The container's probes; a Knative Service without a readiness probe gets Serving's TCP default."""
    named = {str(p["name"]): int(p["containerPort"]) for p in container.get("ports", []) if "name" in p}
    found = []
    for field, kind in PROBES:
        probe = container.get(field)
        if probe is None:
            continue
        if "httpGet" in probe:
            get = probe["httpGet"]
            number = _port_number(get.get("port"), named, port, where)
            found.append(Probe(kind, number, str(get.get("path", "/"))))
        elif "tcpSocket" in probe:
            found.append(Probe(kind, _port_number(probe["tcpSocket"].get("port"), named, port, where)))
        else:
            raise SpecError(f"{where}: {field} is neither httpGet nor tcpSocket ({sorted(probe)})")
    if knative_service and not any(p.kind == "readiness" for p in found):
        found.append(Probe("readiness", port))
    return tuple(found)


def _security(pod: Mapping[str, Any], container: Mapping[str, Any], where: str) -> dict[str, Any]:
    context = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    capabilities = context.get("capabilities", {})
    if capabilities.get("add"):
        raise SpecError(f"{where}: capabilities.add {capabilities['add']} is not given by this check")
    user = context.get("runAsUser")
    group = context.get("runAsGroup")
    if group is not None and user is None:
        raise SpecError(f"{where}: runAsGroup without runAsUser is not given by this check")
    return {
        "user": None if user is None else (f"{user}:{group}" if group is not None else str(user)),
        "read_only": context.get("readOnlyRootFilesystem") is True,
        "drop_all_capabilities": "ALL" in capabilities.get("drop", []),
        "no_new_privileges": context.get("allowPrivilegeEscalation") is False,
    }


def _volumes(
    pod: Mapping[str, Any], container: Mapping[str, Any], root: Path, where: str
) -> tuple[tuple[Tmpfs, ...], tuple[SecretMount, ...]]:
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    tmpfs, secrets = [], []
    for mount in container.get("volumeMounts", []):
        volume = volumes.get(mount["name"])
        if volume is None:
            raise SpecError(f"{where}: volumeMount {mount['name']!r} names no volume of the pod")
        target = str(mount["mountPath"])
        if "emptyDir" in volume:
            limit = (volume["emptyDir"] or {}).get("sizeLimit")
            tmpfs.append(Tmpfs(target, None if limit is None else quantity_bytes(limit)))
        elif "secret" in volume:
            source = root / target.lstrip("/")
            files = tuple(sorted(p.name for p in source.iterdir()))
            secrets.append(
                SecretMount(source, target, files, int(volume["secret"].get("defaultMode", 0o644)))
            )
        else:
            raise SpecError(f"{where}: volume {mount['name']!r} is of a kind this check does not give")
    return tuple(tmpfs), tuple(secrets)


def _sink_env(docs: Docs, name: str, namespace: str) -> dict[str, str]:
    """K_SINK and K_CE_OVERRIDES of the SinkBinding whose subject is this Deployment, if any."""
    for doc in docs:
        spec = doc.get("spec", {})
        subject = spec.get("subject", {})
        if _key(doc) != SINK_BINDING or (subject.get("kind"), subject.get("name")) != ("Deployment", name):
            continue
        ref = spec["sink"].get("ref", {})
        if ref.get("kind") == "Broker":
            sink = BROKER_URL.format(namespace=ref.get("namespace", namespace), name=ref["name"])
        else:
            sink = str(spec["sink"].get("uri", ""))
        env = {"K_SINK": sink}
        if "ceOverrides" in spec:
            env["K_CE_OVERRIDES"] = json.dumps(spec["ceOverrides"], separators=(",", ":"))
        return env
    return {}


def knative_spec(docs: Docs, workload: Mapping[str, Any], root: Path, platform: str) -> RunSpec:
    """One workload's container as its platform starts it; secret files are written under ``root``."""
    docs = list(docs)
    name = str(workload["metadata"]["name"])
    where = f"{platform}/{name}"
    pod = workload["spec"]["template"]["spec"]
    containers = pod["containers"]
    if len(containers) != 1:
        raise SpecError(f"{where}: {len(containers)} containers; this check runs single-container pods")
    (container,) = containers
    try:
        env = knative_env(docs, name, root, rewrite_paths=False)
    except KeyError as missing:
        raise SpecError(
            f"{where}: its env or volumes name {missing}, which the rendered manifests do not hold "
            "(a missing Secret, ConfigMap or key: the kubelet would not start the container)"
        ) from None
    ports = container.get("ports", [])
    named = [p for p in ports if p.get("name") == "http"]
    port = int((named or ports or [{"containerPort": 8080}])[0]["containerPort"])
    is_ksvc = _key(workload) == KSVC
    if is_ksvc:
        revision = f"{name}-00001"
        env |= {"PORT": str(port), "K_SERVICE": name, "K_CONFIGURATION": name, "K_REVISION": revision}
    else:
        env |= _sink_env(docs, name, str(workload["metadata"].get("namespace", "default")))
    tmpfs, secrets = _volumes(pod, container, root, where)
    command, args = container.get("command"), container.get("args")
    return RunSpec(
        platform=platform,
        workload=name,
        image=image_of(str(container["image"])),
        env=env,
        command=None if command is None else tuple(map(str, command)),
        args=None if args is None else tuple(map(str, args)),
        tmpfs=tmpfs,
        secrets=secrets,
        port=port,
        probes=probes(container, port, knative_service=is_ksvc, where=where),
        **_security(pod, container, where),
    )


def knative_specs(docs: Docs, root: Path, platform: str = "knative") -> list[RunSpec]:
    """Every one of our containers in the rendered manifests, each with its own folder under ``root``."""
    docs = list(docs)
    return [knative_spec(docs, doc, root / str(doc["metadata"]["name"]), platform) for doc in workloads(docs)]
