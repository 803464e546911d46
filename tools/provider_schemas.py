"""Check every Terraform block and argument against the pinned providers' schemas.

`terraform validate` needs the providers, which cannot be downloaded here. The
prebuilt CDKTF bindings on npm are generated from each provider's schema: for
every resource, data source and the provider itself, `synthesizeHclAttributes`
lists each argument and whether it is a nested block (and which function
renders that block). This extracts that tree once per pinned provider version
(cached), then walks terraform/*.tf: any argument or block a provider does not
have is an error, as `terraform validate` would report it.

    python tools/provider_schemas.py --cache DIR terraform terraform/gke/cluster terraform/gke/knative
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Provider source -> (npm package, package version, provider version it was generated from).
PINNED: dict[str, tuple[str, str, str]] = {
    "hashicorp/google": ("@cdktf/provider-google", "16.12.1", "6.50.0"),
    "hashicorp/google-beta": ("@cdktf/provider-google-beta", "16.12.1", "6.50.0"),
    "hashicorp/aws": ("@cdktf/provider-aws", "19.65.1", "5.99.1"),
    "hashicorp/random": ("@cdktf/provider-random", "12.0.1", "3.7.2"),
    "hashicorp/http": ("@cdktf/provider-http", "10.0.1", "3.5.0"),
}
# No prebuilt bindings exist for these: their blocks are left to `terraform validate`.
UNCHECKED = {"alekc/kubectl": "no prebuilt CDKTF bindings on npm"}
META = {"count", "for_each", "provider", "depends_on", "lifecycle", "provisioner", "connection"}
BUILTIN = {"terraform_data", "null_resource"}

_FUNC = re.compile(r"^function (\w+)ToHclTerraform\(struct\) \{(.*?)^\}", re.MULTILINE | re.DOTALL)
_SYNTH = re.compile(r"synthesizeHclAttributes\(\) \{(.*?)^    \}", re.MULTILINE | re.DOTALL)
_ENTRY = re.compile(
    r"^\s{8,16}([a-z0-9_]+): \{\s*value: (.*?),\s*isBlock: (true|false),", re.MULTILINE | re.DOTALL
)
_TYPE = re.compile(r'^\w+\.tfResourceType = "([a-z0-9_-]+)";', re.MULTILINE)


def _entries(body: str) -> dict[str, str | None]:
    """argument -> None, block -> name of the function rendering it."""
    found: dict[str, str | None] = {}
    for name, value, is_block in _ENTRY.findall(body):
        nested = re.search(r"(\w+)ToHclTerraform", value) if is_block == "true" else None
        found[name] = nested.group(1) if nested else None
    return found


def _tree(entries: dict[str, str | None], functions: dict[str, dict[str, str | None]], depth: int = 0) -> Any:
    if depth > 12:
        return {}
    return {
        name: None if fn is None else _tree(functions.get(fn, {}), functions, depth + 1)
        for name, fn in entries.items()
    }


def extract(tarball: Path) -> dict[str, Any]:
    """{"provider": tree, "resource": {type: tree}, "data": {type: tree}} from a CDKTF package.

    Large resources keep their nested-block functions in lib/<name>/index-structs/*.js,
    so every .js file of a resource's folder is read.
    """
    sources: dict[str, list[str]] = {}
    with tarfile.open(tarball) as archive:
        for member in archive:
            match = re.fullmatch(r"package/lib/([a-z0-9-]+)/(?:[\w-]+/)*[\w-]+\.js", member.name)
            handle = archive.extractfile(member) if match else None
            if match and handle is not None:
                sources.setdefault(match.group(1), []).append(handle.read().decode())
    schema: dict[str, Any] = {"provider": {}, "resource": {}, "data": {}}
    for folder, texts in sources.items():
        joined = "\n".join(texts)
        synth, rtype = _SYNTH.search(joined), _TYPE.search(joined)
        if not synth or not rtype:
            continue
        functions = {name: _entries(body) for name, body in _FUNC.findall(joined)}
        tree = _tree(_entries(synth.group(1)), functions)
        if folder == "provider":
            schema["provider"] = tree
        elif folder.startswith("data-"):
            schema["data"][rtype.group(1)] = tree
        else:
            schema["resource"][rtype.group(1)] = tree
    return schema


def load(source: str, cache: Path) -> dict[str, Any]:
    package, version, provider_version = PINNED[source]
    cached = cache / f"{source.replace('/', '_')}-{provider_version}.json"
    if not cached.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        tgz = cache / f"{package.strip('@').replace('/', '-')}-{version}.tgz"
        if not tgz.is_file():
            subprocess.run(
                ["npm", "pack", "--silent", f"{package}@{version}", "--pack-destination", str(cache)],
                check=True,
                stdout=subprocess.DEVNULL,
                timeout=600,
            )
        cached.write_text(json.dumps(extract(tgz)))
        tgz.unlink()
    data: dict[str, Any] = json.loads(cached.read_text())
    return data


def _blocks(value: Any) -> Iterator[dict[str, Any]]:
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, dict):
            yield item


def check_body(body: dict[str, Any], tree: dict[str, Any], where: str) -> Iterator[str]:
    for key, value in body.items():
        if key.startswith("__") or key in META:
            continue
        if key == "dynamic":
            for block in _blocks(value):
                for name, spec in block.items():
                    if name not in tree or tree[name] is None:
                        yield f"{where}: dynamic {name!r} is not a block here"
                        continue
                    for content in _blocks(spec.get("content", [])):
                        yield from check_body(content, tree[name], f"{where}.{name}")
            continue
        if key not in tree:
            yield f"{where}: unsupported argument or block {key!r}"
        elif tree[key] is not None:
            for block in _blocks(value):
                yield from check_body(block, tree[key], f"{where}.{key}")


def check_module(directory: Path, cache: Path) -> list[str]:
    import hcl2

    docs = {path: hcl2.load(path.open()) for path in sorted(directory.glob("*.tf"))}
    local_names: dict[str, str] = {}
    for doc in docs.values():
        for block in _blocks(doc.get("terraform", [])):
            for providers in _blocks(block.get("required_providers", [])):
                for name, spec in providers.items():
                    for item in _blocks(spec):
                        source = str(item.get("source", ""))
                        local_names[name] = (source[0] if isinstance(source, list) else source).strip('"')
    schemas = {name: load(src, cache) for name, src in local_names.items() if src in PINNED}
    found = []
    for path, doc in docs.items():
        for kind in ("resource", "data"):
            for block in _blocks(doc.get(kind, [])):
                for rtype, named in block.items():
                    if rtype in BUILTIN:
                        continue
                    provider = rtype.split("_", 1)[0]
                    for name, body in named.items():
                        chosen = str(body.get("provider", [provider])).strip("[]'\"${}")
                        local = chosen if chosen in local_names else provider
                        if local_names.get(local) in UNCHECKED:
                            continue
                        tree = schemas.get(local, {}).get(kind, {}).get(rtype)
                        if tree is None:
                            found.append(
                                f"{path.name}: {kind} {rtype!r} does not exist in {local_names.get(local)}"
                            )
                            continue
                        found += check_body(body, tree, f"{path.name}: {kind}.{rtype}.{name}")
        for block in _blocks(doc.get("provider", [])):
            for name, body in block.items():
                if local_names.get(name) in UNCHECKED or name not in schemas:
                    continue
                for item in _blocks(body):
                    found += check_body(item, schemas[name]["provider"], f"{path.name}: provider.{name}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True, help="where extracted schemas are kept")
    parser.add_argument("modules", nargs="+", type=Path)
    opts = parser.parse_args(argv)
    found = []
    for module in opts.modules:
        found += [f"{module}/{line}" for line in check_module(module, opts.cache)]
    sys.stderr.writelines(f"{line}\n" for line in found)
    unchecked = ", ".join(f"{k} ({v})" for k, v in UNCHECKED.items())
    sys.stdout.write(f"{len(opts.modules)} modules checked against {len(PINNED)} provider schemas")
    sys.stdout.write(f" ({unchecked} not checked): {len(found)} problems\n")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
