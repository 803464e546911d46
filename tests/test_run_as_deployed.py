"""The pure half of tools/run_as_deployed.py: what each container is given, read from the manifests.

The podman half runs in `nox -s images`; these check, without podman, that the
extraction says what knative/ and terraform/services.tf say (the expected values
are written out here, not derived by the code under test), and that a manifest
change or a missing Secret key shows up in the spec or as a clear error.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import shutil
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from bloodcell.web import auth, signin
from tests.support.deployed import render
from tools import run_as_deployed
from tools.asdeployed.cloudrun import cloud_run_specs, tfvars
from tools.asdeployed.knative import knative_specs
from tools.asdeployed.podman import podman_argv
from tools.asdeployed.spec import IMAGES, Probe, RunSpec, SecretMount, SpecError, Tmpfs

pytest.importorskip("hcl2", reason="python-hcl2 reads terraform/")
needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl renders knative/")
TERRAFORM = run_as_deployed.REPO / "terraform"
MI = 2**20


@cache
def _rendered() -> tuple[dict[str, Any], ...]:
    return render("knative")


def _by_name(specs: list[RunSpec]) -> dict[str, RunSpec]:
    return {spec.workload: spec for spec in specs}


def _secret(docs: tuple[dict[str, Any], ...], name: str, key: str) -> str:
    (secret,) = (d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == name)
    return base64.b64decode(secret["data"][key]).decode()


def _account(name: str = "ci-admin") -> str:
    return auth.hash_line(name, "a lab password", ("reviewer",))


def _cloud_run(root: Path, **variables: Any) -> dict[str, RunSpec]:
    given = tfvars(TERRAFORM / "terraform.tfvars.example") | {"webapp_accounts": _account() + "\n"}
    return _by_name(cloud_run_specs(TERRAFORM, given | variables, root))


# ---- Knative ----


@needs_kubectl
def test_knative_functions_run_read_only_as_their_user_with_sized_scratch(tmp_path: Path) -> None:
    # Act
    specs = _by_name(knative_specs(_rendered(), tmp_path))

    # Assert
    for name in ("preprocess", "predict"):
        spec = specs[name]
        assert (spec.image, spec.user, spec.read_only) == (name, "10001", True)
        assert spec.drop_all_capabilities and spec.no_new_privileges
        assert spec.tmpfs == (Tmpfs("/tmp", 256 * MI),)
        assert (spec.command, spec.args, spec.secrets) == (None, None, ())
        assert spec.probes == (Probe("liveness", 8080), Probe("readiness", 8080))
    assert specs["predict"].env["MODEL_DIR"] == "/app/functions/predict/model"
    assert specs["preprocess"].env["MAX_IMAGE_PIXELS"] == "25000000"


@needs_kubectl
def test_knative_services_get_serving_s_injected_values_and_the_settings_config_map(tmp_path: Path) -> None:
    # Act
    spec = _by_name(knative_specs(_rendered(), tmp_path))["preprocess"]

    # Assert
    assert {k: spec.env[k] for k in ("PORT", "K_SERVICE", "K_CONFIGURATION")} == {
        "PORT": "8080",
        "K_SERVICE": "preprocess",
        "K_CONFIGURATION": "preprocess",
    }
    assert spec.env["S3_ENDPOINT_URL"] == "http://object-store:9000"
    assert spec.env["UPLOAD_BUCKET"] == "uploads"


@needs_kubectl
def test_knative_secrets_resolve_to_the_generated_values(tmp_path: Path) -> None:
    # Arrange
    docs = _rendered()

    # Act
    specs = _by_name(knative_specs(docs, tmp_path))

    # Assert
    key = _secret(docs, "object-store-credentials", "RUSTFS_ACCESS_KEY")
    assert key.startswith("bloodcell-")
    pipeline = ("preprocess", "predict", "webapp", "bucket-events")
    assert {specs[name].env["AWS_ACCESS_KEY_ID"] for name in pipeline} == {key}
    assert specs["webapp"].env["STORAGE_SECRET"] == _secret(docs, "webapp-storage-secret", "STORAGE_SECRET")
    token = _secret(docs, "event-webhook-token", "EVENT_WEBHOOK_TOKEN")
    assert specs["bucket-events"].env["EVENT_WEBHOOK_TOKEN"] == token


@needs_kubectl
def test_knative_webapp_gets_its_accounts_as_a_read_only_file_its_setting_names(tmp_path: Path) -> None:
    # Act
    spec = _by_name(knative_specs(_rendered(), tmp_path))["webapp"]

    # Assert
    (mount,) = spec.secrets
    assert (mount.target, mount.files, mount.mode) == ("/etc/bloodcell/accounts", ("accounts",), 0o444)
    assert spec.env["WEB_ACCOUNTS_FILE"] == "/etc/bloodcell/accounts/accounts"
    assert (mount.source / "accounts").read_text().startswith("admin:reviewer,user:$argon2id$")
    assert spec.tmpfs == (Tmpfs("/tmp", 512 * MI), Tmpfs("/app/.nicegui", 64 * MI))
    assert spec.probes == (Probe("liveness", 8080, "/healthz"), Probe("readiness", 8080))


@needs_kubectl
def test_knative_event_source_runs_its_command_with_the_sink_binding_s_values(tmp_path: Path) -> None:
    # Act
    spec = _by_name(knative_specs(_rendered(), tmp_path))["bucket-events"]

    # Assert
    assert spec.image == "eventsource"
    assert spec.command == ("bloodcell", "eventsource", "--mode", "receive") and spec.args is None
    assert spec.user == "10001:10001"
    assert spec.env["PORT"] == "8080" and "K_SERVICE" not in spec.env
    assert spec.env["K_SINK"] == "http://broker-ingress.knative-eventing.svc.cluster.local/bloodcell/default"
    assert json.loads(spec.env["K_CE_OVERRIDES"]) == {"extensions": {"bloodcellsource": "object-store"}}
    assert [(p.kind, p.port, p.path) for p in spec.probes] == [
        ("startup", 8080, "/healthz"),
        ("readiness", 8080, "/healthz"),
        ("liveness", 8080, "/healthz"),
    ]


@needs_kubectl
def test_every_image_runs_on_knative(tmp_path: Path) -> None:
    # Act
    images = {spec.image for spec in knative_specs(_rendered(), tmp_path)}

    # Assert
    assert images == set(IMAGES)


def _edited(name: str, edit: Any) -> list[dict[str, Any]]:
    docs = copy.deepcopy(list(_rendered()))
    (workload,) = (d for d in docs if d["metadata"]["name"] == name and "template" in d.get("spec", {}))
    edit(workload["spec"]["template"]["spec"]["containers"][0])
    return docs


@needs_kubectl
def test_a_writable_root_in_the_manifest_is_a_writable_root_in_the_run(tmp_path: Path) -> None:
    # Arrange
    docs = _edited("predict", lambda c: c["securityContext"].update(readOnlyRootFilesystem=False))

    # Act
    spec = _by_name(knative_specs(docs, tmp_path))["predict"]

    # Assert
    assert spec.read_only is False
    assert "--read-only" not in podman_argv(spec, "x", tmp_path / "env")


@needs_kubectl
def test_a_secret_key_the_manifests_do_not_hold_is_refused_by_name(tmp_path: Path) -> None:
    # Arrange
    def rename(container: dict[str, Any]) -> None:
        (token,) = (e for e in container["env"] if e["name"] == "EVENT_WEBHOOK_TOKEN")
        token["valueFrom"]["secretKeyRef"]["key"] = "NO_SUCH_KEY"

    docs = _edited("bucket-events", rename)

    # Act / Assert
    with pytest.raises(SpecError, match=r"knative/bucket-events: .*'NO_SUCH_KEY'.*missing Secret"):
        knative_specs(docs, tmp_path)


@needs_kubectl
def test_a_probe_on_a_port_the_container_does_not_name_is_refused(tmp_path: Path) -> None:
    # Arrange
    docs = _edited("bucket-events", lambda c: c["livenessProbe"]["httpGet"].update(port="web"))

    # Act / Assert
    with pytest.raises(SpecError, match="probe port 'web' names no port"):
        knative_specs(docs, tmp_path)


# ---- Cloud Run (terraform/services.tf) ----


def test_cloud_run_functions_get_the_common_env_and_cloud_run_s_own_values(tmp_path: Path) -> None:
    # Act
    specs = _cloud_run(tmp_path)

    # Assert
    spec = specs["bloodcell-predict"]
    assert spec.image == "predict" and spec.platform == "cloudrun"
    assert (spec.user, spec.read_only, spec.drop_all_capabilities, spec.tmpfs) == (None, False, False, ())
    assert spec.env["BLOODCELL_STORAGE"] == "gcs"
    assert spec.env["GOOGLE_CLOUD_PROJECT"] == "my-project-id"
    assert spec.env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert (spec.env["PORT"], spec.env["K_SERVICE"]) == ("8080", "bloodcell-predict")
    assert spec.probes == (Probe("startup", 8080), Probe("liveness", 8080))


def test_cloud_run_webapp_reads_its_accounts_from_the_secret_manager_file(tmp_path: Path) -> None:
    # Act
    spec = _cloud_run(tmp_path)["bloodcell-webapp"]

    # Assert
    assert spec.secrets == (
        SecretMount(
            tmp_path / "webapp" / "secrets" / "webapp-accounts", "/secrets/webapp-accounts", ("accounts",)
        ),
    )
    assert spec.env["WEB_ACCOUNTS_FILE"] == "/secrets/webapp-accounts/accounts"
    assert (spec.secrets[0].source / "accounts").read_text().startswith("ci-admin:reviewer,user:$argon2id$")
    assert spec.env["WEB_AUTH"] == "accounts" and spec.env["STORAGE_SECRET"]


def test_cloud_run_webapp_behind_iap_signs_in_through_iap(tmp_path: Path) -> None:
    # Act
    spec = _cloud_run(tmp_path, webapp_iap=True)["bloodcell-webapp"]

    # Assert
    assert spec.env["WEB_AUTH"] == "iap"
    assert spec.env["IAP_AUDIENCE"].endswith("/services/bloodcell-webapp")


def test_each_image_runs_on_cloud_run_or_is_said_not_to(tmp_path: Path) -> None:
    # Act
    images = {spec.image for spec in _cloud_run(tmp_path).values()}

    # Assert
    assert images == {"preprocess", "predict", "webapp"}
    assert {image for (platform, image) in run_as_deployed.NOT_DEPLOYED} == set(IMAGES) - images


def test_cloud_run_webapp_probes_reach_the_app_without_signing_in(tmp_path: Path) -> None:
    """A liveness probe on "/" got a redirect (or 401 behind IAP): Cloud Run would restart the instance."""
    # Act
    spec = _cloud_run(tmp_path)["bloodcell-webapp"]

    # Assert
    paths = [probe.path for probe in spec.probes if probe.path is not None]
    assert paths and all(signin._public(path) for path in paths), paths


@needs_kubectl
def test_knative_webapp_probes_reach_the_app_without_signing_in(tmp_path: Path) -> None:
    # Act
    spec = _by_name(knative_specs(_rendered(), tmp_path))["webapp"]

    # Assert
    paths = [probe.path for probe in spec.probes if probe.path is not None]
    assert paths and all(signin._public(path) for path in paths), paths


# ---- the podman command and the loopback stand-ins ----


def _spec(**changes: Any) -> RunSpec:
    base = RunSpec(
        platform="knative",
        workload="w",
        image="eventsource",
        env={"S3_ENDPOINT_URL": "http://object-store:9000", "K_SINK": "http://broker/", "A": "1"},
        command=("bloodcell", "eventsource"),
        args=("--mode", "receive"),
        user="10001:10001",
        read_only=True,
        drop_all_capabilities=True,
        no_new_privileges=True,
        tmpfs=(Tmpfs("/tmp", 64 * MI),),
        secrets=(SecretMount(Path("/host/s"), "/etc/s", ("k",)),),
        port=8080,
        probes=(),
    )
    return dataclasses.replace(base, **changes)


def test_podman_gets_every_setting_and_command_then_args_after_the_image(tmp_path: Path) -> None:
    # Act
    argv = podman_argv(_spec(), "bc-x", tmp_path / "env")

    # Assert
    assert argv == [
        "podman", "run", "-d", "--name", "bc-x", "--http-proxy=false", "--env-file", str(tmp_path / "env"),
        "--user", "10001:10001", "--read-only", "--read-only-tmpfs=false", "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges",
        "--mount", f"type=tmpfs,destination=/tmp,tmpfs-mode=0777,tmpfs-size={64 * MI}",
        "--mount", "type=bind,source=/host/s,destination=/etc/s,ro=true",
        "--entrypoint", '["bloodcell", "eventsource"]',
        "localhost/bloodcell-eventsource:ci", "--mode", "receive",
    ]  # fmt: skip


def test_podman_keeps_the_image_s_user_and_command_when_the_manifest_names_none(tmp_path: Path) -> None:
    # Arrange
    spec = _spec(command=None, args=None, user=None, read_only=False, tmpfs=(), secrets=())

    # Act
    argv = podman_argv(spec, "bc-x", tmp_path / "env")

    # Assert
    assert argv[-1] == "localhost/bloodcell-eventsource:ci"
    assert not {"--user", "--entrypoint", "--read-only", "--mount"} & set(argv)


def test_only_the_platform_s_endpoints_are_pointed_at_loopback() -> None:
    # Act
    spec = run_as_deployed.on_loopback(_spec(), "http://127.0.0.1:9", "http://127.0.0.1:8/")

    # Assert
    assert spec.env == {"S3_ENDPOINT_URL": "http://127.0.0.1:9", "K_SINK": "http://127.0.0.1:8/", "A": "1"}


def test_cloud_run_gets_the_storage_emulator_and_nothing_else_changed() -> None:
    # Act
    spec = run_as_deployed.on_loopback(_spec(platform="cloudrun"), "http://127.0.0.1:9", "unused")

    # Assert
    assert spec.env == {**_spec().env, "STORAGE_EMULATOR_HOST": "http://127.0.0.1:9"}


def _pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.split("[")[0].strip().lower()] = version.strip()
    return pins


def test_the_check_s_tools_are_the_versions_the_tests_use() -> None:
    # Arrange
    tools = _pins(run_as_deployed.REPO / "tools" / "run-as-deployed-requirements.txt")
    tests = _pins(run_as_deployed.REPO / "requirements-test.txt")

    # Act
    differ = {
        name: (version, tests[name]) for name, version in tools.items() if tests.get(name, version) != version
    }

    # Assert
    assert {"python-hcl2", "moto", "gcp-storage-emulator"} <= set(tools) & set(tests)
    assert differ == {}
