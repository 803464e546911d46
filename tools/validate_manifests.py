"""Validate rendered Kubernetes manifests strictly, without a cluster.

- Built-in kinds: against Kubernetes' own OpenAPI schemas (kubernetes-validate,
  strict: unknown fields are errors), for --kubernetes (default 1.32).
- Knative kinds: against the CustomResourceDefinitions pinned in --crds (the
  release's own files, ../shared/deploy-schemas/knative-vX.Y.Z). A field the
  CRD's structural schema would prune (not declared, no
  x-kubernetes-preserve-unknown-fields) is an error, since the API server would
  silently drop it.
- Pod templates inside Knative Services (which the CRDs leave open) and inside
  Deployments/Jobs: as a Kubernetes PodSpec, strict, after removing the fields
  Knative's RevisionSpec adds.

    python tools/validate_manifests.py --crds DIR rendered.yaml [more.yaml ...]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

# RevisionSpec = PodSpec + these (knative.dev/serving/pkg/apis/serving/v1).
REVISION_FIELDS = {
    "containerConcurrency",
    "timeoutSeconds",
    "responseStartTimeoutSeconds",
    "idleTimeoutSeconds",
}


def load_crds(directory: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema, for every CRD version in the directory."""
    schemas = {}
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                api_version = f"{spec['group']}/{version['name']}"
                schemas[(api_version, spec["names"]["kind"])] = version["schema"]["openAPIV3Schema"]
    return schemas


def pruned(value: Any, schema: dict[str, Any], path: str) -> Iterator[str]:
    """Paths of fields the schema does not declare.

    Where the structural schema prunes, the API server would drop them
    silently; where it preserves unknown fields but still lists the known ones
    (Trigger.spec, for one), Knative's webhook decodes strictly and refuses
    them. Only schemas that list nothing stay open.
    """
    if schema.get("x-kubernetes-preserve-unknown-fields") and not schema.get("properties"):
        return
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if not path and key in ("apiVersion", "kind", "metadata"):
                continue  # every object's own: the API server handles ObjectMeta itself
            if key in properties:
                yield from pruned(item, properties[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                yield from pruned(item, extra, f"{path}.{key}")
            elif extra is not True and (properties or schema.get("type") == "object"):
                yield f"{path}.{key}"
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield from pruned(item, schema["items"], f"{path}[{i}]")


def _pod_templates(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    template = doc.get("spec", {}).get("template")
    if not isinstance(template, dict) or "spec" not in template:
        return
    spec = dict(template["spec"])
    if (doc["apiVersion"], doc["kind"]) == ("serving.knative.dev/v1", "Service"):
        spec = {k: v for k, v in spec.items() if k not in REVISION_FIELDS}
    yield (
        "spec.template",
        {"apiVersion": "v1", "kind": "Pod", "metadata": template.get("metadata", {}), "spec": spec},
    )


def problems(
    docs: list[dict[str, Any]], crds: dict[tuple[str, str], dict[str, Any]], kubernetes: str
) -> list[str]:
    found = []
    for doc in docs:
        name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        key = (doc.get("apiVersion", ""), doc.get("kind", ""))
        if key in crds:
            schema = crds[key]
            for error in jsonschema.Draft7Validator(schema).iter_errors(doc):
                found.append(f"{name}: {'.'.join(map(str, error.absolute_path))}: {error.message}")
            found += [
                f"{name}: {field}: not in the CRD's schema (would be pruned)"
                for field in pruned(doc, schema, "")
            ]
        else:
            try:
                kubernetes_validate.validate(doc, kubernetes, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                found.append(
                    f"{name}: {key[0]} {key[1]} is neither a Kubernetes {kubernetes} kind nor a pinned CRD"
                )
                continue
            except kubernetes_validate.ValidationError as exc:
                found.append(f"{name}: {'.'.join(map(str, exc.path))}: {exc.message}")
        # Built-in kinds' pod templates were validated with the object itself.
        for where, pod in _pod_templates(doc) if key in crds else ():
            try:
                kubernetes_validate.validate(pod, kubernetes, strict=True)
            except kubernetes_validate.ValidationError as exc:
                found.append(f"{name}: {where}.{'.'.join(map(str, exc.path))}: {exc.message}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crds", type=Path, required=True, help="folder of pinned CRD files")
    parser.add_argument("--kubernetes", default="1.32", help="Kubernetes version to validate against")
    parser.add_argument("manifests", nargs="+", type=Path)
    opts = parser.parse_args(argv)
    if not opts.crds.is_dir():
        parser.error(f"no CRD folder at {opts.crds} (set DEPLOY_SCHEMAS)")
    crds = load_crds(opts.crds)
    found = []
    count = 0
    for path in opts.manifests:
        docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
        count += len(docs)
        found += [f"{path.name}: {line}" for line in problems(docs, crds, opts.kubernetes)]
    sys.stderr.writelines(f"{line}\n" for line in found)
    sys.stdout.write(f"{count} objects validated against Kubernetes {opts.kubernetes} and {len(crds)} CRDs: ")
    sys.stdout.write(f"{len(found)} problems\n")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
