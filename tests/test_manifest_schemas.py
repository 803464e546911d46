"""The rendered Knative manifests (and the GKE overlay) against Kubernetes 1.32's
own schemas (strict) and the Knative CRDs pinned in ../shared/deploy-schemas
(DEPLOY_SCHEMAS in CI), through tools/validate_manifests.py; and proof that the
validator refuses what the API server or Knative's webhooks would."""

from __future__ import annotations

import copy
import importlib.util
import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.support.deployed import GENERATE_ENV

REPO = Path(__file__).resolve().parent.parent
yaml = pytest.importorskip("yaml", reason="PyYAML reads the rendered manifests")
pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl renders the manifests")


@pytest.fixture(scope="module")
def validator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "validate_manifests", REPO / "tools" / "validate_manifests.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def crds(validator: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """The pinned Knative CRDs; CI always provides them (DEPLOY_SCHEMAS)."""
    path = Path(
        os.environ.get("DEPLOY_SCHEMAS", REPO.parent / "shared" / "deploy-schemas" / "knative-v1.18.0")
    )
    if not (path / "serving-service.yaml").is_file():
        pytest.skip(f"Knative CRDs not found at {path}: set DEPLOY_SCHEMAS")
    return validator.load_crds(path)  # type: ignore[no-any-return]


@cache
def _render(target: str) -> tuple[dict[str, Any], ...]:
    copy_root = Path(tempfile.mkdtemp(prefix="render-"))
    shutil.copytree(
        REPO / "knative",
        copy_root / "knative",
        ignore=shutil.ignore_patterns("*.env", "accounts", "admin-password.txt"),
    )
    overlay = REPO / "terraform" / "gke" / "knative" / "overlay"
    shutil.copytree(overlay, copy_root / "terraform" / "gke" / "knative" / "overlay")
    subprocess.run(
        ["sh", str(copy_root / "knative" / "secrets" / "generate.sh")],
        capture_output=True,
        check=True,
        env=GENERATE_ENV,
    )
    result = subprocess.run(
        ["kubectl", "kustomize", str(copy_root / target)], capture_output=True, text=True, check=False
    )
    shutil.rmtree(copy_root)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


@pytest.mark.parametrize("target", ["knative", "terraform/gke/knative/overlay"])
def test_rendered_manifests_satisfy_kubernetes_and_the_knative_crds(
    validator: Any, crds: Any, target: str
) -> None:
    # Arrange
    docs = list(_render(target))

    # Act
    found = validator.problems(docs, crds, "1.32")

    # Assert
    assert {("serving.knative.dev/v1", "Service"), ("sources.knative.dev/v1", "SinkBinding")} <= set(crds)
    assert len(docs) > 20 and found == []


def _mutated(kind: str, name: str, change: Any) -> list[dict[str, Any]]:
    docs = copy.deepcopy(list(_render("knative")))
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    change(doc)
    return docs


def _container(d: dict[str, Any]) -> dict[str, Any]:
    return d["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


MUTATIONS = [
    # A typo in a Knative Service's container: Kubernetes' PodSpec has no such field.
    ("Service", "predict", lambda d: _container(d).update(imagePullPolicyy="x"), "imagePullPolicyy"),
    # A field Trigger.spec does not declare: Knative's webhook decodes strictly.
    ("Trigger", "predict-on-tensor", lambda d: d["spec"].update(filterz={}), "filterz"),
    # A wrong type in a CRD field.
    ("Trigger", "predict-on-tensor", lambda d: d["spec"]["delivery"].update(retry="five"), "is not of type"),
    # A typo in a built-in kind.
    ("Deployment", "object-store", lambda d: d["spec"]["template"]["spec"].update(hostnam="x"), "hostnam"),
    # A field the SinkBinding's structural schema would prune.
    ("SinkBinding", "bucket-events", lambda d: d["spec"]["subject"].update(nam="x"), "spec.subject.nam"),
]


@pytest.mark.parametrize(("kind", "name", "change", "expected"), MUTATIONS)
def test_validator_refuses_what_the_cluster_would(
    validator: Any, crds: Any, kind: str, name: str, change: Any, expected: str
) -> None:
    # Arrange
    docs = _mutated(kind, name, change)

    # Act
    found = validator.problems(docs, crds, "1.32")

    # Assert
    assert any(expected in line and f"{kind}/{name}" in line for line in found), found


def test_validator_refuses_kinds_it_has_no_schema_for(validator: Any, crds: Any) -> None:
    # Arrange
    docs = [
        {"apiVersion": "sources.knative.dev/v1", "kind": "PingSource", "metadata": {"name": "x"}, "spec": {}}
    ]

    # Act
    found = validator.problems(docs, crds, "1.32")

    # Assert
    assert found and "neither a Kubernetes" in found[0]
