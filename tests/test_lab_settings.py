"""The lab's own review settings: ranges by age band and sex, time zone, count target, re-auth."""

from __future__ import annotations

from pathlib import Path

import pytest

from bloodcell.errors import ConfigurationError
from bloodcell.review import actions, state
from bloodcell.review.records import NO_PASSWORD, PASSWORD
from bloodcell.settings import Settings
from bloodcell.slides.cell import Patient
from bloodcell.slides.references import parse_bands, references
from bloodcell.slides.times import lab_time
from bloodcell.storage import LocalStorage
from bloodcell.web import auth, signature
from bloodcell.web.accounts import AccountBook
from tests.support.report_slides import Spec, write_slide

BANDS = """category,sex,age_from,age_to,low,high
# children, then adults by sex
NEUTROPHIL,,0,12,25,55
NEUTROPHIL,F,18,,45,72
NEUTROPHIL,,18,,40,70
LYMPHOCYTE,,0,12,35,65
"""
ANNE = auth.User("anne", frozenset({auth.USER, auth.REVIEWER}))


def test_the_most_specific_line_of_the_lab_file_fits_the_patient(tmp_path: Path) -> None:
    path = tmp_path / "ranges.csv"
    path.write_text(BANDS)
    settings = Settings.from_env(
        {"REFERENCE_RANGES_FILE": str(path), "REPORT_REFERENCE_RANGES": "MONOCYTE=1-9"}
    )

    child, woman, man, unknown = (
        references(settings, Patient(age, sex))
        for age, sex in ((7, None), (40, "F"), (40, "M"), (None, None))
    )

    assert (child["NEUTROPHIL"], child["LYMPHOCYTE"]) == ((25, 55), (35, 65))
    assert woman["NEUTROPHIL"] == (45, 72) and man["NEUTROPHIL"] == (40, 70)
    assert unknown["NEUTROPHIL"] == (40, 60) and unknown["MONOCYTE"] == (1, 9)  # no band fits: the table


@pytest.mark.parametrize(
    "env",
    [
        {"LAB_TIMEZONE": "Mars/Olympus"},
        {"COUNT_TARGET": "150"},
        {"REFERENCE_RANGES_FILE": "/nonexistent/ranges.csv"},
    ],
)
def test_bad_lab_settings_fail_at_start(env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        Settings.from_env(env)


@pytest.mark.parametrize(
    "text",
    [
        "category,low\nNEUTROPHIL,1",
        f"{BANDS}PLATELET,,,,1,2\n",
        f"{BANDS}NEUTROPHIL,X,,,1,2\n",
        f"{BANDS}BLAST,,9,3,0,1\n",
    ],
)
def test_a_bad_line_in_the_lab_file_is_named(text: str) -> None:
    with pytest.raises(ConfigurationError, match="REFERENCE_RANGES_FILE"):
        parse_bands(text)


def test_times_read_in_the_lab_zone_to_the_second() -> None:
    settings = Settings.from_env({"LAB_TIMEZONE": "Europe/Paris", "COUNT_TARGET": "200"})

    assert lab_time("2026-12-02T09:00:00.123456Z", settings.lab_timezone) == "2026-12-02 10:00:00 CET"
    assert lab_time("2026-07-02T09:00:00Z", "Europe/Paris") == "2026-07-02 11:00:00 CEST"
    assert settings.count_target == 200 and Settings().lab_timezone == "UTC"


def test_the_patient_is_recorded_in_the_trail_and_chooses_the_ranges(
    local: LocalStorage, settings: Settings
) -> None:
    write_slide(local, settings, "HEM-3", [Spec("NEUTROPHIL")], [b"x"])
    actions.set_patient(local, settings, "HEM-3", ANNE, 7, "F")
    with pytest.raises(actions.ReviewRefused):
        actions.set_patient(local, settings, "HEM-3", ANNE, 300, None)

    review = state.slide_review(local, settings, "HEM-3")

    assert review.patient == Patient(7, "F") and review.patient.words == "7 years, female"
    assert [r.action for r in review.trail] == ["patient"]


def test_sign_off_re_authenticates_with_the_accounts_own_check(monkeypatch: pytest.MonkeyPatch) -> None:
    line = auth.hash_line("anne", "the right password", ("reviewer",))
    accounts = auth.Accounts(AccountBook(line, None))
    monkeypatch.setattr(auth.STATE, "accounts", accounts)
    monkeypatch.setattr(auth.STATE, "mode", auth.Mode.LOCAL)
    assert not signature.needs_password()
    assert signature.reauthenticate(ANNE, "", "127.0.0.1") == NO_PASSWORD  # a loopback stack has no password

    monkeypatch.setattr(auth.STATE, "mode", auth.Mode.ACCOUNTS)

    assert signature.needs_password()
    assert signature.reauthenticate(ANNE, "the right password", "10.0.0.9") == PASSWORD
    with pytest.raises(signature.SignatureRefused, match="Wrong password"):
        signature.reauthenticate(ANNE, "wrong", "10.0.0.9")
    with pytest.raises(signature.SignatureRefused, match="Wrong password"):  # someone else's password
        signature.reauthenticate(auth.User("bruno", ANNE.roles), "the right password", "10.0.0.9")
