#!/usr/bin/env bash
# Build the four images for real and run the two functions from them:
#   1. a Debian bookworm base made with debootstrap from Debian's archive (base
#      images cannot be pulled here), with Debian's python3 (3.11, like the
#      official python:3.11-slim-bookworm the Dockerfiles name);
#   2. each Dockerfile copied with that base substituted for its FROM lines
#      (the Dockerfiles themselves stay on the official base), built with buildah;
#   3. image sizes checked against the budget in knative/README.md;
#   4. preprocess and predict run read-only, as their non-root user, with only
#      /tmp writable; an Eventarc-style CloudEvent is POSTed to each (folder
#      buckets on a shared volume), and the result must be a classification,
#      with no ERROR line in either log;
#   5. every container started exactly as deployed (tools/run_as_deployed.py):
#      knative/ rendered with kustomize and the Cloud Run services of
#      terraform/services.tf, each image run with its manifest's env (Secrets and
#      ConfigMaps resolved), command, args, user, read-only root, capabilities,
#      scratch tmpfs and secret files; it must stay up, answer its probes and log
#      no error. Only the object store and the event sink are loopback stand-ins.
#
# Needs root, buildah, podman, runc and debootstrap (apt-get install buildah
# podman runc debootstrap uidmap), kubectl, network to deb.debian.org and PyPI,
# and for step 5 the packages in tools/run-as-deployed-requirements.txt (nox -s
# images installs them).
#
#   sudo tools/build_images.sh            # everything
#   KEEP=1 sudo tools/build_images.sh     # keep the work folder for a look
set -euo pipefail
cd "$(dirname "$0")/.."

WORK=${WORK:-$(mktemp -d /tmp/bloodcell-images.XXXXXX)}
RUN_ID=$$
cleanup() {
  podman rm -f "bc-preprocess-$RUN_ID" "bc-predict-$RUN_ID" >/dev/null 2>&1 || true
  # run_as_deployed.py removes its own; these are what a killed run left behind.
  podman ps -aq --filter "name=^bc-deployed-$RUN_ID-" | xargs -r podman rm -f -t 0 >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
[ -n "${KEEP:-}" ] || trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }

# ---------------------------------------------------------------------------
# SANDBOX-ONLY SHIMS. None of this goes into an image or a Dockerfile.
# This CI sandbox cannot setrlimit and has hybrid cgroups, so:
#   - an OCI runtime wrapper that drops process.rlimits from config.json
#     before handing over to runc (crun refuses hybrid cgroups outright);
#   - cgroup_manager = "cgroupfs" (no systemd here), events to a file;
#   - host networking for builds and containers (no netavark/slirp here);
#   - the sandbox intercepts TLS with its own CA: the host's CA bundle is put
#     into the CI base image (and PIP_CERT pointed at it), so pip can reach PyPI.
export CONTAINERS_CONF="$WORK/containers.conf"
export STORAGE_DRIVER=vfs
mkdir -p "$WORK/bin"
cat > "$WORK/bin/runc-no-rlimits" <<'SHIM'
#!/bin/sh
# Drop process.rlimits from the bundle's config.json, then run runc.
bundle=""
prev=""
for arg in "$@"; do
  case "$prev" in --bundle|-b) bundle=$arg ;; esac
  case "$arg" in --bundle=*) bundle=${arg#--bundle=} ;; esac
  prev=$arg
done
if [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then
  python3 -c 'import json,sys; p=sys.argv[1]; c=json.load(open(p)); c.get("process",{}).pop("rlimits",None); json.dump(c,open(p,"w"))' "$bundle/config.json"
fi
exec /usr/bin/runc "$@"
SHIM
chmod +x "$WORK/bin/runc-no-rlimits"
cat > "$CONTAINERS_CONF" <<CONF
[containers]
netns = "host"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
[engine.runtimes]
runc = ["$WORK/bin/runc-no-rlimits"]
CONF
BUILD_FLAGS=(--isolation chroot --network host --layers)
# END OF SANDBOX-ONLY SHIMS
# ---------------------------------------------------------------------------

# Budgets (MB, uncompressed): the same figures as knative/README.md, for images
# on the official python:3.11-slim-bookworm (~130 MB). The CI base is Debian's
# own python3 and is bigger, so what is checked is what each Dockerfile adds on
# top of its base, against the budget minus the official base.
OFFICIAL_BASE_MB=130
declare -A BUDGET=([preprocess]=400 [predict]=450 [webapp]=700 [eventsource]=400)
declare -A DOCKERFILE=(
  [preprocess]=functions/preprocess/Dockerfile
  [predict]=functions/predict/Dockerfile
  [webapp]=webapp/Dockerfile
  [eventsource]=knative/eventsource/Dockerfile
)

step "debootstrap a bookworm base"
BASE=localhost/bloodcell-base:bookworm
if ! podman image exists "$BASE"; then
  debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,python-is-python3,ca-certificates \
    bookworm "$WORK/rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log"; exit 1; }
  # Like the official image: pip may install into the interpreter's site-packages.
  rm -f "$WORK"/rootfs/usr/lib/python3*/EXTERNALLY-MANAGED
  rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/*
  # SANDBOX-ONLY: the host's CA bundle (see the shims above).
  cp /etc/ssl/certs/ca-certificates.crt "$WORK/rootfs/etc/ssl/certs/ca-certificates.crt"
  tar -C "$WORK/rootfs" -c . | podman import --change 'CMD ["python3"]' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' - "$BASE" >/dev/null
fi
podman image ls "$BASE"
base_size=$(podman image inspect "$BASE" --format '{{.Size}}')

for name in preprocess predict webapp eventsource; do
  step "build bloodcell-$name"
  sed -E "s#^FROM python:3\.11-slim-bookworm#FROM $BASE#" "${DOCKERFILE[$name]}" > "$WORK/Dockerfile.$name"
  grep -q "^FROM $BASE" "$WORK/Dockerfile.$name"
  buildah bud "${BUILD_FLAGS[@]}" -q -f "$WORK/Dockerfile.$name" -t "localhost/bloodcell-$name:ci" . >/dev/null
  size=$(podman image inspect "localhost/bloodcell-$name:ci" --format '{{.Size}}')
  added=$(((size - base_size) / 1000000))
  echo "bloodcell-$name: $((size / 1000000)) MB here, $added MB over its base;" \
    "on the official base ~$((added + OFFICIAL_BASE_MB)) MB (budget ${BUDGET[$name]} MB)"
  if [ $((added + OFFICIAL_BASE_MB)) -gt "${BUDGET[$name]}" ]; then
    echo "bloodcell-$name is over its size budget" >&2
    exit 1
  fi
done

step "run preprocess and predict read-only as their non-root user"
DATA="$WORK/data"
mkdir -p "$DATA/uploads" "$DATA/tensors" "$DATA/results"
chown -R 10001:10001 "$DATA"
run() {  # name port target
  podman run -d --name "bc-$1-$RUN_ID" --read-only --tmpfs /tmp:rw,size=64m --user 10001:10001 \
    --cap-drop ALL --security-opt no-new-privileges \
    -e PORT="$2" -e BLOODCELL_STORAGE=local -e BLOODCELL_DATA_DIR=/data \
    -v "$DATA:/data:rw" "localhost/bloodcell-$1:ci" >/dev/null
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PRE_PORT=$(free_port)
PRED_PORT=$(free_port)
run preprocess $PRE_PORT
run predict $PRED_PORT
for port in $PRE_PORT $PRED_PORT; do
  for _ in $(seq 1 60); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null; then break; fi
    sleep 1
  done
done

step "POST Eventarc-style CloudEvents"
python3 tools/post_cloudevents.py --data "$DATA" --preprocess "http://127.0.0.1:$PRE_PORT/" \
  --predict "http://127.0.0.1:$PRED_PORT/" --image "${SAMPLE_IMAGE:-}"

step "no ERROR at start-up"
for name in preprocess predict; do
  podman logs "bc-$name-$RUN_ID" > "$WORK/$name.log" 2>&1
  if grep -n "ERROR" "$WORK/$name.log"; then
    echo "bloodcell-$name logged an ERROR (above)" >&2
    exit 1
  fi
done
[ -n "${KEEP:-}" ] || podman rm -f "bc-preprocess-$RUN_ID" "bc-predict-$RUN_ID" >/dev/null

step "every container as its manifests start it (Knative and Cloud Run)"
python3 tools/run_as_deployed.py --run-id "$RUN_ID" ${KEEP:+--keep}
step "images built, within budget, classifying, and starting as deployed"
