"""Run each of the four images exactly as each platform's manifests start it, and check it stays up.

Knative: `kubectl kustomize knative/` with credentials from knative/secrets/generate.sh
(in a scratch copy); Cloud Run: terraform/services.tf with the variables' defaults and
terraform.tfvars.example, plus a generated sign-in account. Each container gets its
manifest's env (Secrets and ConfigMaps resolved), command, args, user, read-only
root, dropped capabilities, no-new-privileges, emptyDirs as sized tmpfs and secret
volumes as read-only files, and must answer its probes and log no error. Only what
the platform itself provides is swapped for loopback: the object store (moto S3 /
the GCS emulator) and the event sink. Needs root and podman, with the sandbox
shims of tools/build_images.sh in the environment (CONTAINERS_CONF, STORAGE_DRIVER).

    python tools/run_as_deployed.py [--platform knative|cloudrun] [--keep] [--run-id ID]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.deployed import GENERATE_ENV, render  # noqa: E402
from tools.asdeployed.cloudrun import cloud_run_specs, tfvars  # noqa: E402
from tools.asdeployed.knative import knative_specs  # noqa: E402
from tools.asdeployed.runner import Outcome, Runner  # noqa: E402
from tools.asdeployed.spec import IMAGES, RunSpec, SpecError, with_env  # noqa: E402
from tools.asdeployed.stores import BUCKET_SETTINGS, closed_port_url, gcs_server, s3_server  # noqa: E402

PLATFORMS = ("knative", "cloudrun")
# Cloud Run's web app is also checked signing people in through IAP (var.webapp_iap).
IAP = {"webapp_iap": True, "webapp_iap_reviewers": ["reviewer@example.org"]}
# Images a platform does not run, and why; any other missing image is an error.
NOT_DEPLOYED = {
    ("cloudrun", "eventsource"): "Eventarc turns Cloud Storage notifications into CloudEvents (triggers.tf)",
}


def specs_for(platform: str, work: Path) -> list[RunSpec]:
    if platform == "knative":
        return knative_specs(render("knative"), work / "knative")
    account = subprocess.run(
        [sys.executable, "-m", "bloodcell.cli", "user", "add", "ci-admin", "--role", "reviewer"],
        input="a CI password\n", capture_output=True, text=True, check=True, timeout=120, env=GENERATE_ENV,
    ).stdout.strip()  # fmt: skip
    variables = tfvars(REPO / "terraform" / "terraform.tfvars.example") | {"webapp_accounts": account + "\n"}
    behind_iap = cloud_run_specs(
        REPO / "terraform", variables | IAP, work / "cloudrun-iap", only=("webapp",), platform="cloudrun-iap"
    )
    return cloud_run_specs(REPO / "terraform", variables, work / "cloudrun") + behind_iap


def on_loopback(spec: RunSpec, store: str, sink: str) -> RunSpec:
    """Platform services pointed at loopback: the S3 endpoints (Knative), Cloud Storage, the event sink."""
    if spec.platform.startswith("cloudrun"):  # the client library's own switch to an emulator
        return dataclasses.replace(spec, env={**spec.env, "STORAGE_EMULATOR_HOST": store})
    endpoints = {k: store for k in ("S3_ENDPOINT_URL", "ARCHIVE_S3_ENDPOINT_URL") if spec.env.get(k)}
    if "K_SINK" in spec.env:
        endpoints["K_SINK"] = sink
    return with_env(spec, **endpoints)


@contextlib.contextmanager
def store_for(platform: str, specs: list[RunSpec]) -> Iterator[str]:
    buckets = {spec.env[k] for spec in specs for k in BUCKET_SETTINGS if spec.env.get(k)}
    server = gcs_server if platform == "cloudrun" else s3_server
    with server(buckets) as url:
        yield url


def report(outcome: Outcome) -> None:
    mark = "ok  " if outcome.ok else "FAIL"
    print(f"{mark} {outcome.spec.title}: {outcome.message}", flush=True)
    if outcome.log and not outcome.ok:
        print(f"---- log of {outcome.spec.title}\n{outcome.log.rstrip()}\n----")
    if outcome.command:
        print(f"     {outcome.command}", flush=True)


def check(platform: str, work: Path, runner: Runner) -> list[str]:
    """Runs every container of one platform; returns the failures' titles."""
    try:
        specs = specs_for(platform, work)
    except SpecError as exc:  # a manifest that could not be deployed as written
        print(f"FAIL {exc}", flush=True)
        return [platform]
    failed = []
    for image in IMAGES:
        if not any(spec.image == image for spec in specs):
            reason = NOT_DEPLOYED.get((platform, image))
            print(f"--   {platform}: bloodcell-{image} is not deployed here: {reason or 'MISSING'}")
            if reason is None:
                failed.append(f"{platform}/bloodcell-{image} (missing)")
    with store_for(platform, specs) as store:
        sink = closed_port_url()
        sent = f", event sink {sink}" if any("K_SINK" in spec.env for spec in specs) else ""
        print(f"     {platform}: object store on loopback at {store}{sent}", flush=True)
        for spec in specs:
            outcome = runner.run(on_loopback(spec, store, sink))
            report(outcome)
            if not outcome.ok:
                failed.append(spec.title)
    return failed


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the clean-up below


def main(argv: list[str] | None = None) -> int:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the loopback stores' request lines
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--platform", choices=PLATFORMS, action="append", help="default: both")
    parser.add_argument("--start-seconds", type=float, default=180, help="start-up budget per container")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (secrets!)")
    parser.add_argument("--run-id", default=str(os.getpid()), help="containers are named bc-deployed-ID-*")
    opts = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    work = Path(tempfile.mkdtemp(prefix="bloodcell-deployed-"))
    runner = Runner(work, opts.run_id, opts.start_seconds)
    failed: list[str] = []
    try:
        for platform in opts.platform or PLATFORMS:
            failed += check(platform, work, runner)
    finally:
        runner.cleanup()
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
    if failed:
        print(f"containers that do not start as deployed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print("every container started as deployed and answered its probes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
