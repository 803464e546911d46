"""tools/provider_schemas.py's logic on a package shaped like a CDKTF binding
(the real ones are fetched from npm by `nox -s infra`), and on real HCL."""

from __future__ import annotations

import importlib.util
import io
import tarfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
pytest.importorskip("hcl2", reason="python-hcl2 reads the HCL")

RESOURCE_JS = """
function thingProbeToHclTerraform(struct) {
    const attrs = {
        port: {
            value: cdktf.numberToHclTerraform(struct.port),
            isBlock: false,
            type: "simple",
        },
    };
}
class Thing extends cdktf.TerraformResource {
    synthesizeHclAttributes() {
        const attrs = {
            name: {
                value: cdktf.stringToHclTerraform(this._name),
                isBlock: false,
                type: "simple",
            },
            labels: {
                value: cdktf.hashMapperHcl(cdktf.stringToHclTerraform)(this._labels),
                isBlock: false,
                type: "map",
            },
            probe: {
                value: thingProbeToHclTerraform(this._probe.internalValue),
                isBlock: true,
                type: "list",
            },
        };
    }
}
Thing.tfResourceType = "demo_thing";
"""


def _tool() -> Any:
    spec = importlib.util.spec_from_file_location("provider_schemas", REPO / "tools" / "provider_schemas.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _package(tmp_path: Path) -> Path:
    tgz = tmp_path / "demo.tgz"
    with tarfile.open(tgz, "w:gz") as archive:
        data = RESOURCE_JS.encode()
        info = tarfile.TarInfo("package/lib/thing/index.js")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return tgz


def test_extract_reads_arguments_and_nested_blocks(tmp_path: Path) -> None:
    # Act
    schema = _tool().extract(_package(tmp_path))

    # Assert
    assert schema["resource"] == {"demo_thing": {"name": None, "labels": None, "probe": {"port": None}}}


def test_check_body_reports_unknown_arguments_and_blocks_but_not_map_values(tmp_path: Path) -> None:
    # Arrange
    tree = _tool().extract(_package(tmp_path))["resource"]["demo_thing"]
    body = {
        "name": "x",
        "labels": {"anything": "goes"},
        "probe": [{"port": 1, "prot": 2}],
        "dynamic": [{"probe": {"content": [{"portt": 3}]}}],
        "typo": 1,
        "count": 1,
    }

    # Act
    found = list(_tool().check_body(body, tree, "t"))

    # Assert
    assert sorted(found) == sorted(
        [
            "t.probe: unsupported argument or block 'prot'",
            "t.probe: unsupported argument or block 'portt'",
            "t: unsupported argument or block 'typo'",
        ]
    )
