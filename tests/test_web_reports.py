"""Report downloads from the web app, for a slide the real pipeline and model have just classified.

The images are dropped straight into a folder of the upload bucket, as a lab would
drop a slide's folder; the worker of tests/test_web_user.py runs preprocess and
predict on them, so every count in the downloads comes from the shipped model.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle
from nicegui.testing import User

from bloodcell.settings import Settings
from bloodcell.web.report_routes import report_url
from tests.test_web_user import PipelineWorker

pytestmark = [pytest.mark.anyio, pytest.mark.nicegui_main_file("webapp/main.py")]
SLIDE = "lame-été-3"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def worker(settings: Settings) -> Iterator[PipelineWorker]:
    worker = PipelineWorker(settings)
    worker.thread.start()
    yield worker
    worker.stop.set()
    worker.thread.join(timeout=30)
    if worker.failures:
        raise worker.failures[0]


@pytest.fixture
def slide(worker: PipelineWorker, settings: Settings, datasets: Path) -> list[str]:
    simple = datasets / "kaggle-blood-cells" / "TEST_SIMPLE"
    names = []
    for folder in ("NEUTROPHIL", "LYMPHOCYTE", "MONOCYTE", "EOSINOPHIL"):
        for path in sorted((simple / folder).glob("*.jpeg"))[:2]:
            name = f"{SLIDE}/{folder.lower()}-{path.stem}.jpeg"
            worker.storage.write(settings.upload_bucket, name, path.read_bytes(), content_type="image/jpeg")
            names.append(name)
    return names


async def classified(worker: PipelineWorker, names: list[str]) -> list[dict[str, object]]:
    for _ in range(1200):
        done = [n for n in names if worker.storage.stat(worker.settings.result_bucket, n + ".json")]
        if len(done) == len(names):
            return [worker.result(n) for n in names]
        await asyncio.sleep(0.05)
    raise AssertionError("the pipeline did not finish the slide")


async def test_downloads_match_what_the_model_said(
    worker: PipelineWorker, slide: list[str], user: User
) -> None:
    results = await classified(worker, slide)
    counted = Counter(r["label"] for r in results if r["status"] == "classified" and not r["uncertain"])

    response = await user.http_client.get(report_url(SLIDE, "fhir"), params={"wbc": "6.0"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert (
        "filename*=UTF-8''bloodcell-lame-%C3%A9t%C3%A9-3.fhir.json" in response.headers["content-disposition"]
    )
    bundle = response.json()
    Bundle.model_validate(bundle)
    observations = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    percents = {o["code"]["coding"][0]["code"]: o["valueQuantity"]["value"] for o in observations}
    total = sum(counted.values())
    assert percents["26511-6"] == round(100 * counted["NEUTROPHIL"] / total, 1)
    assert percents["26478-8"] == round(100 * counted["LYMPHOCYTE"] / total, 1)
    model = results[0]["model"]
    assert isinstance(model, dict)
    assert model["version"] in observations[0]["method"]["text"]

    pdf = await user.http_client.get(report_url(SLIDE, "pdf"))
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    cells = await user.http_client.get(report_url(SLIDE, "csv"))
    rows = list(csv.DictReader(io.StringIO(cells.text)))
    assert [r["name"] for r in rows] == sorted(slide)
    summary = await user.http_client.get(report_url(SLIDE, "summary"))
    assert {r["label"]: int(r["count"]) for r in csv.DictReader(io.StringIO(summary.text))} == {
        label: counted[label] for label in ("NEUTROPHIL", "LYMPHOCYTE", "MONOCYTE", "EOSINOPHIL")
    }


async def test_bad_requests_are_answered_plainly(
    worker: PipelineWorker, slide: list[str], user: User
) -> None:
    missing = await user.http_client.get(report_url("no-such-slide", "pdf"))
    assert missing.status_code == 404 and "has no uploads" in missing.text
    bad_wbc = await user.http_client.get(report_url(SLIDE, "fhir"), params={"wbc": "0"})
    assert bad_wbc.status_code == 400 and "white-cell count" in bad_wbc.text
    escape = await user.http_client.get("/slides/..%2F..%2Fetc/report.fhir.json")
    assert escape.status_code in (400, 404)
    assert json.loads((await user.http_client.get(report_url(SLIDE, "fhir"))).text)["type"] == "collection"
