"""What the SMART app refuses, as a page a clinician can act on: a title, what happened, what to do.

Each refusal carries its HTTP status, so a browser, a proxy and a test all see the same answer
the person reads. The hint fits the cause: opening the app again helps with an ended session,
not with a setting only the administrator can change. Messages are sentences; text quoted from
elsewhere (an EHR's error) is joined with :func:`sentence` so no full stop is doubled.
"""

from __future__ import annotations

from typing import Final


class SmartError(Exception):
    """A request the app cannot serve; rendered as an error page with ``status``."""

    def __init__(self, status: int, title: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message
        self.hint = hint


RELAUNCH: Final = "Open the app again from the patient's chart in the EHR."
EHR_ADMINISTRATOR: Final = (
    "Try again in a moment; if it happens again, tell the EHR's administrator."
)


def sentence(*parts: str) -> str:
    """Parts joined into one sentence ending in exactly one full stop (or ? or !)."""
    text = " ".join(p.strip() for p in parts if p and p.strip())
    text = text.rstrip()
    while text.endswith(".."):
        text = text[:-1]
    return text if text.endswith((".", "?", "!")) else f"{text}."


def session_missing() -> SmartError:
    return SmartError(
        401,
        "No session",
        "This browser has no session with the app at this address (the session ended, or the "
        "address was opened in another browser). Nothing was shown or written.",
        RELAUNCH,
    )


def session_expired(why: str, patient_name: str | None = None) -> SmartError:
    whose = f" for {patient_name}" if patient_name else ""
    return SmartError(
        401,
        "Session expired",
        sentence(f"Your session with the app{whose} has expired: {why}"),
        RELAUNCH,
    )


def csrf_failed() -> SmartError:
    return SmartError(
        403,
        "Form not accepted",
        "The form could not be verified: its anti-forgery (CSRF) token is missing or does not "
        "belong to this session, so nothing was written.",
        "Reload this page (it shows the same patient) and submit the form again.",
    )


def other_patient(form_patient: str, shown: str) -> SmartError:
    """A form for one patient posted to another patient's session: nothing is written."""
    return SmartError(
        409,
        "Another patient is open here",
        f"This form was filled in for {form_patient}, but the session at this address is for "
        f"{shown}: another patient was opened since. Nothing was written.",
        "Check which patient you mean to decide for, and open the app from that patient's "
        "chart in the EHR.",
    )
