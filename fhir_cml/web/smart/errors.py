"""What the SMART app refuses, as a page a clinician can act on: a title, what happened, what to do.

Each refusal carries its HTTP status, so a browser, a proxy and a test all see the same answer
the person reads.
"""

from __future__ import annotations


class SmartError(Exception):
    """A request the app cannot serve; rendered as an error page with ``status``."""

    def __init__(self, status: int, title: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message
        self.hint = hint


RELAUNCH = "Open the app again from the patient's chart in the EHR."


def session_missing() -> SmartError:
    return SmartError(
        401,
        "No session",
        "This browser has no session with the app (no session cookie, or the session ended).",
        RELAUNCH,
    )


def session_expired(why: str) -> SmartError:
    return SmartError(
        401, "Session expired", f"Your session with the app has expired: {why}.", RELAUNCH
    )


def csrf_failed() -> SmartError:
    return SmartError(
        403,
        "Form not accepted",
        "The form could not be verified: its anti-forgery (CSRF) token is missing or does not "
        "belong to this session, so nothing was written.",
        "Reload the page and submit the form again.",
    )
