"""RunSpecs of the Cloud Run services in terraform/services.tf, read with python-hcl2.

Variables come from their defaults, then a tfvars file (terraform.tfvars.example,
what an operator copies), then the caller's (the sign-in accounts). Expressions are
evaluated by tests/support/deployed.py's ``Hcl``, secrets (env and Secret Manager
volumes) by its ``cloud_run_env``. Cloud Run sets no user, read-only root or
capabilities from these files: the image's USER and a writable in-memory root are
what a Cloud Run container gets, so that is what the spec says.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.support.deployed import Hcl, cloud_run_env, terraform_config
from tests.support.hcl import norm
from tools.asdeployed.spec import Probe, RunSpec, SecretMount, SpecError, image_of

SERVICE = "google_cloud_run_v2_service"
SECRET_VERSION = "google_secret_manager_secret_version"
PLATFORM = "cloudrun"


def tfvars(path: Path) -> dict[str, Any]:
    """The assignments of a .tfvars file."""
    import hcl2

    with path.open() as handle:
        values: dict[str, Any] = norm(hcl2.load(handle))
    return values


def _one(block: Any, where: str) -> Mapping[str, Any]:
    """python-hcl2 gives each nested block as a list of its bodies; these each appear once."""
    if isinstance(block, list):
        if len(block) != 1:
            raise SpecError(f"{where}: expected one block, found {len(block)}")
        block = block[0]
    if not isinstance(block, Mapping):
        raise SpecError(f"{where}: not a block: {block!r}")
    return block


def _probe(kind: str, body: Mapping[str, Any], hcl: Hcl, port: int, where: str) -> Probe:
    if "tcp_socket" in body:
        tcp = _one(body["tcp_socket"], where)
        return Probe(kind, int(hcl.value(tcp.get("port", port))))
    if "http_get" in body:
        get = _one(body["http_get"], where)
        return Probe(kind, int(hcl.value(get.get("port", port))), str(hcl.value(get.get("path", "/"))))
    raise SpecError(f"{where}: {kind} probe is neither tcp_socket nor http_get ({sorted(body)})")


def cloud_run_spec(
    tf: Mapping[str, Any], key: str, hcl: Hcl, root: Path, platform: str = PLATFORM
) -> RunSpec:
    """One service's container as Cloud Run starts it; secret files are written under ``root``."""
    where = f"{platform}/{key}"
    body = tf["resources"][(SERVICE, key)]
    versions = {n: b for (t, n), b in tf["resources"].items() if t == SECRET_VERSION}
    template = _one(body["template"], where)
    container = _one(template["containers"], where)
    try:
        env = cloud_run_env(body, hcl, versions, root, rewrite_paths=False)
    except KeyError as missing:
        raise SpecError(f"{where}: it names {missing}, which terraform/ does not declare") from None
    name = str(hcl.value(body["name"]))
    ports = container.get("ports", [])
    port = int(hcl.value(_one(ports, where).get("container_port", 8080))) if ports else 8080
    env |= {"PORT": str(port), "K_SERVICE": name, "K_CONFIGURATION": name, "K_REVISION": f"{name}-00001-ci"}
    found = [
        _probe(kind, _one(container[field], where), hcl, port, where)
        for field, kind in (("startup_probe", "startup"), ("liveness_probe", "liveness"))
        if field in container
    ]
    if not any(p.kind == "startup" for p in found):  # Cloud Run's default: a TCP startup probe
        found.insert(0, Probe("startup", port))
    volumes = {v["name"]: v for v in template.get("volumes", [])}
    secrets = []
    for mount in container.get("volume_mounts", []):
        volume = volumes.get(mount["name"])
        if volume is None or "secret" not in volume:
            raise SpecError(f"{where}: volume {mount['name']!r} is not a Secret Manager volume declared here")
        target = str(hcl.value(mount["mount_path"]))
        source = root / target.lstrip("/")
        files = tuple(sorted(p.name for p in source.iterdir()))
        secrets.append(SecretMount(source, target, files, 0o444))
    return RunSpec(
        platform=platform,
        workload=name,
        image=image_of(str(hcl.value(container["image"]))),
        env=env,
        command=None if "command" not in container else tuple(map(str, hcl.value(container["command"]))),
        args=None if "args" not in container else tuple(map(str, hcl.value(container["args"]))),
        user=None,
        read_only=False,
        drop_all_capabilities=False,
        no_new_privileges=False,
        tmpfs=(),
        secrets=tuple(secrets),
        port=port,
        probes=tuple(found),
    )


def cloud_run_specs(
    terraform: Path,
    variables: Mapping[str, Any],
    root: Path,
    *,
    only: tuple[str, ...] = (),
    platform: str = PLATFORM,
) -> list[RunSpec]:
    """The Cloud Run services of the module (``only`` these, if given), variables over their defaults."""
    tf = terraform_config(terraform)
    hcl = Hcl({**tf["variables"], **variables}, tf["locals"])
    keys = [name for (rtype, name) in tf["resources"] if rtype == SERVICE and (not only or name in only)]
    return [cloud_run_spec(tf, key, hcl, root / key, platform) for key in keys]
