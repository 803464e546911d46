"""What each platform hands a container: environment and mounted files, resolved as the platform would.

Schemas say a manifest is well formed; only the app's own start-up checks say it
can run. These helpers turn a rendered Knative workload, or a Cloud Run service
read from terraform/, into the environment (and the secret files, written under
a scratch folder) the container would get, so tests can run those checks on it.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent.parent
# `bloodcell user add` for knative/secrets/generate.sh: this interpreter's package,
# whatever is on PATH.
GENERATE_ENV = {**os.environ, "BLOODCELL": f"{sys.executable} -m bloodcell.cli"}


def render(target: str = "knative") -> tuple[dict[str, Any], ...]:
    """`kubectl kustomize` of knative/ or the GKE overlay, from a copy with freshly generated credentials."""
    import yaml

    root = Path(tempfile.mkdtemp(prefix="render-"))
    try:
        shutil.copytree(REPO / "knative", root / "knative")
        for made in (root / "knative" / "secrets").iterdir():  # what an earlier generate.sh left here
            if made.name not in ("generate.sh", ".gitignore"):
                made.unlink()
        overlay = Path("terraform/gke/knative/overlay")
        shutil.copytree(REPO / overlay, root / overlay)
        subprocess.run(
            ["sh", str(root / "knative" / "secrets" / "generate.sh")],
            capture_output=True, check=True, timeout=120, env=GENERATE_ENV,
        )  # fmt: skip
        result = subprocess.run(
            ["kubectl", "kustomize", str(root / target)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        shutil.rmtree(root)
    assert result.returncode == 0, f"kubectl kustomize {target} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def _mount(root: Path, mount_path: str) -> Path:
    return root / mount_path.lstrip("/")


def _rewrite_paths(env: dict[str, str], mounts: Mapping[str, Path]) -> dict[str, str]:
    """Values naming a file under a mount point now name the scratch copy."""
    for name, value in env.items():
        for mount_path, local in mounts.items():
            if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
                env[name] = str(local / value[len(mount_path) :].lstrip("/"))
    return env


# ---- Knative (rendered manifests) ----


def knative_env(
    docs: list[dict[str, Any]] | tuple[dict[str, Any], ...],
    workload: str,
    root: Path,
    *,
    rewrite_paths: bool = True,
) -> dict[str, str]:
    """Environment of the one container of a Knative Service or Deployment, Secrets and ConfigMaps resolved.

    Secret and ConfigMap volumes are written under ``root`` (at ``root/<mountPath>``) and, with
    ``rewrite_paths``, paths into them rewritten; without, the values stay as deployed (for a
    container that gets the folders mounted where the manifest says).
    A reference to a missing Secret, ConfigMap or key raises KeyError, as the kubelet would refuse.
    """
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    owner = next(
        d
        for d in docs
        if d["metadata"]["name"] == workload
        and d["kind"] in ("Service", "Deployment")
        and "template" in d["spec"]
    )
    pod = owner["spec"]["template"]["spec"]
    (container,) = pod["containers"]

    def secret(name: str) -> dict[str, str]:
        data = by_kind[("Secret", name)].get("data", {})
        return {k: base64.b64decode(v).decode() for k, v in data.items()}

    def config_map(name: str) -> dict[str, str]:
        return dict(by_kind[("ConfigMap", name)].get("data", {}))

    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_map(source["configMapRef"]["name"]))
        if "secretRef" in source:
            env.update(secret(source["secretRef"]["name"]))
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        ref = item["valueFrom"]
        if "secretKeyRef" in ref:
            env[item["name"]] = secret(ref["secretKeyRef"]["name"])[ref["secretKeyRef"]["key"]]
        elif "configMapKeyRef" in ref:
            env[item["name"]] = config_map(ref["configMapKeyRef"]["name"])[ref["configMapKeyRef"]["key"]]
        else:  # fieldRef and the like: the platform's own values
            env[item["name"]] = f"<{next(iter(ref))}>"
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts: dict[str, Path] = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        files = secret(volume["secret"]["secretName"]) if "secret" in volume else None
        if "configMap" in volume:
            files = config_map(volume["configMap"]["name"])
        if files is None:
            continue
        local = _mount(root, mount["mountPath"])
        local.mkdir(parents=True, exist_ok=True)
        for key, text in files.items():
            (local / key).write_text(text)
        mounts[mount["mountPath"]] = local
    return _rewrite_paths(env, mounts) if rewrite_paths else env


# ---- Cloud Run (terraform/, read with python-hcl2 and normalised by hcl.norm) ----

_WHOLE = re.compile(r"^\$\{(.*)\}$", re.S)


def _split_top(expr: str, seps: str) -> list[str]:
    """Split at separator characters outside quotes, brackets and braces."""
    parts, depth, quote, start, i = [], 0, False, 0, 0
    while i < len(expr):
        char = expr[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == '"':
                quote = False
        elif char == '"':
            quote = True
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0 and char in seps:
            parts.append(expr[start:i])
            parts.append(char)
            start = i + 1
        i += 1
    parts.append(expr[start:])
    return parts


class Hcl:
    """The few expression forms the services use, with variables given and resources as placeholders.

    Forms: string templates, ``var.X``, ``local.X`` (and ``local.X.key`` of a map), ``c ? a : b``,
    ``a == b`` / ``a != b``, ``trimspace(x)``, ``join(sep, list)``, ``null``, literals. Any other reference (a
    resource's or data source's attribute) evaluates to a placeholder name, which is
    all a container setting needs from it here.
    """

    def __init__(self, variables: Mapping[str, Any], locals_: Mapping[str, Any]) -> None:
        self.variables, self.locals = variables, locals_

    def value(self, raw: Any) -> Any:
        if isinstance(raw, dict):
            return {k: self.value(v) for k, v in raw.items()}
        if isinstance(raw, list):
            return [self.value(v) for v in raw]
        if not isinstance(raw, str):
            return raw
        whole = _WHOLE.match(raw)
        if whole and "${" not in whole.group(1):
            return self.expr(whole.group(1))
        return self._template(raw)

    def _template(self, text: str) -> str:
        out, i = "", 0
        while (start := text.find("${", i)) >= 0:
            out += text[i:start]
            depth, j = 0, start + 2
            while not (text[j] == "}" and depth == 0):
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            found = self.expr(text[start + 2 : j])
            out += "" if found is None else str(found)
            i = j + 1
        return out + text[i:]

    def expr(self, expr: str) -> Any:
        expr = expr.strip()
        parts = _split_top(expr, "?:")
        if len(parts) == 5 and parts[1] == "?" and parts[3] == ":":
            return self.expr(parts[2]) if self.expr(parts[0]) else self.expr(parts[4])
        for op in ("!=", "=="):
            pieces = _split_top(expr.replace(op, "\0"), "\0")
            if len(pieces) == 3:
                equal = self.expr(pieces[0]) == self.expr(pieces[2])
                return equal if op == "==" else not equal
        if expr.startswith("{") and expr.endswith("}"):  # a map literal, as python-hcl2 writes it
            items = [i for i in _split_top(expr[1:-1], ",")[::2] if i.strip()]
            pairs = [_split_top(i.replace("=", "\0", 1), "\0") for i in items]
            return {p[0].strip().strip('"'): self.expr(p[2]) for p in pairs}
        if expr.startswith('"') and expr.endswith('"'):
            return self._template(expr[1:-1].encode().decode("unicode_escape"))
        if expr in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[expr]
        if re.fullmatch(r"-?\d+", expr):
            return int(expr)
        if call := re.fullmatch(r"(\w+)\((.*)\)", expr, re.S):
            args = [self.expr(a) for a in _split_top(call.group(2), ",")[::2]]
            if call.group(1) == "trimspace":
                return str(args[0]).strip()
            if call.group(1) == "join":
                return str(args[0]).join(args[1])
            raise ValueError(f"function not known here: {expr!r}")
        if ref := re.fullmatch(r"var\.(\w+)", expr):
            return self.variables[ref.group(1)]
        if ref := re.fullmatch(r"local\.(\w+)((?:\.\w+)*)", expr):
            found = self.value(self.locals[ref.group(1)])
            for key in filter(None, ref.group(2).split(".")):  # local.images.webapp: a key of a map
                found = found[key]
            return found
        if re.fullmatch(r"[a-z_][a-z0-9_]*(\.[\w\[\]]+)+", expr):
            return re.sub(r"[^a-z0-9]+", "-", expr.lower()).strip("-")
        raise ValueError(f"expression form not understood: {expr!r}")


def cloud_run_env(
    service: Mapping[str, Any],
    hcl: Hcl,
    secret_versions: Mapping[str, Mapping[str, Any]],
    root: Path,
    *,
    rewrite_paths: bool = True,
) -> dict[str, str]:
    """Environment of a Cloud Run v2 service's one container: plain, ``dynamic "env"`` and secret values.

    Secret volumes are written under ``root`` as in ``knative_env``, ``rewrite_paths`` likewise.

    ``secret_versions`` are the ``google_secret_manager_secret_version`` bodies by name; a
    secret is found by the ``google_secret_manager_secret.NAME`` its reference names, and
    its ``latest`` version's ``secret_data`` is what the container reads (env or file).
    """

    def secret_data(reference: str) -> str:
        found = re.search(r"google_secret_manager_secret\.(\w+)\.", reference)
        assert found, f"secret reference {reference!r} names no Secret Manager secret declared here"
        return str(hcl.value(secret_versions[found.group(1)]["secret_data"]))

    (template,) = service["template"]
    (container,) = template["containers"]
    env: dict[str, str] = {}
    for dynamic in container.get("dynamic", []):
        if "env" in dynamic:
            env.update(_merged(dynamic["env"]["for_each"], hcl))
    for block in container.get("env", []):
        if "value" in block:
            env[hcl.value(block["name"])] = str(hcl.value(block["value"]))
        else:
            (source,) = block["value_source"]
            (ref,) = source["secret_key_ref"]
            env[hcl.value(block["name"])] = secret_data(ref["secret"])
    volumes = {v["name"]: v for v in template.get("volumes", [])}
    mounts: dict[str, Path] = {}
    for mount in container.get("volume_mounts", []):
        (secret,) = volumes[mount["name"]]["secret"]
        local = _mount(root, str(hcl.value(mount["mount_path"])))
        local.mkdir(parents=True, exist_ok=True)
        for item in secret.get("items", []):
            (local / str(hcl.value(item["path"]))).write_text(secret_data(secret["secret"]))
        mounts[str(hcl.value(mount["mount_path"]))] = local
    return _rewrite_paths(env, mounts) if rewrite_paths else env


def terraform_config(directory: Path) -> dict[str, Any]:
    """Resources by (type, name), locals and variable defaults of a Terraform module's *.tf files."""
    import hcl2

    from tests.support.hcl import norm

    resources: dict[tuple[str, str], Any] = {}
    locals_: dict[str, Any] = {}
    variables: dict[str, Any] = {}
    for path in sorted(directory.glob("*.tf")):
        with path.open() as handle:
            doc = norm(hcl2.load(handle))
        for block in doc.get("resource", []):
            for rtype, named in block.items():
                resources.update({(rtype, name): body for name, body in named.items()})
        for block in doc.get("locals", []):
            locals_.update(block)
        for block in doc.get("variable", []):
            variables.update({name: body.get("default") for name, body in block.items()})
    return {"resources": resources, "locals": locals_, "variables": variables}


def _merged(for_each: str, hcl: Hcl) -> dict[str, str]:
    """``merge(local.a, local.b, ...)`` or one ``local.a`` of string maps, evaluated."""
    expr = _WHOLE.match(for_each)
    assert expr, for_each
    text = expr.group(1).strip()
    inner = text[len("merge(") : -1] if text.startswith("merge(") else text
    merged: dict[str, str] = {}
    for part in _split_top(inner, ",")[::2]:
        value = hcl.expr(part)
        assert isinstance(value, dict), f"{part} in {for_each} is not a map"
        merged.update({k: "" if v is None else str(v) for k, v in value.items()})
    return merged
