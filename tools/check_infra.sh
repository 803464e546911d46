#!/usr/bin/env bash
# Static checks of the deployment code, run by CI (through nox) and by hand:
#   terraform fmt        terraform/ is formatted (skipped if terraform is absent)
#   yamllint             knative/ manifests (config: .yamllint.yaml)
#   checkov terraform    terraform/
#   checkov kubernetes   knative/ as `kubectl kustomize` renders it, i.e. what
#                        `kubectl apply -k knative/` would create (rendered from
#                        a copy, with throwaway credentials from secrets/generate.sh)
#   schemas              rendered knative/ and its GKE overlay against Kubernetes 1.32 (strict)
#                        and the pinned Knative CRDs in $DEPLOY_SCHEMAS (tools/validate_manifests.py)
#   provider schemas     every Terraform block and argument exists in the pinned providers
#                        (tools/provider_schemas.py; CDKTF bindings from npm, cached)
#   images               every image pinned and from an allowed registry (tools/check_images.py)
#   checkov dockerfile   the four Dockerfiles
#   checkov secrets      no credentials committed anywhere in the tracked files
# Every check must pass; a checkov finding is either fixed or skipped inline
# with its reason (#checkov:skip=ID:reason in HCL, checkov.io/skipN annotations
# in YAML).
#
# Needs checkov, yamllint and kubectl on PATH (or CHECKOV / YAMLLINT / KUBECTL
# set). checkov pins its own boto3 and ships a fork of python-hcl2 under the
# same module name, so install it in a virtualenv of its own:
#   python3 -m venv .venv-infra && .venv-infra/bin/pip install checkov==3.3.30 yamllint==1.38.0
#   PATH="$PWD/.venv-infra/bin:$PATH" tools/check_infra.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CHECKOV=${CHECKOV:-checkov}
# The Knative CRDs the manifests must satisfy (never committed: ../shared).
DEPLOY_SCHEMAS=${DEPLOY_SCHEMAS:-$(cd .. && pwd)/shared/deploy-schemas/knative-v1.18.0}
YAMLLINT=${YAMLLINT:-yamllint}
KUBECTL=${KUBECTL:-kubectl}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() { printf '\n== %s\n' "$*"; }

if command -v terraform >/dev/null 2>&1; then
  step "terraform fmt -check -recursive terraform/"
  terraform fmt -check -recursive -diff terraform
else
  step "terraform is not on PATH: skipping terraform fmt"
fi

step "yamllint knative/"
"$YAMLLINT" --strict -c .yamllint.yaml knative/ .yamllint.yaml

step "kubectl kustomize knative/"
# The real credentials are generated at install and git-ignored: render a copy
# with throwaway ones, so this works in a fresh clone too.
cp -R knative "$work/knative"
rm -f "$work"/knative/secrets/*.env "$work"/knative/secrets/accounts "$work"/knative/secrets/admin-password.txt
# The web app's accounts come from `bloodcell user add`, which this venv lacks:
# an empty accounts file renders the same Secret shape (tests/test_deployed_config.py
# renders with a real account and runs the app's start-up check on it).
printf '# throwaway render: no accounts\n' > "$work/knative/secrets/accounts"
sh "$work/knative/secrets/generate.sh" >/dev/null
"$KUBECTL" kustomize "$work/knative" > "$work/knative-rendered.yaml"
echo "rendered $(grep -c '^kind:' "$work/knative-rendered.yaml") objects"

step "kubectl kustomize terraform/gke/knative/overlay (GKE)"
mkdir -p "$work/terraform/gke/knative"
cp -R terraform/gke/knative/overlay "$work/terraform/gke/knative/overlay"
"$KUBECTL" kustomize "$work/terraform/gke/knative/overlay" > "$work/gke-rendered.yaml"
echo "rendered $(grep -c '^kind:' "$work/gke-rendered.yaml") objects"

step "schemas: Kubernetes 1.32 (strict) and the Knative CRDs in $DEPLOY_SCHEMAS"
python3 tools/validate_manifests.py --kubernetes 1.32 --crds "$DEPLOY_SCHEMAS" \
  "$work/knative-rendered.yaml" "$work/gke-rendered.yaml"

step "images: pinned, from allowed registries"
python3 tools/check_images.py "$work/knative-rendered.yaml" "$work/gke-rendered.yaml" \
  functions/preprocess/Dockerfile functions/predict/Dockerfile webapp/Dockerfile knative/eventsource/Dockerfile

step "Terraform blocks and arguments against the pinned provider schemas"
if ! command -v npm >/dev/null 2>&1; then
  echo "npm is needed to fetch the providers' CDKTF bindings (apt-get install npm)" >&2
  exit 1
fi
python3 tools/provider_schemas.py --cache "${PROVIDER_SCHEMA_CACHE:-$HOME/.cache/bloodcell/provider-schemas}" \
  terraform terraform/gke/cluster terraform/gke/knative

# --skip-download: no calls to the checkov platform (this runs offline too).
# Recursive: the Cloud Run module and both GKE modules (terraform/gke/).
step "checkov terraform/ (Cloud Run, GKE cluster, Knative on GKE)"
"$CHECKOV" --directory terraform --framework terraform --quiet --compact --skip-download

step "checkov knative/ and the GKE overlay (rendered)"
"$CHECKOV" --file "$work/knative-rendered.yaml" --file "$work/gke-rendered.yaml" \
  --framework kubernetes --quiet --compact --skip-download

step "checkov Dockerfiles"
"$CHECKOV" --framework dockerfile --quiet --compact --skip-download \
  --file functions/preprocess/Dockerfile --file functions/predict/Dockerfile \
  --file webapp/Dockerfile --file knative/eventsource/Dockerfile

# Secrets scan of exactly what git tracks (a fresh clone), not of ignored files
# such as the generated knative/secrets/*.env.
step "checkov secrets (tracked files)"
mkdir "$work/tracked"
git ls-files -z | tar --null --ignore-failed-read -T - -cf - | tar -xf - -C "$work/tracked"
"$CHECKOV" --directory "$work/tracked" --framework secrets --enable-secret-scan-all-files \
  --quiet --compact --skip-download

step "all deployment checks passed"
