"""Static checks of the GKE deployment: terraform/gke/cluster (the cluster),
terraform/gke/knative (Knative and the app, through the overlay in
terraform/gke/knative/overlay). Providers can't be downloaded here, so these
read the HCL and render the overlay."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.support.deployed import GENERATE_ENV, Hcl
from tests.support.hcl import norm

REPO = Path(__file__).resolve().parent.parent
GKE = REPO / "terraform" / "gke"
hcl2 = pytest.importorskip("hcl2", reason="python-hcl2 is needed to read terraform/gke")
yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read the rendered overlay")
needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl renders the overlay")
needs_terraform = pytest.mark.skipif(
    shutil.which("terraform") is None, reason="terraform runs ./serving-config"
)


@cache
def _module(name: str) -> dict[str, list[dict[str, Any]]]:
    merged: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((GKE / name).glob("*.tf")):
        with path.open() as handle:
            for key, blocks in norm(hcl2.load(handle)).items():
                merged.setdefault(key, []).extend(blocks if isinstance(blocks, list) else [blocks])
    return merged


def _typed(name: str, kind: str = "resource") -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (rtype, rname): body
        for block in _module(name).get(kind, [])
        for rtype, named in block.items()
        for rname, body in named.items()
    }


def _one(body: dict[str, Any], block: str) -> dict[str, Any]:
    (found,) = body[block]
    assert isinstance(found, dict)
    return found


@pytest.mark.parametrize("name", ["cluster", "knative"])
def test_every_variable_is_typed_and_described(name: str) -> None:
    # Arrange
    variables = {k: v for block in _module(name)["variable"] for k, v in block.items()}

    # Act
    lacking = [
        k for k, v in variables.items() if "type" not in v or not str(v.get("description", "")).strip()
    ]

    # Assert
    assert variables and not lacking


def test_cluster_is_standard_with_workload_identity_and_dataplane_v2() -> None:
    # Arrange
    cluster = _typed("cluster")[("google_container_cluster", "this")]
    pool = _typed("cluster")[("google_container_node_pool", "default")]

    # Act
    node = _one(pool, "node_config")

    # Assert
    assert "enable_autopilot" not in cluster
    assert cluster["datapath_provider"] == "ADVANCED_DATAPATH"
    assert _one(cluster, "workload_identity_config")["workload_pool"] == "${var.project}.svc.id.goog"
    assert cluster["remove_default_node_pool"] is True
    assert _one(node, "workload_metadata_config")["mode"] == "GKE_METADATA"
    assert node["service_account"] == "${google_service_account.nodes.email}"
    assert pool["cluster"] == "${google_container_cluster.this.id}"


def test_node_account_has_only_the_node_role_and_pull_rights_on_our_repository() -> None:
    # Arrange
    member = "${google_service_account.nodes.member}"

    # Act
    grants = sorted(
        (rtype, body["role"], body.get("repository", body.get("project")))
        for (rtype, _), body in _typed("cluster").items()
        if rtype.endswith("_iam_member") and body["member"] == member
    )

    # Assert
    assert grants == [
        (
            "google_artifact_registry_repository_iam_member",
            "roles/artifactregistry.reader",
            "${google_artifact_registry_repository.images.name}",
        ),
        ("google_project_iam_member", "roles/container.defaultNodeServiceAccount", "${var.project}"),
    ]


def test_knative_module_configures_its_providers_from_data_sources_only() -> None:
    # Arrange
    providers = {k: v for block in _module("knative")["provider"] for k, v in block.items()}

    # Act
    references = re.findall(r"\$\{([^}]*)\}", str(providers))

    # Assert
    assert "kubectl" in providers
    assert references and all(ref.startswith(("data.", "var.", "base64decode(data.")) for ref in references)
    assert not _typed("knative", "resource").keys() & {("google_container_cluster", "this")}


def test_knative_version_is_pinned_and_matches_the_readme_and_schemas() -> None:
    # Arrange
    variables = {k: v for block in _module("knative")["variable"] for k, v in block.items()}
    readme = (REPO / "knative" / "README.md").read_text()

    # Act
    version = variables["knative_version"]["default"]
    minikube = re.search(r"export KNATIVE=(knative-v[0-9.]+)", readme)

    # Assert
    assert re.fullmatch(r"knative-v1\.\d+\.\d+", version)
    assert minikube and minikube.group(1) == version
    # The CRD schemas CI validates the manifests against are this version's.
    assert f"deploy-schemas/{version}" in (REPO / ".ci" / "run").read_text()


@cache
def _overlay() -> list[dict[str, Any]]:
    copy = Path(tempfile.mkdtemp(prefix="gke-"))
    shutil.copytree(
        REPO / "knative",
        copy / "knative",
        ignore=shutil.ignore_patterns("*.env", "accounts", "admin-password.txt"),
    )
    shutil.copytree(GKE / "knative" / "overlay", copy / "terraform" / "gke" / "knative" / "overlay")
    generate = copy / "knative" / "secrets" / "generate.sh"
    subprocess.run(["sh", str(generate)], capture_output=True, check=True, env=GENERATE_ENV)
    target = copy / "terraform" / "gke" / "knative" / "overlay"
    result = subprocess.run(
        ["kubectl", "kustomize", str(target)], capture_output=True, text=True, check=False
    )
    shutil.rmtree(copy)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@needs_kubectl
def test_overlay_points_every_bloodcell_image_at_the_repository_terraform_substitutes() -> None:
    # Arrange
    app = (GKE / "knative" / "app.tf").read_text()
    placeholder = re.search(r'placeholder_repository = "([^"]+)"', app)
    spec = importlib.util.spec_from_file_location("check_images", REPO / "tools" / "check_images.py")
    assert spec and spec.loader and placeholder
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)

    # Act
    images = [
        c["image"]
        for doc in _overlay()
        if "template" in doc.get("spec", {}) and doc["kind"] != "Trigger"
        for c in doc["spec"]["template"]["spec"]["containers"]
    ]
    ours = {i for i in images if "rustfs" not in i}

    # Assert
    assert {i.rsplit("/", 1)[-1].split(":")[0] for i in ours} == {
        "preprocess",
        "predict",
        "webapp",
        "eventsource",
    }
    assert all(i.startswith(placeholder.group(1) + "/") for i in ours), ours
    assert check.problems(images) == []


# ---- Knative Serving's ConfigMaps (B2: a replaced config-deployment lost queue-sidecar-image) ----

# The data keys of the three ConfigMaps as knative/serving ships them at the
# pinned tag (config/core/configmaps/*.yaml at knative-v1.18.0). The release
# build replaces the ko:// path with the queue-proxy image's digest.
RELEASE_CONFIG = {
    "config-deployment": {
        "queue-sidecar-image": "ko://knative.dev/serving/cmd/queue",
        "_example": "registries-skipping-tag-resolving: kind.local,ko.local,dev.local\n",
    },
    "config-network": {"_example": "ingress-class: kourier.ingress.networking.knative.dev\n"},
    "config-features": {"_example": "kubernetes.podspec-volumes-emptydir: disabled\n"},
}


def _config_map(name: str, data: dict[str, str]) -> str:
    labels = {"app.kubernetes.io/name": "knative-serving", "app.kubernetes.io/component": "controller"}
    meta = {"name": name, "namespace": "knative-serving", "labels": labels}
    return str(yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}))


def _serving_config(work: Path, documents: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`terraform apply` of ./serving-config on these documents with knative.tf's own overrides."""
    (block,) = (b for b in _module("knative")["locals"] if "serving_config" in b)
    # (local.registry_host is split("/", var.image_repository)[0], given here)
    hcl = Hcl({}, {"registry_host": "europe-west1-docker.pkg.dev"})
    overrides = hcl.value(block["serving_config"])
    shutil.copytree(GKE / "knative" / "serving-config", work)
    (work / "terraform.tfvars.json").write_text(json.dumps({"documents": documents, "overrides": overrides}))
    subprocess.run(
        ["terraform", "init", "-input=false"], cwd=work, capture_output=True, check=True, timeout=120
    )
    return subprocess.run(
        ["terraform", "apply", "-auto-approve", "-input=false", "-no-color", "-json"],
        cwd=work, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _outputs(work: Path) -> dict[str, Any]:
    result = subprocess.run(
        ["terraform", "output", "-json"], cwd=work, capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(result.stdout)  # type: ignore[no-any-return]


@needs_terraform
def test_serving_config_keeps_every_key_of_the_pinned_release(tmp_path: Path) -> None:
    # Arrange
    other = yaml.safe_dump(
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "controller"}}
    )
    documents = {f"serving-core/{i}": _config_map(n, d) for i, (n, d) in enumerate(RELEASE_CONFIG.items())}
    documents["serving-core/9"] = other

    # Act
    result = _serving_config(tmp_path / "module", documents)
    applied = _outputs(tmp_path / "module")["documents"]["value"]

    # Assert
    assert result.returncode == 0, result.stdout + result.stderr
    assert applied["serving-core/9"] == other
    for i, (name, release) in enumerate(RELEASE_CONFIG.items()):
        config_map = yaml.safe_load(applied[f"serving-core/{i}"])
        assert config_map["metadata"]["name"] == name
        assert set(config_map["data"]) > set(release), f"{name} lost or added nothing: {config_map['data']}"
        assert {k: config_map["data"][k] for k in release} == release, name
    deployment = yaml.safe_load(applied["serving-core/0"])["data"]
    assert deployment["queue-sidecar-image"] == "ko://knative.dev/serving/cmd/queue"
    assert deployment["registries-skipping-tag-resolving"].endswith(",europe-west1-docker.pkg.dev")


@needs_terraform
def test_serving_config_refuses_a_release_without_a_configmap_it_sets(tmp_path: Path) -> None:
    # Arrange
    documents = {"serving-core/0": _config_map("config-network", RELEASE_CONFIG["config-network"])}

    # Act
    result = _serving_config(tmp_path / "module", documents)

    # Assert
    assert result.returncode != 0
    assert "config-deployment" in result.stdout + result.stderr


def test_release_configmaps_reach_the_cluster_only_through_the_merge() -> None:
    # Arrange
    manifests = _typed("knative")
    modules = {k: v for block in _module("knative")["module"] for k, v in block.items()}

    # Act
    core = manifests[("kubectl_manifest", "knative_core")]
    text = (GKE / "knative" / "knative.tf").read_text()

    # Assert: every core document passes through ./serving-config, none is dropped or replaced whole.
    assert core["for_each"] == "${module.serving_config.documents}"
    assert modules["serving_config"]["source"] == "./serving-config"
    assert modules["serving_config"]["documents"] == "${local.release_core_documents}"
    assert "ConfigMap" not in re.sub(r"(?m)#.*$", "", text), "no ConfigMap filtered out or written here"


# ---- private cluster: the control plane must reach Knative's webhooks (B3) ----

KNATIVE_WEBHOOK_PORT = "8443"  # Serving's and Eventing's webhook containers (and their Services' targetPort)


def _local(module: str, name: str) -> Any:
    return next(block[name] for block in _module(module).get("locals", []) if name in block)


def _resolve(module: str, value: Any) -> Any:
    """A `${local.x}` (or a list of them) as the local's value; anything else as is."""
    if isinstance(value, list):
        return [_resolve(module, v) for v in value]
    found = re.fullmatch(r"\$\{local\.(\w+)\}", str(value))
    return _local(module, found.group(1)) if found else value


def test_control_plane_may_call_the_knative_webhooks_on_the_nodes() -> None:
    # Arrange
    resources = _typed("cluster")
    cluster = resources[("google_container_cluster", "this")]
    pool = _one(resources[("google_container_node_pool", "default")], "node_config")
    master_cidr = _resolve("cluster", _one(cluster, "private_cluster_config")["master_ipv4_cidr_block"])
    firewalls = [body for (rtype, _), body in resources.items() if rtype == "google_compute_firewall"]

    # Act
    opening = [
        rule
        for rule in firewalls
        if rule.get("direction", "INGRESS") == "INGRESS"
        and _resolve("cluster", rule["source_ranges"]) == [master_cidr]
        and any(
            a["protocol"] == "tcp" and KNATIVE_WEBHOOK_PORT in a.get("ports", [])
            for a in rule.get("allow", [])
        )
    ]

    # Assert
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+/28", master_cidr)
    assert len(opening) == 1, "no firewall rule lets the control plane reach port 8443 on the nodes"
    (rule,) = opening
    assert rule["network"] == cluster.get("network", "default")
    assert set(_resolve("cluster", rule["target_tags"])) <= set(_resolve("cluster", pool["tags"]))
    assert all(a.get("ports") == [KNATIVE_WEBHOOK_PORT] for a in rule["allow"]), "only the webhook port"
