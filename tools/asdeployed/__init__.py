"""Run each image as its platform would start it: the manifests' configuration, exactly, under podman.

Schemas say a manifest is well formed and the start-up checks in the tests say its
environment parses; neither starts the image. This package turns each deployed
container (rendered knative/, and the Cloud Run services in terraform/) into a
``RunSpec`` (spec.py: what the platform would hand the container), turns that into
one ``podman run`` (podman.py), and checks the container stays up and answers
its probes (runner.py). tools/run_as_deployed.py is the entry point.
"""
