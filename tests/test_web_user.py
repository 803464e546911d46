"""The web app through NiceGUI's simulated user, with the real pipeline processing its uploads.

The app is started from ``webapp/main.py`` exactly as deployed. A worker thread
plays the role of the event source and both functions: it runs
``Pipeline.preprocess`` and ``Pipeline.predict`` on whatever lands in the upload
bucket, so every result the page shows was produced by the real model. The worker
can hold back the predict step, which lets the tests see the intermediate stages.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nicegui import ElementFilter, ui
from nicegui.testing import User

from bloodcell import names
from bloodcell import settings as settings_module
from bloodcell.events import ObjectRef
from bloodcell.formats import content_type
from bloodcell.pipeline import Pipeline
from bloodcell.settings import Settings
from bloodcell.slides.vocabulary import REPORT_ORDER, label_words
from bloodcell.storage import LocalStorage
from bloodcell.web import batch

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.anyio, pytest.mark.nicegui_main_file("webapp/main.py")]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The trained model when it exists; otherwise BLOODCELL_TEST_MODEL_DIR or the provisional one."""
    shipped = REPO / "functions" / "predict" / "model"
    if (shipped / "model.tflite").is_file():
        return shipped
    for candidate in (os.environ.get("BLOODCELL_TEST_MODEL_DIR"), "/tmp/provmodel"):
        if candidate and (Path(candidate) / "model.tflite").is_file():
            return Path(candidate)
    pytest.skip("no model: functions/predict/model/model.tflite is missing")


class PipelineWorker:
    """Stands in for the event source and the two functions, in one background thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.storage = LocalStorage(settings.data_dir)
        self.pipeline = Pipeline(settings, self.storage)
        self.predict_allowed = threading.Event()
        self.predict_allowed.set()
        self.stop = threading.Event()
        self.seen: set[tuple[str, str]] = set()
        self.tensors: list[str] = []
        self.failures: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name="test-pipeline", daemon=True)

    def _run(self) -> None:
        try:
            while not self.stop.wait(0.05):
                self.step()
        except BaseException as exc:  # surfaced by the fixture
            self.failures.append(exc)

    def step(self) -> None:
        for info in list(self.storage.list(self.settings.upload_bucket)):
            if (info.name, info.generation) in self.seen:
                continue
            self.seen.add((info.name, info.generation))
            outcome = self.pipeline.preprocess(ObjectRef(info.bucket, info.name, info.generation))
            if outcome.status == "preprocessed":
                self.tensors.append(names.tensor_name(info.name))
        while self.predict_allowed.is_set() and self.tensors:
            self.pipeline.predict(ObjectRef(self.settings.tensor_bucket, self.tensors.pop(0)))

    def result(self, upload_name: str) -> dict[str, Any]:
        data, _ = self.storage.read(self.settings.result_bucket, names.result_name(upload_name))
        return dict(json.loads(data))

    def web_results(self) -> dict[str, dict[str, Any]]:
        """Every result of an upload the web app made, by the name the person gave the file."""
        found = {}
        for info in self.storage.list(self.settings.result_bucket, prefix=batch.UPLOAD_PREFIX):
            result = json.loads(self.storage.read(info.bucket, info.name)[0])
            found[batch.display_name(result["source"]["name"])] = result
        return found


@pytest.fixture
def worker(settings: Settings) -> Iterator[PipelineWorker]:
    worker = PipelineWorker(settings)
    worker.thread.start()
    yield worker
    worker.predict_allowed.set()
    worker.stop.set()
    worker.thread.join(timeout=30)
    if worker.failures:
        raise worker.failures[0]


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """ERROR (or worse) log lines so far; every test asserts there are none."""
    caplog.set_level(logging.INFO)
    return lambda: [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.fixture(scope="session")
def images(datasets: Path) -> dict[str, bytes]:
    simple = datasets / "kaggle-blood-cells" / "TEST_SIMPLE"
    picks = {
        "neutrophil.jpeg": next(iter(sorted((simple / "NEUTROPHIL").glob("*.jpeg")))),
        "lymphocyte.jpeg": next(iter(sorted((simple / "LYMPHOCYTE").glob("*.jpeg")))),
        "eosinophil.jpeg": next(iter(sorted((simple / "EOSINOPHIL").glob("*.jpeg")))),
        "monocyte.jpeg": next(iter(sorted((simple / "MONOCYTE").glob("*.jpeg")))),
        "BloodImage_00001.jpg": datasets / "bccd" / "JPEGImages" / "BloodImage_00001.jpg",
    }
    return {name: path.read_bytes() for name, path in picks.items()}


NOT_AN_IMAGE = b"Patient notes, definitely not a picture.\n"


async def upload(user: User, files: dict[str, bytes]) -> None:
    uploader = user.find(ui.upload).elements.pop()
    await uploader.handle_uploads(
        [ui.upload.SmallFileUpload(name, content_type(name), data) for name, data in files.items()]
    )


def texts(user: User, marker: str) -> list[str]:
    assert user.client is not None
    with user.client:
        return [str(getattr(e, "text", "")) for e in ElementFilter(marker=marker, local_scope=False)]


def count(user: User, marker: str) -> int:
    assert user.client is not None
    with user.client:
        return len(list(ElementFilter(marker=marker, local_scope=False)))


async def eventually(check: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    """Await a condition while the app's timers keep running; no fixed sleeps."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_several_uploads_show_progress_then_results(
    worker: PipelineWorker, user: User, images: dict[str, bytes], errors: Callable[[], list[str]]
) -> None:
    files = {name: images[name] for name in ("neutrophil.jpeg", "lymphocyte.jpeg", "BloodImage_00001.jpg")}
    worker.predict_allowed.clear()  # hold results back to see the intermediate stages
    await user.open("/")
    await user.should_see("No images yet.")
    await upload(user, files)
    await user.should_see(content="of 3 chosen finished")
    await eventually(lambda: count(user, "stage-preprocessed") == 3, what="three preprocessed files")
    assert texts(user, "progress") == ["0 of 3 chosen finished"]

    worker.predict_allowed.set()
    await eventually(lambda: count(user, "stage-classified") == 3, what="three classified files")
    await user.should_see("3 of 3 chosen finished")
    stored = worker.web_results()
    assert set(stored) == set(files)
    for name, result in stored.items():
        with user.scope(marker=f"file-{name}"):
            await user.should_see(label_words(result["label"]))
            await user.should_see(f"{100 * result['confidence']:.0f} % confidence")
            await user.should_see(content=f"model {result['model']['name']} {result['model']['version']}")
            await user.should_see(content="ms processing")
            await user.should_see(kind=ui.echart)
            if result["uncertain"]:
                await user.should_see("Uncertain")
                await user.should_see(content="not counted in the differential")
            else:
                await user.should_not_see("Uncertain")
    # the stored object names are the app's own, never the browser's file names
    assert all(result["source"]["name"].startswith("web/") for result in stored.values())
    thumb = await user.http_client.get("/thumb/" + next(iter(stored.values()))["source"]["name"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"

    # an accidental reload keeps the batch: the tab remembers the names, the buckets the rest
    await user.open("/")
    await eventually(lambda: count(user, "stage-classified") == 3, what="the batch after a reload")
    await user.should_see("3 of 3 chosen finished")
    assert errors() == []


async def test_rejected_and_refused_files_show_their_reason(
    worker: PipelineWorker, user: User, images: dict[str, bytes], errors: Callable[[], list[str]]
) -> None:
    await user.open("/")
    await upload(user, {"notes.jpg": NOT_AN_IMAGE, "readme.txt": b"hello"})
    await eventually(lambda: count(user, "stage-rejected") == 1, what="the rejection")
    reason = worker.web_results()["notes.jpg"]["reason"]
    assert reason
    with user.scope(marker="file-notes.jpg"):
        await user.should_see(f"Rejected by preprocess: {reason}")
    with user.scope(marker="file-readme.txt"):
        await user.should_see(content="Not uploaded: not an accepted image type")
    assert not any("readme" in name for name, _ in worker.seen)

    # the app keeps working after a bad file
    await upload(user, {"monocyte.jpeg": images["monocyte.jpeg"]})
    await eventually(lambda: count(user, "stage-classified") == 1, what="the next image's result")
    await user.should_see("3 of 3 chosen finished")

    user.find("Start a new batch").click()
    await user.should_see("No images yet.")
    await user.open("/")
    await user.should_see("No images yet.")
    assert errors() == []


async def test_batch_report_and_csv_match_the_results(
    worker: PipelineWorker, user: User, images: dict[str, bytes], errors: Callable[[], list[str]]
) -> None:
    await user.open("/")
    await upload(user, {**images, "notes.jpg": NOT_AN_IMAGE})
    await eventually(lambda: texts(user, "progress") == ["6 of 6 chosen finished"], what="the whole batch")
    stored = worker.web_results()
    assert len(stored) == 6

    confident = [r for r in stored.values() if r["status"] == "classified" and not r["uncertain"]]
    uncertain = [r for r in stored.values() if r["status"] == "classified" and r["uncertain"]]
    for label in REPORT_ORDER:
        expected = sum(1 for r in confident if r["label"] == label)
        assert texts(user, f"count-{label}") == [str(expected)]
        percent = f"{100 * expected / len(confident):.1f} %" if confident else "–"
        assert texts(user, f"percent-{label}") == [percent]
    assert texts(user, "tally-counted") == [f"{len(confident)} counted"]
    assert texts(user, "tally-uncertain") == [f"{len(uncertain)} uncertain (not counted)"]
    assert texts(user, "tally-rejected") == ["1 rejected"]
    await user.should_see(content="Research tool, not a diagnosis")

    user.find("Download CSV").click()
    response = await user.download.next(timeout=5)
    rows = {row["file_name"]: row for row in csv.DictReader(io.StringIO(response.text))}
    assert set(rows) == set(stored)
    for name, result in stored.items():
        row = rows[name]
        assert row["status"] == result["status"]
        assert row["object_name"] == result["source"]["name"]
        if result["status"] == "classified":
            assert row["model_label"] == result["label"]
            assert float(row["confidence"]) == pytest.approx(result["confidence"], abs=1e-4)
            assert row["uncertain"] == str(result["uncertain"]).lower()
            for label, probability in result["probabilities"].items():
                assert float(row[f"p_{label.lower()}"]) == pytest.approx(probability, abs=1e-4)
        else:
            assert row["reason"] == result["reason"] and row["model_label"] == ""
    assert errors() == []


@pytest.fixture
def short_timeout(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESULT_TIMEOUT_SECONDS", "1")
    settings_module.get_settings.cache_clear()


async def test_a_missing_result_times_out_plainly_then_still_arrives(
    short_timeout: None,
    worker: PipelineWorker,
    user: User,
    images: dict[str, bytes],
    errors: Callable[[], list[str]],
) -> None:
    worker.predict_allowed.clear()
    await user.open("/")
    await upload(user, {"neutrophil.jpeg": images["neutrophil.jpeg"]})
    await eventually(lambda: count(user, "stage-timed-out") == 1, what="the timeout message")
    await user.should_see(content="no result after 1 s")
    worker.predict_allowed.set()
    await eventually(lambda: count(user, "stage-classified") == 1, what="the late result")
    assert errors() == []


async def test_history_lists_earlier_results_newest_first(
    worker: PipelineWorker,
    user: User,
    images: dict[str, bytes],
    settings: Settings,
    errors: Callable[[], list[str]],
) -> None:
    storage = worker.storage

    def has_result(name: str) -> Callable[[], bool]:
        return lambda: storage.stat(settings.result_bucket, names.result_name(name)) is not None

    # a page of older results first, then three dropped straight into the bucket, one after another
    older = [f"older/{index:02d}.jpg" for index in range(21)]
    for name in older:
        storage.write(settings.upload_bucket, name, images["neutrophil.jpeg"])
    for name in older:
        await eventually(has_result(name), what=f"the result of {name}")
    for name in ("by-hand/lymphocyte.jpeg", "by-hand/eosinophil.jpeg", "by-hand/notes.jpg"):
        data = NOT_AN_IMAGE if name.endswith("notes.jpg") else images[name.rsplit("/", 1)[1]]
        storage.write(settings.upload_bucket, name, data)
        await eventually(has_result(name), what=f"the result of {name}")

    await user.open("/history")
    await user.should_see("History")
    await user.should_see(content="24 results · page 1 of 2")
    shown = texts(user, "history-name")
    assert shown[:3] == ["by-hand / notes.jpg", "by-hand / eosinophil.jpeg", "by-hand / lymphocyte.jpeg"]
    assert len(shown) == 20
    await user.should_see(content="Rejected: " + worker.result("by-hand/notes.jpg")["reason"])
    eosinophil = worker.result("by-hand/eosinophil.jpeg")
    await user.should_see(label_words(eosinophil["label"]))

    await user.open("/history?page=2")
    await user.should_see(content="page 2 of 2")
    assert len(texts(user, "history-name")) == 4
    assert errors() == []


async def test_model_page_reads_the_model_folder(
    settings: Settings, user: User, model_dir: Path, errors: Callable[[], list[str]]
) -> None:
    meta = json.loads((model_dir / "metadata.json").read_text())
    await user.open("/model")
    await user.should_see(meta["name"])
    await user.should_see(f"version {meta['version']}")
    await user.should_see(content="Neutrophil")
    if meta.get("metrics"):
        await user.should_not_see(content="holds no metrics")
    response = await user.http_client.get("/model-files/confusion_matrix.png")
    assert response.status_code == (200 if (model_dir / "confusion_matrix.png").is_file() else 404)
    assert errors() == []


@pytest.fixture
def evaluated_model(
    env: dict[str, str], tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A model folder shaped like training's output: metrics per evaluation set, a matrix picture, a card."""
    from PIL import Image

    folder = tmp_path / "evaluated-model"
    folder.mkdir()
    for name in ("labels.txt", "contract.json"):
        (folder / name).write_bytes((model_dir / name).read_bytes())
    recall = {"EOSINOPHIL": 0.91, "LYMPHOCYTE": 0.99, "MONOCYTE": 0.75, "NEUTROPHIL": 0.88}
    meta = {
        "name": "wbc-mobilenet",
        "version": "2.1.0",
        "uncertainty": {"min_top_probability": 0.6, "max_other_probability": 0.5},
        "metrics": {
            "Kaggle TEST": {
                "n": 2487,
                "accuracy": 0.8812,
                "macro_f1": 0.8791,
                "recall": recall,
                "confusion_matrix": [[1, 0], [0, 1]],
                "flag_rate": 0.05,
                "accuracy_unflagged": 0.9,
            },
            "BCCD fields": {
                "n": 70,
                "accuracy": 0.8,
                "macro_f1": 0.7,
                "recall": recall,
                "confusion_matrix": [[1]],
                "flag_rate": 0.1,
                "accuracy_unflagged": None,
            },
            "pbc/other val": {"n": 300, "flag_rate": 0.64, "flag_rate_by_type": {"platelet": 0.9}},
        },
        "speed": {"inference_ms_1_thread": 1.25},
    }
    (folder / "metadata.json").write_text(json.dumps(meta))
    Image.new("RGB", (40, 30), "white").save(folder / "confusion_matrix.png")
    (folder / "MODEL_CARD.md").write_text("# wbc-mobilenet\n\nIntended use: research only.\n")
    monkeypatch.setenv("MODEL_DIR", str(folder))
    settings_module.get_settings.cache_clear()
    return folder


async def test_model_page_renders_whatever_metrics_training_wrote(
    evaluated_model: Path, user: User, errors: Callable[[], list[str]]
) -> None:
    await user.open("/model")
    await user.should_see("wbc-mobilenet")
    await user.should_see("version 2.1.0")
    await user.should_see(content="below 60 %")
    await user.should_see(content="'other' output")
    tables = [table for table in user.find(ui.table).elements if "bc-metrics" in table.classes]
    rows = {row["set"]: row for table in tables for row in table.rows}
    assert set(rows) == {"Kaggle TEST", "BCCD fields", "pbc/other val", "speed"}
    headings = {column["label"] for table in tables for column in table.columns}
    assert {"accuracy", "macro f1", "recall · Monocyte", "flag rate by type · platelet"} <= headings
    assert "0.881" in rows["Kaggle TEST"].values() and "–" in rows["BCCD fields"].values()
    assert len(tables) == 3  # the two sets with the same figures share a table; speed has its own
    await user.should_see(kind=ui.image, marker=None)
    response = await user.http_client.get("/model-files/confusion_matrix.png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    await user.should_see(content="Intended use: research only.")
    assert errors() == []


async def test_model_page_shows_the_new_figures_beside_the_previous_versions(
    evaluated_model: Path, user: User, errors: Callable[[], list[str]]
) -> None:
    from PIL import Image

    meta = json.loads((evaluated_model / "metadata.json").read_text())
    meta["uncertainty"].update(temperature=1.4, views=["identity", "flip_horizontal"])
    meta["baseline"] = {
        "version": "1.0.0",
        "metrics": {"Kaggle TEST": {"accuracy": 0.8842, "flag_rate": 0.0113, "accuracy_unflagged": 0.889}},
    }
    (evaluated_model / "metadata.json").write_text(json.dumps(meta))
    Image.new("RGB", (40, 30), "white").save(evaluated_model / "calibration.png")

    await user.open("/model")

    await user.should_see(content="Version 2.1.0 beside 1.0.0")
    await user.should_see(content="temperature 1.400")
    table = next(t for t in user.find(ui.table).elements if "bc-comparison" in t.classes)
    row = table.rows[0]
    assert row["set"] == "Kaggle TEST"
    assert row["accuracy-1.0.0"] == "0.884" and row["accuracy-2.1.0"] == "0.881"
    assert (await user.http_client.get("/model-files/calibration.png")).status_code == 200
    assert (await user.http_client.get("/model-files/errors.png")).status_code == 404  # not drawn here
    assert (await user.http_client.get("/model-files/metadata.json")).status_code == 404  # not a figure
    assert errors() == []


async def test_history_lists_dead_letters(
    settings: Settings, user: User, errors: Callable[[], list[str]]
) -> None:
    """An event the local source gave up on is shown with its attempts and last error."""
    from datetime import UTC, datetime

    from bloodcell.deadletters import DeadLetters
    from bloodcell.storage import ObjectInfo

    storage = LocalStorage(settings.data_dir)
    info = ObjectInfo(settings.upload_bucket, "細胞 7.jpg", "g1", 10, datetime.now(UTC))
    letters = DeadLetters(storage, settings.dead_letter_bucket)
    letters.record(info, "http://sink/", 20, "HTTP 500", "2026-12-01T22:00:00Z")

    await user.open("/history")

    await user.should_see(content="1 upload(s) the pipeline could not be reached for (dead letters)")
    assert texts(user, "dead-letter-name") == [f"{settings.upload_bucket}/細胞 7.jpg"]
    assert errors() == []
