"""AWS credentials for a Google workload, without any AWS key.

A Cloud Run service (or any Google workload) asks its metadata server for a
Google-signed ID token of its service account, and AWS STS exchanges that token
(AssumeRoleWithWebIdentity) for short-lived credentials of a role whose trust
policy names the account. botocore calls `fetch` again shortly before they
expire, so a long-running instance never holds a stale or long-lived secret.
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

METADATA_HOST = "metadata.google.internal"
_IDENTITY_PATH = "/computeMetadata/v1/instance/service-accounts/default/identity"
_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class WebIdentity:
    """Which role to assume, and the ID-token audience its trust policy expects."""

    role_arn: str
    audience: str
    session_name: str = "bloodcell"


def google_id_token(audience: str, metadata_host: str = METADATA_HOST) -> str:
    """The service account's ID token for `audience`, from the metadata server.

    format=full puts the account's identity claims in the token, which AWS
    needs to match the trust policy.
    """
    from botocore.exceptions import CredentialRetrievalError

    query = urlencode({"audience": audience, "format": "full"})
    request = urllib.request.Request(
        f"http://{metadata_host}{_IDENTITY_PATH}?{query}", headers={"Metadata-Flavor": "Google"}
    )
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_SECONDS) as response:
            token: str = response.read().decode("ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialRetrievalError(provider="google-metadata", error_msg=str(exc)) from exc
    if token.count(".") != 2:
        raise CredentialRetrievalError(provider="google-metadata", error_msg="not a JWT")
    return token


class _GoogleWebIdentityProvider:
    """A botocore credential provider (duck-typed: METHOD, CANONICAL_NAME, load)."""

    METHOD = "google-web-identity"
    CANONICAL_NAME = "GoogleWebIdentity"

    def __init__(self, fetch: Any) -> None:
        self._fetch = fetch

    def load(self) -> Any:
        from botocore.credentials import DeferredRefreshableCredentials

        # Deferred: nothing is fetched until the first request needs credentials.
        return DeferredRefreshableCredentials(refresh_using=self._fetch, method=self.METHOD)


def refreshable_session(
    identity: WebIdentity,
    region: str | None,
    *,
    metadata_host: str = METADATA_HOST,
    sts_endpoint_url: str | None = None,
) -> Any:
    """A boto3 Session whose credentials come from (and are renewed by) the web-identity exchange."""
    import boto3
    import botocore.session
    from botocore.config import Config

    sts = boto3.client(
        "sts",
        region_name=region,
        endpoint_url=sts_endpoint_url,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=3, read_timeout=10),
    )

    def fetch() -> dict[str, str]:
        token = google_id_token(identity.audience, metadata_host)
        # AssumeRoleWithWebIdentity is unsigned: the token is the proof.
        creds = sts.assume_role_with_web_identity(
            RoleArn=identity.role_arn, RoleSessionName=identity.session_name, WebIdentityToken=token
        )["Credentials"]
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": creds["Expiration"].isoformat(),
        }

    core = botocore.session.get_session()
    # First in the chain, so stray AWS_* variables can never stand in for the role.
    core.get_component("credential_provider").insert_before("env", _GoogleWebIdentityProvider(fetch))
    return boto3.Session(botocore_session=core, region_name=region)
