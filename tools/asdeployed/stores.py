"""The platform's services on loopback: an S3 store (moto) for Knative, a GCS one for Cloud Run.

The containers run on the host's network (a sandbox shim, tools/build_images.sh),
so a server on 127.0.0.1 is what the in-cluster object store or Cloud Storage is to
them. The buckets the configuration names are made first, as the create-buckets
Job (Knative) or storage.tf (Cloud Run) would have made them.
"""

from __future__ import annotations

import contextlib
import json
import socket
import urllib.request
from collections.abc import Iterable, Iterator

BUCKET_SETTINGS = ("UPLOAD_BUCKET", "TENSOR_BUCKET", "RESULT_BUCKET", "ARCHIVE_BUCKET")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def closed_port_url() -> str:
    """A loopback URL nothing listens on: a sink that is configured but not reached at start-up."""
    return f"http://127.0.0.1:{free_port()}/"


@contextlib.contextmanager
def s3_server(buckets: Iterable[str]) -> Iterator[str]:
    """moto's S3 over HTTP on loopback, the buckets made (moto does not check signatures)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        for bucket in sorted(set(buckets)):
            request = urllib.request.Request(f"{url}/{bucket}", method="PUT")
            with urllib.request.urlopen(request, timeout=10) as answer:
                answer.read()
        yield url
    finally:
        server.stop()


@contextlib.contextmanager
def gcs_server(buckets: Iterable[str]) -> Iterator[str]:
    """gcp-storage-emulator on loopback (STORAGE_EMULATOR_HOST), the buckets made."""
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        for bucket in sorted(set(buckets)):
            body = json.dumps({"name": bucket}).encode()
            request = urllib.request.Request(
                f"{url}/storage/v1/b?project=ci", data=body, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=10) as answer:
                answer.read()
        yield url
    finally:
        server.stop()
