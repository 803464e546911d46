"""The slide page's sign-off box: sign off with the password again, reopen with a reason, the patient.

Dialogs only: what they ask for goes to ``review.actions`` (which checks it and
writes the trail) through the callbacks the slide page gives.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nicegui import ui

from bloodcell.review.state import SlideReview
from bloodcell.slides.cell import Patient
from bloodcell.slides.times import lab_time
from bloodcell.web.signature import needs_password

SignOffAction = Callable[[str], Awaitable[bool]]  # password -> done
ReopenAction = Callable[[str], Awaitable[bool]]  # reason -> done
PatientAction = Callable[[int | None, str | None], Awaitable[bool]]
SEX_CHOICES = {"": "not given", "F": "female", "M": "male"}


def render_signoff(
    review: SlideReview,
    zone: str,
    reviewer: bool,
    sign: SignOffAction,
    reopen: ReopenAction,
    patient: PatientAction,
) -> None:
    """Into the current container: the state, and what this user may do about it."""
    status = review.status
    if status.signed_off:
        amended = " (amended report)" if review.sign_off and review.sign_off.amended else ""
        ui.label(f"Signed off by {status.by} at {lab_time(status.at, zone)}{amended}").classes(
            "text-positive font-medium"
        ).mark("signed-off-by")
        if review.sign_off and review.sign_off.signature:
            ui.label(f"Signature: {review.sign_off.signature}").classes("text-xs text-grey-7").mark(
                "signature"
            )
        if reviewer:
            ui.button("Reopen for review", icon="lock_open", on_click=lambda: _reopen_dialog(reopen)).props(
                "outline"
            ).mark("reopen")
    elif reviewer:
        _patient_form(review.patient, patient)
        ui.button("Sign off slide", icon="verified", on_click=lambda: _sign_dialog(sign)).props(
            "unelevated"
        ).mark("sign-off")
    else:
        ui.label(f"Patient: {review.patient.words}").classes("text-sm").mark("patient")
        ui.label("Only a reviewer can review and sign off.").classes("text-sm text-grey-7")


def _patient_form(current: Patient, save: PatientAction) -> None:
    with ui.row().classes("items-end gap-2"):
        age = ui.number("Patient age (years)", value=current.age, min=0, max=130, precision=0)
        age.classes("w-40").mark("patient-age")
        sex = ui.select(SEX_CHOICES, value=current.sex or "", label="Sex").classes("w-32").mark("patient-sex")

        async def store() -> None:
            years = None if age.value in (None, "") else int(age.value)
            await save(years, sex.value or None)

        ui.button("Save", on_click=store).props("flat dense").mark("patient-save")
    ui.label("Age and sex choose the reference ranges.").classes("text-xs text-grey-7")


def _sign_dialog(sign: SignOffAction) -> None:
    with ui.dialog() as dialog, ui.card().classes("gap-3 bc-sign-dialog"):
        ui.label("Sign off this slide").classes("text-h6")
        ui.label(
            "Your sign-off is your electronic signature: the verified labels go to the archive and the "
            "report becomes final (amended, if the slide was signed off before)."
        ).classes("text-sm")
        password = None
        if needs_password():
            password = ui.input("Your password", password=True).props("autofocus").classes("w-full")
            password.mark("sign-password")
        else:
            ui.label(
                "Local user without a password: re-authentication is skipped, and the trail says so."
            ).classes("text-sm text-grey-8").mark("sign-no-password")

        async def confirm() -> None:
            if await sign(str(password.value) if password is not None else ""):
                dialog.close()
            elif password is not None:
                password.set_value("")

        with ui.row().classes("justify-end w-full"):
            ui.button("Cancel", on_click=dialog.close).props("flat")
            ui.button("Sign off", icon="verified", on_click=confirm).props("unelevated").mark("sign-confirm")
    dialog.open()


def _reopen_dialog(reopen: ReopenAction) -> None:
    with ui.dialog() as dialog, ui.card().classes("gap-3 bc-reopen-dialog"):
        ui.label("Reopen for review").classes("text-h6")
        ui.label(
            "Say why: the reason goes in the audit trail and on the amended report the next sign-off issues."
        ).classes("text-sm")
        reason = ui.textarea("Reason").props("autofocus maxlength=500 counter").classes("w-full")
        reason.mark("reopen-reason")

        async def confirm() -> None:
            if await reopen(str(reason.value or "")):
                dialog.close()

        with ui.row().classes("justify-end w-full"):
            ui.button("Cancel", on_click=dialog.close).props("flat")
            ui.button("Reopen", icon="lock_open", on_click=confirm).props("unelevated").mark("reopen-confirm")
    dialog.open()
