"""Static checks of terraform/: providers can't be downloaded here, so `terraform
validate` can't run; these catch the mistakes it would, and some it wouldn't.

The HCL is read with python-hcl2. Two dialects of its output exist (python-hcl2
itself, and the bc-python-hcl2 fork that checkov installs under the same module
name), so values are normalised before use.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
TERRAFORM = REPO / "terraform"
sys.path.insert(0, str(REPO / "src"))

from bloodcell.events import GCS_FINALIZED  # noqa: E402
from bloodcell.settings import ENV_VARS  # noqa: E402
from tests.support.hcl import norm  # noqa: E402

hcl2 = pytest.importorskip("hcl2", reason="python-hcl2 is needed to read terraform/")
yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read cloudbuild.yaml")

STANDARD_ENV = re.compile(r"^(AWS_|GOOGLE_|K_)[A-Z0-9_]+$")
PUBLIC_MEMBERS = {"allUsers", "allAuthenticatedUsers"}
# `KEY = value` (or `"KEY": value`) items of a map literal inside an expression.
_MAP_ITEM = re.compile(r"""['"]?\b([A-Z][A-Z0-9_]{2,})\b['"]?\s*[=:]\s*("[^"]*"|'[^']*'|[^,}]+)""")


# ---- reading the HCL ----


def _scalar(value: Any) -> Any:
    """An attribute's value; the fork wraps every attribute in a one-item list."""
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value


def _list(value: Any) -> list[Any]:
    """A list attribute's items; the fork wraps the list in a one-item list."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
        return value[0]
    return value if isinstance(value, list) else [value]


def _blocks(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    found = body.get(name, [])
    return [b for b in (found if isinstance(found, list) else [found]) if isinstance(b, dict)]


@cache
def _files() -> dict[str, dict[str, Any]]:
    parsed = {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open() as handle:
            parsed[path.name] = norm(hcl2.load(handle))
    return parsed


def _named(kind: str) -> dict[str, dict[str, Any]]:
    """`variable`/`output` blocks by name."""
    found: dict[str, dict[str, Any]] = {}
    for doc in _files().values():
        for block in _blocks(doc, kind):
            for name, body in block.items():
                found[name] = body
    return found


def _typed(kind: str) -> dict[tuple[str, str], dict[str, Any]]:
    """`resource`/`data` blocks by (type, name)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for doc in _files().values():
        for block in _blocks(doc, kind):
            for rtype, named in block.items():
                for name, body in named.items():
                    found[(rtype, name)] = body
    return found


def _locals() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for doc in _files().values():
        for block in _blocks(doc, "locals"):
            found.update(block)
    return found


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _expressions() -> Iterator[str]:
    """Every string holding an expression, anywhere in terraform/."""
    for doc in _files().values():
        yield from (s for s in _strings(doc) if "${" in s)


def _resources(rtype: str) -> dict[str, dict[str, Any]]:
    return {name: body for (t, name), body in _typed("resource").items() if t == rtype}


# ---- formatting ----


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform binary is not on PATH")
def test_terraform_files_are_formatted() -> None:
    # Arrange
    command = ["terraform", "fmt", "-check", "-recursive", "-diff"]

    # Act
    result = subprocess.run(command, cwd=TERRAFORM, capture_output=True, text=True, timeout=60)

    # Assert
    assert result.returncode == 0, f"terraform fmt would change files:\n{result.stdout}{result.stderr}"


# ---- references ----


def test_every_reference_points_at_something_declared() -> None:
    # Arrange
    variables = set(_named("variable"))
    local_names = set(_locals())
    resources = {f"{t}.{n}" for t, n in _typed("resource")}
    data = {f"data.{t}.{n}" for t, n in _typed("data")}

    # Act
    missing = set()
    for expr in _expressions():
        missing |= {f"var.{v}" for v in re.findall(r"\bvar\.(\w+)", expr)} - {f"var.{v}" for v in variables}
        missing |= {f"local.{v}" for v in re.findall(r"\blocal\.(\w+)", expr)} - {
            f"local.{v}" for v in local_names
        }
        missing |= {f"data.{t}.{n}" for t, n in re.findall(r"\bdata\.(\w+)\.(\w+)", expr)} - data
        missing |= {
            f"{t}.{n}" for t, n in re.findall(r"(?<![.\w])((?:google|aws|random)_\w+)\.(\w+)", expr)
        } - resources

    # Assert
    assert not missing, f"references to undeclared things: {sorted(missing)}"


def test_every_variable_has_a_type_and_a_description() -> None:
    # Arrange
    variables = _named("variable")

    # Act
    lacking = [
        name
        for name, body in variables.items()
        if not str(_scalar(body.get("description", ""))).strip() or "type" not in body
    ]

    # Assert
    assert variables and not lacking, f"variables without type or description: {lacking}"


def test_every_output_has_a_description() -> None:
    # Arrange
    outputs = _named("output")

    # Act
    lacking = [
        name for name, body in outputs.items() if not str(_scalar(body.get("description", ""))).strip()
    ]

    # Assert
    assert outputs and not lacking, f"outputs without description: {lacking}"


def test_project_is_the_only_required_variable() -> None:
    # Arrange: the README promises `terraform apply -var project=...` is enough.
    variables = _named("variable")

    # Act
    required = sorted(name for name, body in variables.items() if "default" not in body)

    # Assert
    assert required == ["project"]


# ---- nothing public ----


def test_google_buckets_are_private_and_uniform() -> None:
    # Arrange
    buckets = _resources("google_storage_bucket")

    # Act
    loose = [
        name
        for name, body in buckets.items()
        if _scalar(body.get("uniform_bucket_level_access")) is not True
        or _scalar(body.get("public_access_prevention")) != "enforced"
    ]

    # Assert
    assert set(buckets) == {"uploads", "tensors", "results", "models", "build_sources"}
    assert not loose, f"buckets without uniform access or enforced public access prevention: {loose}"


def test_tensor_bucket_expires_its_objects() -> None:
    # Arrange
    tensors = _resources("google_storage_bucket")["tensors"]

    # Act
    rules = _blocks(tensors, "lifecycle_rule")
    deletes_by_age = [
        rule
        for rule in rules
        if any(_scalar(a.get("type")) == "Delete" for a in _blocks(rule, "action"))
        and any("age" in c for c in _blocks(rule, "condition"))
    ]

    # Assert
    assert deletes_by_age, "the tensor bucket needs a lifecycle rule deleting objects by age"


def test_no_iam_grant_makes_a_bucket_public() -> None:
    # Arrange
    grants = {
        (t, n): body
        for (t, n), body in _typed("resource").items()
        if t.startswith("google_storage_bucket_iam") or t.startswith("google_storage_bucket_acl")
    }

    # Act
    public = [
        f"{t}.{n}"
        for (t, n), body in grants.items()
        if any(member in s for s in _strings(body) for member in PUBLIC_MEMBERS)
    ]

    # Assert
    assert not public, f"public bucket grants: {public}"


def test_s3_archive_blocks_all_public_access() -> None:
    # Arrange
    blocks = _resources("aws_s3_bucket_public_access_block")
    flags = ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets")

    # Act
    covered = {
        _scalar(body["bucket"]): all(_scalar(body.get(flag)) is True for flag in flags)
        for body in blocks.values()
    }

    # Assert
    assert set(_resources("aws_s3_bucket")) == {"archive"}
    assert covered == {"${aws_s3_bucket.archive.id}": True}
    assert not _resources("aws_s3_bucket_acl"), "object ACLs are disabled; no bucket ACL should be set"


def test_archive_writer_may_only_put_objects_under_the_prefix() -> None:
    # Arrange
    document = _typed("data")[("aws_iam_policy_document", "archive_put_only")]

    # Act
    statements = _blocks(document, "statement")
    actions = {a for s in statements for a in _list(s.get("actions"))}
    resources = [r for s in statements for r in _strings(s.get("resources"))]

    # Assert
    assert actions == {"s3:PutObject"}
    assert resources == ["${aws_s3_bucket.archive.arn}/${var.archive_prefix}*"]


def test_only_the_webapp_can_be_granted_to_all_users() -> None:
    # Arrange
    grants = {(t, n): body for (t, n), body in _typed("resource").items() if "_iam_" in t}

    # Act
    public = sorted(
        f"{t}.{n}"
        for (t, n), body in grants.items()
        if any(member in s for s in _strings(body) for member in PUBLIC_MEMBERS)
    )
    webapp_grant = grants.get(("google_cloud_run_v2_service_iam_member", "webapp_public"), {})

    # Assert
    assert public == ["google_cloud_run_v2_service_iam_member.webapp_public"]
    assert _scalar(webapp_grant.get("name")) == "${google_cloud_run_v2_service.webapp.name}"
    assert "var.webapp_public" in str(_scalar(webapp_grant.get("count")))


def test_functions_are_internal_and_invoked_only_by_the_trigger_account() -> None:
    # Arrange
    services = _resources("google_cloud_run_v2_service")
    invokers = [
        body
        for body in _resources("google_cloud_run_v2_service_iam_member").values()
        if _scalar(body.get("role")) == "roles/run.invoker"
    ]

    # Act
    ingress = {name: _scalar(services[name].get("ingress")) for name in ("preprocess", "predict")}
    function_invokers = {
        _scalar(body["name"]): _scalar(body["member"])
        for body in invokers
        if "webapp" not in str(_scalar(body["name"]))
    }

    # Assert
    assert ingress == {
        "preprocess": "INGRESS_TRAFFIC_INTERNAL_ONLY",
        "predict": "INGRESS_TRAFFIC_INTERNAL_ONLY",
    }
    assert function_invokers == {
        "${google_cloud_run_v2_service.preprocess.name}": "${google_service_account.trigger.member}",
        "${google_cloud_run_v2_service.predict.name}": "${google_service_account.trigger.member}",
    }


def test_runtime_accounts_get_no_project_wide_roles() -> None:
    # Arrange
    project_grants = _resources("google_project_iam_member")
    runtime = ("preprocess", "predict", "webapp")

    # Act
    members = {_scalar(body["member"]) for body in project_grants.values()}

    # Assert
    assert not {f"${{google_service_account.{name}.member}}" for name in runtime} & members
    assert not _resources("google_project_iam_binding") and not _resources("google_project_iam_policy")


# ---- triggers match what the functions expect ----


def _service_env(service: dict[str, Any]) -> dict[str, str]:
    """Environment names -> values of a Cloud Run service, dynamic blocks included."""
    common = _locals()["common_env"]
    common = _scalar(common)
    env: dict[str, str] = {}
    for template in _blocks(service, "template"):
        for container in _blocks(template, "containers"):
            for block in _blocks(container, "env"):
                env[_scalar(block["name"])] = str(_scalar(block.get("value", "<secret>")))
            for dynamic in _blocks(container, "dynamic"):
                for block in _blocks(dynamic, "env"):
                    text = str(_scalar(block.get("for_each")))
                    if "local.common_env" in text:
                        env.update({k: str(_scalar(v)) for k, v in common.items()})
                    for name in re.findall(r"\blocal\.(\w+)", text):  # other maps of settings
                        if name != "common_env" and isinstance(found := _scalar(_locals()[name]), dict):
                            env.update({k: str(_scalar(v)) for k, v in found.items()})
                    for key, value in _MAP_ITEM.findall(text):
                        env[key] = value.strip().strip("'\"")
    return env


def test_cloud_run_environment_names_are_settings_the_code_reads() -> None:
    # Arrange
    services = _resources("google_cloud_run_v2_service")

    # Act
    unknown = {
        name: sorted(k for k in _service_env(body) if k not in ENV_VARS and not STANDARD_ENV.match(k))
        for name, body in services.items()
    }
    reserved = {name: "PORT" in _service_env(body) for name, body in services.items()}

    # Assert
    assert all(not names for names in unknown.values()), f"unknown environment variables: {unknown}"
    assert not any(reserved.values()), "Cloud Run sets PORT itself"


def test_the_model_registry_is_read_by_predict_and_managed_from_the_webapp_only() -> None:
    # Arrange: changing the model is an object write in MODEL_BUCKET, never an image rebuild.
    services = _resources("google_cloud_run_v2_service")
    models = _resources("google_storage_bucket")["models"]
    grants = [
        body
        for body in _resources("google_storage_bucket_iam_member").values()
        if _scalar(body["bucket"]) == "${google_storage_bucket.models.name}"
    ]

    # Act
    roles = {(_scalar(g["member"]).split(".")[1], _scalar(g["role"])) for g in grants}
    named = {name: _service_env(body).get("MODEL_BUCKET") for name, body in services.items()}

    # Assert
    assert named["predict"] == named["webapp"] == "${google_storage_bucket.models.name}"
    assert roles == {
        ("predict", "roles/storage.objectViewer"),
        ("webapp", "roles/storage.objectViewer"),
        ("webapp", "${google_project_iam_custom_role.object_writer.id}"),
    }
    assert not _blocks(models, "lifecycle_rule"), "the audit trail must not age out"
    assert not _blocks(models, "dynamic"), "the audit trail must not age out"
    (versioning,) = _blocks(models, "versioning")
    assert _scalar(versioning["enabled"]) is True


def test_every_trigger_sends_finalized_events_of_the_right_bucket_to_its_function() -> None:
    # Arrange
    expected_input = {"preprocess": ("UPLOAD_BUCKET", "uploads"), "predict": ("TENSOR_BUCKET", "tensors")}
    local_values = _locals()
    triggers = _resources("google_eventarc_trigger")
    services = _resources("google_cloud_run_v2_service")

    # Act
    routed = {}
    for name, body in triggers.items():
        criteria = {
            _scalar(c["attribute"]): str(_scalar(c["value"])) for c in _blocks(body, "matching_criteria")
        }
        event_type = criteria.get("type", "")
        if event_type.startswith("${local."):
            event_type = _scalar(local_values[event_type[len("${local.") : -1]])
        run = _blocks(_blocks(body, "destination")[0], "cloud_run_service")[0]
        service = re.fullmatch(r"\$\{google_cloud_run_v2_service\.(\w+)\.name\}", _scalar(run["service"]))
        assert service, f"trigger {name} must target a Cloud Run service declared here"
        routed[service.group(1)] = (name, event_type, criteria.get("bucket"), _scalar(body.get("location")))

    # Assert
    assert set(routed) == set(expected_input)
    for function, (env_name, bucket) in expected_input.items():
        trigger, event_type, bucket_filter, location = routed[function]
        bucket_name = f"${{google_storage_bucket.{bucket}.name}}"
        assert event_type == GCS_FINALIZED, trigger
        assert bucket_filter == bucket_name, f"{trigger} filters on {bucket_filter}"
        assert _service_env(services[function])[env_name] == bucket_name, f"{function} reads another bucket"
        assert location == f"${{lower(google_storage_bucket.{bucket}.location)}}", f"{trigger} location"


def test_trigger_identity_has_the_roles_eventarc_needs() -> None:
    # Arrange
    project_grants = _resources("google_project_iam_member")

    # Act
    roles = {(_scalar(b["role"]), _scalar(b["member"])) for b in project_grants.values()}

    # Assert
    assert ("roles/eventarc.eventReceiver", "${google_service_account.trigger.member}") in roles
    assert (
        "roles/pubsub.publisher",
        "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}",
    ) in roles
    for trigger in _resources("google_eventarc_trigger").values():
        assert _scalar(trigger["service_account"]) == "${google_service_account.trigger.email}"


def test_predict_reaches_the_archive_by_federation_without_any_key() -> None:
    # Arrange
    env = _service_env(_resources("google_cloud_run_v2_service")["predict"])
    trust = _typed("data")[("aws_iam_policy_document", "archive_writer_trust")]
    role = _resources("aws_iam_role")["archive_writer"]

    # Act
    (statement,) = _blocks(trust, "statement")
    (principal,) = _blocks(statement, "principals")
    conditions = {
        _scalar(c["variable"]): (_scalar(c["test"]), _list(c["values"]))
        for c in _blocks(statement, "condition")
    }
    key_names = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "ARCHIVE_AWS_ACCESS_KEY_ID"}

    # Assert: no key exists, in AWS, in Secret Manager or in the service.
    assert not _resources("aws_iam_user") and not _resources("aws_iam_access_key")
    assert not [n for n in _resources("google_secret_manager_secret") if "archive" in n]
    assert not key_names & set(env)
    # (_service_env reads map items out of the for_each expression, without their ${}.)
    assert env["ARCHIVE_AWS_ROLE_ARN"].strip("${}") == "aws_iam_role.archive_writer.arn"
    assert env["ARCHIVE_AWS_ID_TOKEN_AUDIENCE"].strip("${}") == "local.archive_token_audience"
    assert _scalar(role["assume_role_policy"]) == "${data.aws_iam_policy_document.archive_writer_trust.json}"
    # Only tokens Google signed for predict's account, minted for our audience.
    assert _list(statement["actions"]) == ["sts:AssumeRoleWithWebIdentity"]
    assert (_scalar(principal["type"]), _list(principal["identifiers"])) == (
        "Federated",
        ["accounts.google.com"],
    )
    unique_id = ["${google_service_account.predict.unique_id}"]
    assert conditions == {
        "accounts.google.com:aud": ("StringEquals", unique_id),
        "accounts.google.com:oaud": ("StringEquals", ["${local.archive_token_audience}"]),
        "accounts.google.com:sub": ("StringEquals", unique_id),
    }
    policy = _resources("aws_iam_role_policy")["archive_put_only"]
    assert _scalar(policy["policy"]) == "${data.aws_iam_policy_document.archive_put_only.json}"


# ---- first apply: versions, service agents, build account ----

# Terraform features and the first version that accepts them.
_FEATURES: tuple[tuple[str, tuple[int, int]], ...] = (
    ("variable validation referring to another variable", (1, 9)),
    ("removed block", (1, 7)),
    ("provider-defined function", (1, 8)),
    ("ephemeral block", (1, 10)),
    ("import or check block", (1, 5)),
    ("terraform_data resource", (1, 4)),
)


def _features_used() -> dict[str, tuple[int, int]]:
    used = {}
    for name, body in _named("variable").items():
        for validation in _blocks(body, "validation"):
            others = set(re.findall(r"\bvar\.(\w+)", str(validation.get("condition")))) - {name}
            if others:
                used[_FEATURES[0][0]] = _FEATURES[0][1]
    text = "\n".join(path.read_text() for path in sorted(TERRAFORM.glob("*.tf")))
    patterns = {
        "removed block": r"(?m)^removed\s*\{",
        "provider-defined function": r"provider::",
        "ephemeral block": r"(?m)^ephemeral\s",
        "import or check block": r"(?m)^(import|check)\s",
        "terraform_data resource": r'resource\s+"terraform_data"',
    }
    versions = dict(_FEATURES)
    used |= {name: versions[name] for name, pattern in patterns.items() if re.search(pattern, text)}
    return used


def test_required_version_is_the_oldest_terraform_that_accepts_the_code() -> None:
    # Arrange
    (block,) = _blocks(_files()["versions.tf"], "terraform")
    constraint = str(_scalar(block["required_version"]))
    readme = (TERRAFORM / "README.md").read_text()

    # Act
    needed = max(_features_used().values())
    lower = re.search(r">=\s*(\d+)\.(\d+)", constraint)

    # Assert
    assert lower, constraint
    assert (int(lower.group(1)), int(lower.group(2))) == needed, (
        f"required_version {constraint!r}, but the code needs {needed}: {_features_used()}"
    )
    assert f"Terraform {needed[0]}.{needed[1]} or later" in readme


def test_features_detection_sees_the_cross_variable_validation() -> None:
    # Arrange: the check above is only as good as this detection.
    validation = _named("variable")["webapp_min_instances"]["validation"]

    # Act
    used = _features_used()

    # Assert
    assert "var.webapp_max_instances" in str(validation)
    assert used["variable validation referring to another variable"] == (1, 9)


def test_service_agents_are_ensured_and_never_spelled_out() -> None:
    # Arrange
    identities = _resources("google_project_service_identity")
    text = "\n".join(path.read_text() for path in sorted(TERRAFORM.glob("*.tf")))
    token_creator = _resources("google_service_account_iam_member")["pubsub_agent_token_creator"]
    eventarc_grant = _resources("google_project_iam_member")["eventarc_agent"]

    # Act
    services = {_scalar(body["service"]): str(_scalar(body.get("provider"))) for body in identities.values()}

    # Assert
    assert {"pubsub.googleapis.com", "eventarc.googleapis.com"} <= set(services)
    assert all("google-beta" in provider for provider in services.values()), services
    assert "gcp-sa-" not in text, "service agent addresses must come from google_project_service_identity"
    assert _scalar(token_creator["member"]) == "${google_project_service_identity.pubsub.member}"
    assert _scalar(eventarc_grant["member"]) == "${google_project_service_identity.eventarc.member}"
    for name, trigger in _resources("google_eventarc_trigger").items():
        after = set(_list(trigger["depends_on"]))
        assert {
            "${google_project_iam_member.eventarc_agent}",
            "${google_project_iam_member.gcs_agent_publishes}",
            "${google_service_account_iam_member.pubsub_agent_token_creator}",
        } <= after, name


def test_cloud_build_runs_as_its_own_least_privileged_account() -> None:
    # Arrange
    member = "${google_service_account.cloudbuild.member}"
    grants = [
        (t, _scalar(body["role"]))
        for (t, _), body in _typed("resource").items()
        if "_iam_member" in t and _scalar(body.get("member")) == member
    ]
    build = yaml.safe_load((TERRAFORM / "cloudbuild.yaml").read_text())
    readme = (TERRAFORM / "README.md").read_text()

    # Assert
    assert sorted(grants) == [
        ("google_artifact_registry_repository_iam_member", "roles/artifactregistry.writer"),
        ("google_project_iam_member", "roles/logging.logWriter"),
        ("google_storage_bucket_iam_member", "roles/storage.objectViewer"),
    ]
    assert build["options"]["logging"] == "CLOUD_LOGGING_ONLY"
    assert "--service-account" in readme and "build_service_account" in readme
    assert "--gcs-source-staging-dir" in readme and "build_source_bucket" in readme


def test_every_cloud_run_service_has_startup_and_liveness_probes() -> None:
    # Arrange
    services = _resources("google_cloud_run_v2_service")

    # Act
    probes = {
        name: {
            k for c in _blocks(_blocks(body, "template")[0], "containers") for k in c if k.endswith("_probe")
        }
        for name, body in services.items()
    }

    # Assert
    assert probes == {name: {"startup_probe", "liveness_probe"} for name in services}


def test_failed_eventarc_deliveries_end_in_a_readable_dead_letter_subscription() -> None:
    # Arrange
    subscriptions = _locals()["trigger_subscriptions"]
    policy = _resources("terraform_data")["trigger_dead_letter_policy"]
    readable = _resources("google_pubsub_subscription")["dead_letters"]
    readme = (TERRAFORM / "README.md").read_text()

    # Act
    command = str(_scalar(_blocks(policy, "provisioner")[0]["local-exec"]["command"]))
    subscribed = set(_scalar(subscriptions).values())

    # Assert
    assert subscribed == {
        f"${{google_eventarc_trigger.{name}.transport[0].pubsub[0].subscription}}"
        for name in _resources("google_eventarc_trigger")
    }
    assert _scalar(policy["for_each"]) == "${local.trigger_subscriptions}"
    assert "--dead-letter-topic=${google_pubsub_topic.dead_letters.id}" in command
    assert "--max-delivery-attempts=${var.dead_letter_max_delivery_attempts}" in command
    assert _scalar(readable["topic"]) == "${google_pubsub_topic.dead_letters.id}"
    assert "gcloud pubsub subscriptions pull" in readme


def test_tfvars_example_sets_only_declared_variables_and_the_required_one() -> None:
    # Arrange
    with (TERRAFORM / "terraform.tfvars.example").open() as handle:
        example = norm(hcl2.load(handle))

    # Act
    unknown = set(example) - set(_named("variable"))

    # Assert
    assert "project" in example and not unknown, unknown


# ---- retention: a setting per bucket, enforced by lifecycle rules ----

_RETENTION = re.compile(r"^\$\{var\.(\w+) > 0 \? \[var\.\1\] : \[\]\}$")


def _retention_rules(body: dict[str, Any], block: str) -> dict[str, dict[str, Any]]:
    """Retention variable -> the dynamic block's content, for `dynamic BLOCK` gated on `var.X > 0`."""
    found = {}
    for dynamic in _blocks(body, "dynamic"):
        for rule in _blocks(dynamic, block):
            gate = _RETENTION.match(str(_scalar(rule.get("for_each"))))
            if gate:
                (found[gate.group(1)],) = _blocks(rule, "content")
    return found


def test_each_bucket_deletes_by_age_after_its_retention_setting() -> None:
    # Arrange
    buckets = _resources("google_storage_bucket")
    variables = _named("variable")
    expected = {"uploads": "upload_retention_days", "results": "result_retention_days"}

    # Act
    rules = {name: _retention_rules(buckets[name], "lifecycle_rule") for name in expected}

    # Assert
    for bucket, variable in expected.items():
        content = rules[bucket][variable]
        (condition,) = _blocks(content, "condition")
        (action,) = _blocks(content, "action")
        assert _scalar(condition["age"]) == "${lifecycle_rule.value}", bucket
        assert _scalar(action["type"]) == "Delete", bucket
        assert _scalar(variables[variable]["default"]) == 0, f"{variable}: keeping is the default"
        assert _blocks(variables[variable], "validation"), variable


def test_archive_expires_after_its_retention_setting_under_its_prefix_only() -> None:
    # Arrange
    lifecycle = _resources("aws_s3_bucket_lifecycle_configuration")["archive"]
    variable = _named("variable")["archive_retention_days"]

    # Act
    content = _retention_rules(lifecycle, "rule")["archive_retention_days"]
    (expiration,) = _blocks(content, "expiration")
    (prefix_filter,) = _blocks(content, "filter")

    # Assert
    assert _scalar(expiration["days"]) == "${rule.value}"
    assert _scalar(prefix_filter["prefix"]) == "${var.archive_prefix}"
    assert _scalar(variable["default"]) == 0
    assert "var.archive_infrequent_access_days" in str(_blocks(variable, "validation"))


def test_retention_settings_are_documented() -> None:
    # Arrange
    readme = (TERRAFORM / "README.md").read_text()

    # Act
    missing = [
        name
        for name in ("upload_retention_days", "result_retention_days", "archive_retention_days")
        if f"`{name}`" not in readme
    ]

    # Assert
    assert not missing, f"terraform/README.md does not explain {missing}"
