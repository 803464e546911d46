#!/usr/bin/env bash
# Static checks of the deployment code, run by CI (through nox) and by hand:
#   terraform fmt        terraform/ is formatted (skipped if terraform is absent)
#   yamllint             knative/ manifests (config: .yamllint.yaml)
#   checkov terraform    terraform/
#   checkov kubernetes   knative/ as `kubectl kustomize` renders it, i.e. what
#                        `kubectl apply -k knative/` would create
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
"$KUBECTL" kustomize knative/ > "$work/knative-rendered.yaml"
echo "rendered $(grep -c '^kind:' "$work/knative-rendered.yaml") objects"

# --skip-download: no calls to the checkov platform (this runs offline too).
step "checkov terraform/"
"$CHECKOV" --directory terraform --framework terraform --quiet --compact --skip-download

step "checkov knative/ (rendered)"
"$CHECKOV" --file "$work/knative-rendered.yaml" --framework kubernetes --quiet --compact --skip-download

step "all deployment checks passed"
