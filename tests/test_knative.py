"""Render-time checks of knative/: there is no cluster here, so these check what
`kubectl apply -k knative/` would create against what the code reads."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parent.parent
KNATIVE = REPO / "knative"
sys.path.insert(0, str(REPO / "src"))

from bloodcell.errors import ConfigurationError  # noqa: E402
from bloodcell.events import GCS_FINALIZED  # noqa: E402
from bloodcell.settings import ENV_VARS, Settings  # noqa: E402
from tests.support.deployed import GENERATE_ENV  # noqa: E402

yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read the rendered manifests")

STANDARD_ENV = re.compile(r"^(AWS_|GOOGLE_|K_)[A-Z0-9_]+$")
KSVC = ("serving.knative.dev/v1", "Service")
# Which bucket setting each function reads its events from.
INPUT_BUCKET = {"preprocess": "UPLOAD_BUCKET", "predict": "TENSOR_BUCKET"}
PIPELINE_WORKLOADS = ("preprocess", "predict", "webapp", "bucket-events")
REQUIRED_ENV = {"BLOODCELL_STORAGE", "UPLOAD_BUCKET", "TENSOR_BUCKET", "RESULT_BUCKET"}
ISO_DURATION = re.compile(r"^P(?!$)(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$")

needs_kubectl = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl is not on PATH: cannot render knative/ with kustomize"
)


@cache
def _rendered() -> tuple[dict[str, Any], ...]:
    """What `kubectl apply -k knative/` creates, rendered from a copy with freshly generated credentials."""
    copy = Path(tempfile.mkdtemp(prefix="knative-")) / "knative"
    shutil.copytree(KNATIVE, copy, ignore=shutil.ignore_patterns("*.env", "accounts", "admin-password.txt"))
    subprocess.run(
        ["sh", str(copy / "secrets" / "generate.sh")],
        capture_output=True,
        check=True,
        timeout=60,
        env=GENERATE_ENV,
    )
    result = subprocess.run(
        ["kubectl", "kustomize", str(copy)], capture_output=True, text=True, timeout=120, check=False
    )
    shutil.rmtree(copy.parent)
    assert result.returncode == 0, f"kubectl kustomize knative/ failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def _objects(api_version: str, kind: str) -> dict[str, dict[str, Any]]:
    return {
        doc["metadata"]["name"]: doc
        for doc in _rendered()
        if doc.get("apiVersion") == api_version and doc.get("kind") == kind
    }


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def _environment(obj: dict[str, Any]) -> dict[str, str]:
    """Name -> value (or a marker for secrets) of a workload's single container (and its init containers)."""
    config_maps = {name: doc.get("data", {}) for name, doc in _objects("v1", "ConfigMap").items()}
    pod = _pod_spec(obj)
    (container,) = pod["containers"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        assert ref and ref["name"] in config_maps, f"envFrom must name a ConfigMap rendered here: {source}"
        env.update(config_maps[ref["name"]])
    # Init containers share the settings' names, so their names are checked too.
    extra = [item for init in pod.get("initContainers", []) for item in init.get("env", [])]
    for item in [*extra, *container.get("env", [])]:
        source = next(iter(item.get("valueFrom", {"?": None})))
        env[item["name"]] = item.get("value", f"<from {source}>")
    return env


def _container(obj: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    containers = _pod_spec(obj)["containers"]
    return next(c for c in containers if name is None or c["name"] == name)


def _workloads() -> dict[str, dict[str, Any]]:
    """Everything that runs bloodcell code and reads its settings: Knative Services and our Deployments."""
    ours = {
        name: doc
        for name, doc in _objects("apps/v1", "Deployment").items()
        if any("bloodcell-" in c["image"] for c in _pod_spec(doc)["containers"])
    }
    return _objects(*KSVC) | ours


# ---- rendering and lint ----


@needs_kubectl
def test_kustomize_renders_one_namespace_of_objects() -> None:
    # Arrange
    namespaced = [doc for doc in _rendered() if doc["kind"] != "Namespace"]

    # Act
    namespaces = {doc["metadata"].get("namespace") for doc in namespaced}

    # Assert
    assert namespaces == {"bloodcell"}
    assert set(_objects("v1", "Namespace")) == {"bloodcell"}


@needs_kubectl
def test_kustomize_sets_all_four_bloodcell_images() -> None:
    # Arrange
    images = {
        c["image"]
        for doc in _rendered()
        if "template" in doc.get("spec", {})
        for c in _pod_spec(doc).get("containers", [])
    }

    # Act
    ours = {image for image in images if "bloodcell-" in image}

    # Assert
    assert {re.sub(r":.*$", "", image).rsplit("/", 1)[-1] for image in ours} == {
        "bloodcell-preprocess",
        "bloodcell-predict",
        "bloodcell-webapp",
        "bloodcell-eventsource",
    }
    assert all(":" in image and not image.endswith(":latest") for image in images), images


def test_manifests_pass_yamllint() -> None:
    # Arrange
    pytest.importorskip("yamllint", reason="yamllint is not installed")
    command = [sys.executable, "-m", "yamllint", "--strict", "-c", str(REPO / ".yamllint.yaml"), str(KNATIVE)]

    # Act
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    # Assert
    assert result.returncode == 0, result.stdout + result.stderr


# ---- environment matches the settings the code reads ----


@needs_kubectl
def test_every_environment_name_is_a_setting_the_code_reads() -> None:
    # Arrange
    workloads = _workloads()

    # Act
    unknown = {
        name: sorted(k for k in _environment(obj) if k not in ENV_VARS and not STANDARD_ENV.match(k))
        for name, obj in workloads.items()
    }

    # Assert
    assert set(PIPELINE_WORKLOADS) <= set(workloads)
    assert all(not names for names in unknown.values()), f"unknown environment variables: {unknown}"


@needs_kubectl
def test_every_value_parses_and_no_bound_is_looser_than_the_code_default() -> None:
    """A manifest written before a bound was tightened must not quietly loosen it in the cluster."""
    # Arrange
    declared = {spec.metadata["env"]: spec for spec in dataclasses.fields(Settings)}

    # Act
    looser, unparsable = [], []
    for workload, obj in _workloads().items():
        for env, raw in _environment(obj).items():
            spec = declared.get(env)
            if spec is None or raw.startswith("<from "):
                continue
            try:
                value = spec.metadata["parse"](env, raw)
            except ConfigurationError:
                unparsable.append(f"{workload}: {env}={raw}")
                continue
            default = spec.default
            numbers = isinstance(value, int | float) and isinstance(default, int | float)
            if env.startswith("MAX_") and numbers and value > default:
                looser.append(f"{workload}: {env}={raw} > {default}")

    # Assert
    assert not unparsable, unparsable
    assert not looser, f"bounds looser than the code's defaults: {looser}"


@needs_kubectl
def test_pipeline_workloads_have_their_bucket_settings_and_credentials() -> None:
    # Arrange
    workloads = _workloads()

    # Act
    envs = {name: _environment(workloads[name]) for name in PIPELINE_WORKLOADS}

    # Assert
    for name, env in envs.items():
        assert set(env) >= REQUIRED_ENV, f"{name} lacks {sorted(REQUIRED_ENV - set(env))}"
        assert env["BLOODCELL_STORAGE"] == "s3" and env.get("S3_ENDPOINT_URL"), name
        assert env.get("AWS_ACCESS_KEY_ID", "").startswith("<from secretKeyRef"), name
        assert env.get("AWS_SECRET_ACCESS_KEY", "").startswith("<from secretKeyRef"), name
    assert len({(e["UPLOAD_BUCKET"], e["TENSOR_BUCKET"], e["RESULT_BUCKET"]) for e in envs.values()}) == 1
    assert envs["predict"].get("ARCHIVE_STORAGE") == "s3" and envs["predict"].get("ARCHIVE_BUCKET")
    # the model registry: predict reads the active version, the web app manages it
    registry = envs["predict"].get("MODEL_BUCKET")
    assert registry and registry == envs["webapp"].get("MODEL_BUCKET")


@needs_kubectl
def test_no_workload_sets_the_reserved_port_or_sink() -> None:
    # Arrange: Knative sets PORT on Services, and the SinkBinding sets K_SINK and K_CE_OVERRIDES.
    workloads = _workloads()
    services = set(_objects(*KSVC))

    # Act
    clashing = {
        name: sorted((({"PORT"} if name in services else set()) | {"K_SINK", "K_CE_OVERRIDES"}) & set(env))
        for name, obj in workloads.items()
        for env in [_environment(obj)]
    }

    # Assert
    assert all(not names for names in clashing.values()), clashing


# ---- scaling and resources ----


@needs_kubectl
def test_functions_scale_to_zero_and_the_webapp_keeps_one_instance() -> None:
    # Arrange
    services = _objects(*KSVC)

    # Act
    scale = {
        name: (
            svc["spec"]["template"]["metadata"]["annotations"].get("autoscaling.knative.dev/min-scale"),
            svc["spec"]["template"]["metadata"]["annotations"].get("autoscaling.knative.dev/max-scale"),
        )
        for name, svc in services.items()
    }

    # Assert
    assert scale["preprocess"][0] == "0" and scale["predict"][0] == "0"
    assert scale["webapp"][0] == "1"
    assert all(max_scale and int(max_scale) >= 1 for _, max_scale in scale.values()), scale


@needs_kubectl
def test_every_container_has_requests_limits_and_runs_as_non_root() -> None:
    # Arrange
    pods = [doc for doc in _rendered() if "template" in doc.get("spec", {}) and doc["kind"] != "Trigger"]

    # Act
    containers = [
        (doc["metadata"]["name"], c, _pod_spec(doc)) for doc in pods for c in _pod_spec(doc)["containers"]
    ]

    # Assert
    assert containers
    for name, container, pod in containers:
        resources = container.get("resources", {})
        assert {"cpu", "memory"} <= set(resources.get("requests", {})), name
        assert {"cpu", "memory"} <= set(resources.get("limits", {})), name
        non_root = container.get("securityContext", {}).get("runAsNonRoot") or pod.get(
            "securityContext", {}
        ).get("runAsNonRoot")
        assert non_root is True, name
        assert container.get("securityContext", {}).get("allowPrivilegeEscalation") is False, name


@needs_kubectl
def test_every_knative_service_bounds_its_concurrency() -> None:
    # Arrange
    services = _objects(*KSVC)

    # Act
    concurrency = {
        name: svc["spec"]["template"]["spec"].get("containerConcurrency") for name, svc in services.items()
    }

    # Assert
    assert all(isinstance(c, int) and c > 0 for c in concurrency.values()), concurrency


# ---- events: source -> broker -> triggers -> services ----


@needs_kubectl
def test_event_source_is_bound_to_the_broker_the_triggers_use() -> None:
    # Arrange
    (binding,) = _objects("sources.knative.dev/v1", "SinkBinding").values()
    deployments = _objects("apps/v1", "Deployment")
    brokers = _objects("eventing.knative.dev/v1", "Broker")
    triggers = _objects("eventing.knative.dev/v1", "Trigger")

    # Act
    subject, sink = binding["spec"]["subject"], binding["spec"]["sink"]["ref"]

    # Assert
    assert (subject["apiVersion"], subject["kind"]) == ("apps/v1", "Deployment")
    assert subject["name"] == "bucket-events" and subject["name"] in deployments
    assert (sink["apiVersion"], sink["kind"]) == ("eventing.knative.dev/v1", "Broker")
    assert sink["name"] in brokers
    assert {t["spec"]["broker"] for t in triggers.values()} == {sink["name"]}


@needs_kubectl
def test_event_source_runs_in_receive_mode_behind_a_service() -> None:
    # Arrange
    deployment = _objects("apps/v1", "Deployment")["bucket-events"]
    service = _objects("v1", "Service")["bucket-events"]
    container = _container(deployment)

    # Act
    command = container.get("command", []) + container.get("args", [])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = _environment(deployment)

    # Assert
    assert command[:2] == ["bloodcell", "eventsource"] and "receive" in command
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    assert int(env["PORT"]) == ports["http"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert env["EVENT_WEBHOOK_TOKEN"].startswith("<from secretKeyRef")
    assert deployment["spec"]["replicas"] == 1


def _store_env() -> dict[str, Any]:
    container = _container(_objects("apps/v1", "Deployment")["object-store"])
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


@needs_kubectl
def test_store_notifications_reach_the_event_source_with_its_token() -> None:
    # Arrange
    env = _store_env()
    service = _objects("v1", "Service")["bucket-events"]
    source = _container(_objects("apps/v1", "Deployment")["bucket-events"])
    source_token = next(e for e in source["env"] if e["name"] == "EVENT_WEBHOOK_TOKEN")

    # Act
    endpoint = urlsplit(env["RUSTFS_NOTIFY_WEBHOOK_ENDPOINT_PRIMARY"])

    # Assert
    assert env["RUSTFS_NOTIFY_ENABLE"] == "true" and env["RUSTFS_NOTIFY_WEBHOOK_ENABLE_PRIMARY"] == "on"
    assert endpoint.hostname == service["metadata"]["name"]
    assert endpoint.port in {p["port"] for p in service["spec"]["ports"]}
    assert endpoint.path == "/"
    # RustFS only calls private addresses whose exact origin is allow-listed.
    assert env["RUSTFS_OUTBOUND_ALLOW_ORIGINS"] == f"{endpoint.scheme}://{endpoint.netloc}"
    assert env["RUSTFS_NOTIFY_WEBHOOK_AUTH_TOKEN_PRIMARY"] == source_token["valueFrom"]


@needs_kubectl
def test_store_keeps_undelivered_notifications_on_its_volume() -> None:
    # Arrange
    deployment = _objects("apps/v1", "Deployment")["object-store"]
    container = _container(deployment)
    claims = {v["name"] for v in _pod_spec(deployment)["volumes"] if "persistentVolumeClaim" in v}

    # Act
    queue_dir = _store_env()["RUSTFS_NOTIFY_WEBHOOK_QUEUE_DIR_PRIMARY"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}

    # Assert
    assert mounts.get(queue_dir) in claims, f"{queue_dir} must be on a PersistentVolumeClaim"
    assert mounts.get(_store_env()["RUSTFS_VOLUMES"]) in claims


@needs_kubectl
def test_bucket_job_routes_the_watched_buckets_to_the_store_target() -> None:
    # Arrange
    job = _objects("batch/v1", "Job")["create-buckets"]
    container = _container(job)
    target = next(
        name.removeprefix("RUSTFS_NOTIFY_WEBHOOK_ENABLE_").lower()
        for name, value in _store_env().items()
        if name.startswith("RUSTFS_NOTIFY_WEBHOOK_ENABLE_") and value == "on"
    )

    # Act
    args = container["args"]
    arn = args[args.index("--notify-arn") + 1]
    script = REPO / container["command"][1].removeprefix("/app/")

    # Assert
    assert re.fullmatch(rf"arn:rustfs:sqs:[a-z0-9-]+:{target}:webhook", arn), arn
    assert script.is_file(), f"{script} is not in the repository"
    assert "knative/eventsource/setup_buckets.py" in (KNATIVE / "eventsource" / "Dockerfile").read_text()
    assert container["image"].startswith("dev.local/bloodcell-eventsource:")


# ---- credentials and images ----


def test_no_manifest_commits_a_secret() -> None:
    # Arrange
    manifests = sorted(KNATIVE.glob("*.yaml"))

    # Act
    with_secrets = [
        path.name
        for path in manifests
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "Secret"
    ]
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(KNATIVE / "secrets" / "store.env")], cwd=REPO, check=False
    )

    # Assert
    assert manifests and not with_secrets, f"Secrets committed in {with_secrets}"
    assert ignored.returncode == 0, "knative/secrets/*.env must be git-ignored"


@needs_kubectl
def test_every_secret_is_generated_at_install_with_fresh_values() -> None:
    # Arrange
    secrets = _objects("v1", "Secret")
    again = _rendered.__wrapped__()

    # Act
    second = {d["metadata"]["name"]: d["data"] for d in again if d["kind"] == "Secret"}

    # Assert
    assert set(secrets) == {
        "object-store-credentials",
        "event-webhook-token",
        "webapp-storage-secret",
        "webapp-accounts",
    }
    for name, secret in secrets.items():
        assert secret["data"] and all(secret["data"].values()), name
        assert secret["data"] != second[name], f"{name} came out the same twice: not generated"


def _check_images() -> Any:
    spec = importlib.util.spec_from_file_location("check_images", REPO / "tools" / "check_images.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_kubectl
def test_every_image_is_pinned_and_from_an_allowed_registry() -> None:
    # Arrange
    check = _check_images()
    dockerfiles = [
        *REPO.glob("functions/*/Dockerfile"),
        REPO / "webapp" / "Dockerfile",
        KNATIVE / "eventsource" / "Dockerfile",
    ]

    # Act
    images = [
        c["image"]
        for doc in _rendered()
        if "template" in doc.get("spec", {}) and doc["kind"] != "Trigger"
        for c in _pod_spec(doc).get("containers", []) + _pod_spec(doc).get("initContainers", [])
    ]
    images += [ref for path in dockerfiles for ref in check.images_in(path.read_text(), dockerfile=True)]

    # Assert
    assert len(dockerfiles) == 4 and images
    assert check.problems(images) == []


def test_image_rule_refuses_gone_unlisted_and_unpinned_images() -> None:
    # Arrange
    check = _check_images()
    bad = [
        "minio/minio:RELEASE.2024-12-18T13-15-44Z",
        "quay.io/someone/store:1.0",
        "rustfs/rustfs",
        "rustfs/rustfs:latest",
    ]

    # Act
    found = check.problems(bad)

    # Assert
    assert len(found) == 4 and all(any(image in line for line in found) for image in bad)
    assert (
        check.problems(
            ["rustfs/rustfs@sha256:" + "0" * 64, "europe-west1-docker.pkg.dev/p-1/bloodcell/predict:0.1.0"]
        )
        == []
    )


@needs_kubectl
def test_every_trigger_points_at_an_existing_service_with_a_dead_letter_sink() -> None:
    # Arrange
    services = _objects(*KSVC)
    triggers = _objects("eventing.knative.dev/v1", "Trigger")

    # Act
    refs = {
        name: (
            t["spec"]["subscriber"]["ref"],
            t["spec"].get("delivery", {}).get("deadLetterSink", {}).get("ref"),
        )
        for name, t in triggers.items()
    }

    # Assert
    assert triggers
    for name, (subscriber, dead_letter) in refs.items():
        assert (subscriber["apiVersion"], subscriber["kind"]) == KSVC and subscriber["name"] in services, name
        assert dead_letter and (dead_letter["apiVersion"], dead_letter["kind"]) == KSVC, name
        assert dead_letter["name"] in services and dead_letter["name"] != subscriber["name"], name


@needs_kubectl
def test_every_trigger_retries_with_exponential_backoff() -> None:
    # Arrange
    triggers = _objects("eventing.knative.dev/v1", "Trigger")

    # Act
    deliveries = {name: t["spec"].get("delivery", {}) for name, t in triggers.items()}

    # Assert
    for name, delivery in deliveries.items():
        assert isinstance(delivery.get("retry"), int) and delivery["retry"] > 0, name
        assert delivery.get("backoffPolicy") == "exponential", name
        assert ISO_DURATION.match(str(delivery.get("backoffDelay", ""))), name


@needs_kubectl
def test_each_trigger_filters_finalized_events_of_its_function_input_bucket() -> None:
    # Arrange
    services = _objects(*KSVC)
    triggers = _objects("eventing.knative.dev/v1", "Trigger")

    # Act
    routed = {
        t["spec"]["subscriber"]["ref"]["name"]: t["spec"]["filter"]["attributes"] for t in triggers.values()
    }

    # Assert
    assert set(routed) == set(INPUT_BUCKET)
    for function, attributes in routed.items():
        env = _environment(services[function])
        assert attributes.get("type") == GCS_FINALIZED, function
        assert attributes.get("bucket") == env[INPUT_BUCKET[function]], (
            f"{function}'s trigger filters bucket {attributes.get('bucket')!r}, "
            f"but it reads {INPUT_BUCKET[function]}={env[INPUT_BUCKET[function]]!r}"
        )


# ---- pod specs as checkov checks Pods (checkov does not look inside Knative Services) ----


def _pods() -> dict[str, tuple[dict[str, Any], dict[str, str], bool]]:
    """Every pod template: name -> (pod spec, the labels its pods run with, whether it runs until stopped).

    Knative adds `serving.knative.dev/service: NAME` to the pods of a Service.
    """
    found = {}
    for name, svc in _objects(*KSVC).items():
        labels = svc["spec"]["template"].get("metadata", {}).get("labels", {})
        found[f"ksvc/{name}"] = (_pod_spec(svc), {**labels, "serving.knative.dev/service": name}, True)
    for kind, api in (("Deployment", "apps/v1"), ("Job", "batch/v1")):
        for name, obj in _objects(api, kind).items():
            labels = obj["spec"]["template"]["metadata"].get("labels", {})
            found[f"{kind.lower()}/{name}"] = (_pod_spec(obj), labels, kind == "Deployment")
    return found


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for rule in selector.get("matchExpressions", []):
        key, op, values = rule["key"], rule["operator"], rule.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


@needs_kubectl
def test_no_pod_mounts_a_service_account_token() -> None:
    """CKV_K8S_38: nothing of ours calls the Kubernetes API, so no pod carries a token."""
    # Act
    mounted = [
        name for name, (pod, _, _) in _pods().items() if pod.get("automountServiceAccountToken") is not False
    ]

    # Assert
    assert _objects(*KSVC) and not mounted, f"service account token mounted in {mounted}"


@needs_kubectl
def test_every_long_running_container_has_a_liveness_probe() -> None:
    """CKV_K8S_8, for Knative Services too (Jobs end by themselves)."""
    # Act
    lacking = [
        f"{name}/{c['name']}"
        for name, (pod, _, long_running) in _pods().items()
        if long_running
        for c in pod["containers"]
        if not c.get("livenessProbe")
    ]

    # Assert
    assert not lacking, f"no liveness probe: {lacking}"


@needs_kubectl
def test_every_knative_liveness_probe_targets_the_serving_port() -> None:
    """Knative refuses a user container's probe on any port but the one it serves."""
    # Arrange
    services = _objects(*KSVC)

    # Act
    wrong = []
    for name, svc in services.items():
        (container,) = _pod_spec(svc)["containers"]
        probe = container["livenessProbe"]
        handler = probe.get("httpGet") or probe.get("tcpSocket") or {}
        if handler.get("port") not in (None, container["ports"][0]["containerPort"]):
            wrong.append(name)

    # Assert
    assert not wrong, wrong


@needs_kubectl
def test_every_pod_is_covered_by_an_ingress_network_policy() -> None:
    """CKV2_K8S_6: no pod of ours accepts connections from anywhere by default."""
    # Arrange
    policies = [
        p["spec"]
        for p in _objects("networking.k8s.io/v1", "NetworkPolicy").values()
        if "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
    ]

    # Act
    open_pods = [
        name
        for name, (_, labels, _) in _pods().items()
        if not any(_selects(p["podSelector"], labels) for p in policies)
    ]

    # Assert
    assert not open_pods, f"pods no NetworkPolicy selects: {open_pods}"


@needs_kubectl
def test_knative_services_take_requests_only_from_knative() -> None:
    # Arrange
    policy = _objects("networking.k8s.io/v1", "NetworkPolicy")["knative-services-from-knative-only"]["spec"]

    # Act
    rule, *scrapes = policy["ingress"]
    namespaces = {
        v
        for source in rule["from"]
        for e in source["namespaceSelector"]["matchExpressions"]
        if e["key"] == "kubernetes.io/metadata.name"
        for v in e["values"]
    }

    # Assert
    assert all(set(source) == {"namespaceSelector"} for source in rule["from"])
    assert namespaces == {"knative-serving", "kourier-system"}
    # beyond Knative, only Prometheus' namespace, and only to the metrics port
    assert [(s["from"], s["ports"]) for s in scrapes] == [
        (
            [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
            [{"port": 8080}, {"port": 9090}],
        )
    ]


@needs_kubectl
def test_every_container_is_read_only_without_capabilities_under_runtime_default_seccomp() -> None:
    """CKV_K8S_22, CKV_K8S_28/37, CKV_K8S_31."""
    # Act
    loose = []
    for name, (pod, _, _) in _pods().items():
        pod_seccomp = pod.get("securityContext", {}).get("seccompProfile", {}).get("type")
        for c in pod["containers"]:
            context = c.get("securityContext", {})
            seccomp = context.get("seccompProfile", {}).get("type", pod_seccomp)
            if not (
                context.get("readOnlyRootFilesystem") is True
                and context.get("capabilities", {}).get("drop") == ["ALL"]
                and seccomp == "RuntimeDefault"
            ):
                loose.append(f"{name}/{c['name']}")

    # Assert
    assert not loose, loose


@needs_kubectl
def test_every_scratch_volume_has_a_size_limit() -> None:
    """An emptyDir without a limit can fill the node's disk and evict its neighbours."""
    # Act
    unbounded = [
        f"{name}/{v['name']}"
        for name, (pod, _, _) in _pods().items()
        for v in pod.get("volumes", [])
        if "emptyDir" in v and not (v["emptyDir"] or {}).get("sizeLimit")
    ]

    # Assert
    assert not unbounded, f"emptyDir volumes without sizeLimit: {unbounded}"


@needs_kubectl
def test_object_store_is_pinned_by_digest_beside_its_tag_and_logs_to_stdout() -> None:
    # Arrange
    deployment = _objects("apps/v1", "Deployment")["object-store"]
    container = _container(deployment)

    # Act
    env = _store_env()
    mounts = {m["mountPath"] for m in container["volumeMounts"]}

    # Assert: CKV_K8S_43 (a digest) and a tag a person can read.
    assert re.fullmatch(r"rustfs/rustfs:\d+\.\d+\.\d+@sha256:[0-9a-f]{64}", container["image"]), container[
        "image"
    ]
    # The image's default is log files under /logs; empty means stdout only.
    assert env["RUSTFS_OBS_LOG_DIRECTORY"] == "" and "/logs" not in mounts
