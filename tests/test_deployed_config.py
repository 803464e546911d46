"""Each platform's configuration, as the container would get it, through the app's own start-up checks.

Schemas and provider checks passed while the web app exited with code 2 on every
platform: nothing gave it sign-in accounts or an auth mode. These render knative/
(and the GKE overlay) and read the Cloud Run services from terraform/, resolve
Secrets, ConfigMaps and mounted files, and run the checks each process runs
before it serves (``Settings.from_env`` everywhere, ``web.auth.check_config`` in
the web app), so a deployment that could not start fails here instead.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from bloodcell.errors import ConfigurationError
from bloodcell.settings import Settings
from bloodcell.web import auth
from tests.support.deployed import REPO, Hcl, cloud_run_env, knative_env, render, terraform_config

hcl2 = pytest.importorskip("hcl2", reason="python-hcl2 is needed to read terraform/")
pytest.importorskip("yaml", reason="PyYAML reads the rendered manifests")
needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl renders knative/")
needs_terraform = pytest.mark.skipif(
    shutil.which("terraform") is None, reason="terraform evaluates validations"
)
TERRAFORM = REPO / "terraform"
RENDERED = {"minikube": "knative", "gke": "terraform/gke/knative/overlay"}
KNATIVE_WORKLOADS = ("preprocess", "predict", "webapp", "bucket-events")
CLOUD_RUN = ("preprocess", "predict", "webapp")


@cache
def _rendered(target: str) -> tuple[dict[str, Any], ...]:
    return render(target)


# ---- Knative (minikube and the GKE overlay) ----


@needs_kubectl
@pytest.mark.parametrize("platform", sorted(RENDERED))
def test_knative_webapp_passes_its_start_up_check_with_the_rendered_configuration(
    platform: str, tmp_path: Path
) -> None:
    # Arrange
    env = knative_env(_rendered(RENDERED[platform]), "webapp", tmp_path)

    # Act
    settings = Settings.from_env(env)
    mode, accounts = auth.check_config(settings)

    # Assert
    assert mode is auth.Mode.ACCOUNTS
    assert settings.web_accounts_file and settings.web_accounts_file.is_relative_to(tmp_path)
    assert [a.roles for a in accounts.values()] == [frozenset({auth.USER, auth.REVIEWER})]


@needs_kubectl
@pytest.mark.parametrize("workload", KNATIVE_WORKLOADS)
def test_every_knative_workload_environment_parses_as_settings(workload: str, tmp_path: Path) -> None:
    # Arrange
    env = knative_env(_rendered("knative"), workload, tmp_path)

    # Act
    settings = Settings.from_env(env)

    # Assert
    assert settings.storage == "s3"


@needs_kubectl
def test_the_check_refuses_a_webapp_without_its_accounts_secret(tmp_path: Path) -> None:
    """The check above is only as good as this: B1's manifest (no accounts) must fail it."""
    # Arrange
    docs = [d for d in _rendered("knative") if d["metadata"]["name"] != "webapp"]
    (webapp,) = (d for d in _rendered("knative") if d["metadata"]["name"] == "webapp")
    container = webapp["spec"]["template"]["spec"]["containers"][0]
    stripped = {
        **container,
        "env": [e for e in container["env"] if not e["name"].startswith("WEB_")],
        "volumeMounts": [m for m in container["volumeMounts"] if m["name"] != "accounts"],
    }
    pod = {**webapp["spec"]["template"]["spec"], "containers": [stripped]}
    before = {**webapp, "spec": {"template": {**webapp["spec"]["template"], "spec": pod}}}

    # Act
    settings = Settings.from_env(knative_env([*docs, before], "webapp", tmp_path))

    # Assert
    with pytest.raises(ConfigurationError, match="no accounts"):
        auth.check_config(settings)


# ---- Cloud Run (terraform/) ----


@cache
def _terraform() -> dict[str, Any]:
    """Resources by (type, name), locals and variable defaults of terraform/."""
    return terraform_config(TERRAFORM)


def _cloud_run(service: str, root: Path, **variables: Any) -> tuple[dict[str, str], Hcl]:
    tf = _terraform()
    hcl = Hcl({**tf["variables"], "project": "lab-project-1", **variables}, tf["locals"])
    versions = {n: b for (t, n), b in tf["resources"].items() if t == "google_secret_manager_secret_version"}
    body = tf["resources"][("google_cloud_run_v2_service", service)]
    return cloud_run_env(body, hcl, versions, root), hcl


def _account_line(name: str = "admin") -> str:
    return auth.hash_line(name, "a lab password", ("reviewer",))


def test_cloud_run_webapp_passes_its_start_up_check_with_accounts(tmp_path: Path) -> None:
    # Arrange
    env, _ = _cloud_run("webapp", tmp_path, webapp_accounts=_account_line() + "\n")

    # Act
    settings = Settings.from_env(env)
    mode, accounts = auth.check_config(settings)

    # Assert
    assert mode is auth.Mode.ACCOUNTS and list(accounts) == ["admin"]
    assert settings.storage_secret, "STORAGE_SECRET comes from Secret Manager"


def test_cloud_run_webapp_passes_its_start_up_check_behind_iap(tmp_path: Path) -> None:
    # Arrange
    service = _terraform()["resources"][("google_cloud_run_v2_service", "webapp")]
    env, hcl = _cloud_run("webapp", tmp_path, webapp_iap=True, webapp_iap_reviewers=["chloe@example.org"])

    # Act
    settings = Settings.from_env(env)
    mode, _ = auth.check_config(settings)

    # Assert
    assert mode is auth.Mode.IAP
    assert hcl.value(service["iap_enabled"]) is True
    assert re.fullmatch(
        r"/projects/[^/]+/locations/europe-west1/services/bloodcell-webapp", settings.iap_audience
    )
    assert hcl.value(service["name"]) == "bloodcell-webapp"
    assert settings.iap_reviewers == ("chloe@example.org",)


@pytest.mark.parametrize("service", CLOUD_RUN)
def test_every_cloud_run_environment_parses_as_settings(service: str, tmp_path: Path) -> None:
    # Arrange
    env, _ = _cloud_run(service, tmp_path, webapp_accounts=_account_line())

    # Act
    settings = Settings.from_env(env)

    # Assert
    assert settings.storage == "gcs"


def _validate(work: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    """`terraform plan` of a module holding only the sign-in variables, exactly as declared."""
    blocks = []
    for path in (TERRAFORM / "secrets.tf", TERRAFORM / "iap.tf"):
        blocks += re.findall(r'(?ms)^variable "webapp_(?:accounts|iap)" \{.*?^\}', path.read_text())
    work.mkdir()
    (work / "main.tf").write_text("\n".join(blocks) + '\noutput "ok" {\n  value = true\n}\n')
    args = [f"-var={k}={v}" for k, v in variables.items()]
    subprocess.run(
        ["terraform", "init", "-input=false"], cwd=work, capture_output=True, check=True, timeout=120
    )
    return subprocess.run(
        ["terraform", "plan", "-input=false", "-no-color", *args],
        cwd=work, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@needs_terraform
def test_terraform_refuses_a_webapp_nobody_could_sign_in_to(tmp_path: Path) -> None:
    # Act
    nothing = _validate(tmp_path / "none")
    accounts = _validate(tmp_path / "accounts", webapp_accounts=_account_line())
    iap = _validate(tmp_path / "iap", webapp_iap="true")

    # Assert
    assert nothing.returncode != 0 and "sign people in" in nothing.stdout + nothing.stderr
    assert accounts.returncode == 0, accounts.stderr
    assert iap.returncode == 0, iap.stderr


def test_cloud_run_webapp_believes_its_front_end_about_https(tmp_path: Path) -> None:
    """Only Google's front end reaches a Cloud Run container, and it speaks HTTPS to browsers."""
    # Arrange
    env, _ = _cloud_run("webapp", tmp_path, webapp_accounts=_account_line())

    # Act
    settings = Settings.from_env(env)

    # Assert
    assert settings.web_trusted_proxies == ("*",)


# ---- a shared lab server: the README's systemd unit ----


def _systemd_env() -> dict[str, str]:
    readme = (REPO / "README.md").read_text()
    (unit,) = re.findall(r"```ini\n(.*?)```", readme, re.S)
    env: dict[str, str] = {}
    for line in unit.splitlines():
        if line.startswith("Environment="):
            env.update(item.split("=", 1) for item in line.removeprefix("Environment=").split())
    return env


def test_the_lab_server_unit_makes_everyone_sign_in_behind_its_proxy(tmp_path: Path) -> None:
    # Arrange: the unit's environment, its EnvironmentFile's secret, its accounts file here.
    env = _systemd_env()
    accounts = tmp_path / "accounts"
    accounts.write_text(_account_line("chloe") + "\n")
    env |= {"STORAGE_SECRET": "x" * 64, "WEB_ACCOUNTS_FILE": str(accounts)}

    # Act
    settings = Settings.from_env(env)
    mode, found = auth.check_config(settings)

    # Assert: unreachable off the machine, yet not the keyboard's address
    assert settings.host.startswith("127.") and settings.host != "127.0.0.1"
    assert mode is auth.Mode.ACCOUNTS and list(found) == ["chloe"]
    assert settings.web_trusted_proxies == ("127.0.0.1",)
