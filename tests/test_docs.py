"""The README is the front door: it must stay true to the code and to CI."""

from __future__ import annotations

import re

from bloodcell.results import SCHEMA_VERSION
from bloodcell.settings import ENV_VARS, Settings, markdown_table
from tests.support.common import REPO

README = (REPO / "README.md").read_text()


def test_configuration_table_lists_exactly_the_variables_the_code_reads() -> None:
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", README, flags=re.MULTILINE))

    assert documented == set(ENV_VARS)


def test_configuration_table_is_the_one_generated_from_the_declarations() -> None:
    assert markdown_table() in README


def test_documented_defaults_match_the_settings_defaults() -> None:
    rows = dict(re.findall(r"^\| `([A-Z0-9_]+)` \| `([^`]+)` \|", README, flags=re.MULTILINE))
    defaults = Settings.from_env({})

    assert rows["UPLOAD_BUCKET"] == defaults.upload_bucket
    assert rows["TENSOR_BUCKET"] == defaults.tensor_bucket
    assert rows["RESULT_BUCKET"] == defaults.result_bucket
    assert int(rows["MAX_UPLOAD_BYTES"]) == defaults.max_upload_bytes
    assert int(rows["MAX_IMAGE_PIXELS"]) == defaults.max_image_pixels
    assert int(rows["EVENT_SOURCE_MAX_ATTEMPTS"]) == defaults.event_source_max_attempts
    assert rows["DEAD_LETTER_BUCKET"] == defaults.dead_letter_bucket
    assert int(rows["EVENT_SOURCE_CONCURRENCY"]) == defaults.event_source_concurrency


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text()

    assert "nox -s tests" in README and "nox -s serve" in README and "pip install nox" in README
    assert re.search(r"^nox -s tests\b", ci, flags=re.MULTILINE)


def test_readme_documents_the_current_result_schema_version() -> None:
    assert f"## Result schema (version {SCHEMA_VERSION})" in README
    assert f'"schema_version": "{SCHEMA_VERSION}"' in README
