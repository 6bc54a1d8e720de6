"""The page's layout measured in headless Chromium: a typical patient's page fits two screens at
1280 x 800 with the status, the suggestions and the decision at the top; at 375 px nothing is
wider than the screen and the chart's text stays legible; printed on A4 it takes at most two
pages, each with the patient's name and the as-of date. Screenshots and the PDF are saved to
``artifacts/`` (git-ignored) for a person to look at.

The demo pages are measured (the same page a launch shows, without an EHR), so the figures do
not depend on the test EHR.
"""

from __future__ import annotations

import io
import threading
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from playwright.sync_api import Browser, Page
from pypdf import PdfReader

from fhir_cml.web.smart.serve import Server, make
from tests.web.smart.test_browser import ARTIFACTS, chromium  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.browser]

# Typical patients: a failure with a mutation, a long course with dose changes and troughs,
# a TFR candidate, a patient after a TKI stop, a cytogenetic-era patient.
TYPICAL = [
    ("03-failure-t315i", "Tom Threefifteen"),
    ("14-dose-history-risk-scores", "Doris History"),
    ("05-tfr-candidate", "Remy Mission"),
    ("17-tfr-in-remission", "Freya Remission"),
    ("13-cytogenetic-era", "Phil Adelphia"),
]
SCREEN = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}
MEASURED: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="module")
def demo() -> Iterator[Server]:
    server = make(demo=True, host="127.0.0.1", port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.close()
    thread.join(timeout=5)


@contextmanager
def opened(
    chromium: Browser,  # noqa: F811
    demo: Server,
    example: str,
    viewport: dict[str, int],
) -> Iterator[Page]:
    """The example's page in a new browser context, closed after the block."""
    context = chromium.new_context(viewport=viewport)  # type: ignore[arg-type]
    try:
        page = context.new_page()
        page.goto(f"{demo.base_url}/demo/{example}")
        yield page
    finally:
        context.close()


def measure(page: Page) -> dict[str, float]:
    return dict(
        page.evaluate(
            """() => {
            const top = (sel) => { const e = document.querySelector(sel);
                return e ? e.getBoundingClientRect().top + window.scrollY : -1; };
            return {
              height: document.documentElement.scrollHeight,
              width: document.documentElement.scrollWidth,
              status: top('#status'),
              suggestions: top('#suggestions-heading'),
              accept: top('#accept'),
              chart: top('.course'),
            };
        }"""
        )
    )


@pytest.mark.parametrize(("example", "name"), TYPICAL)
def test_a_typical_patient_fits_two_screens_with_the_decision_first(
    chromium: Browser,  # noqa: F811
    demo: Server,
    example: str,
    name: str,
) -> None:
    with opened(chromium, demo, example, SCREEN) as page:
        m = measure(page)
        MEASURED[f"{example} 1280x800"] = m
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"smart-{example}-1280.png"), full_page=True)
        assert m["height"] <= 2 * SCREEN["height"], m
        assert m["width"] <= SCREEN["width"], m
        # The status line, the suggestions and Accept on the first screen, before the chart.
        assert 0 < m["status"] < m["suggestions"] < m["accept"] < SCREEN["height"], m
        assert m["accept"] < m["chart"], m
        assert name in page.locator("h1").inner_text()
        assert page.locator("#status").inner_text().strip() != ""
        # The bases are folded: details on demand.
        assert page.locator("details.why[open]").count() == 0


def test_the_status_line_says_the_reading_at_a_glance(
    chromium: Browser,  # noqa: F811
    demo: Server,
) -> None:
    with opened(chromium, demo, "03-failure-t315i", SCREEN) as page:
        status = page.locator("#status").inner_text()
        assert status.startswith("ELN 2020 failure at 12 months - T315I")
        assert "T315I" in status
        # the options that fit a T315I clone, never the drug that failed
        assert status.endswith("consider switching to ponatinib or asciminib"), status


@pytest.mark.parametrize(("example", "name"), TYPICAL)
def test_at_375_px_nothing_scrolls_sideways_and_the_chart_is_legible(
    chromium: Browser,  # noqa: F811
    demo: Server,
    example: str,
    name: str,
) -> None:
    with opened(chromium, demo, example, PHONE) as page:
        m = measure(page)
        smallest = page.evaluate(
            """() => {
            const svg = [...document.querySelectorAll('svg.course-chart')]
                .find((s) => s.getBoundingClientRect().width > 0);
            const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
            const sizes = [...svg.querySelectorAll('text')].map((t) =>
                parseFloat(getComputedStyle(t).fontSize) * scale);
            return Math.min(...sizes);
        }"""
        )
        m["chart_font_px"] = smallest
        MEASURED[f"{example} 375"] = m
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"smart-{example}-375.png"), full_page=True)
        assert m["width"] <= PHONE["width"], m
        assert smallest >= 9.5, m  # the chart's smallest text, as rendered, in CSS px
        assert page.locator("svg.course-chart.narrow").is_visible()
        assert not page.locator("svg.course-chart.wide").is_visible()
        assert page.locator("#accept").is_visible()


@pytest.mark.parametrize(("example", "name"), TYPICAL)
def test_printed_on_a4_in_two_pages_each_with_the_name_and_date(
    chromium: Browser,  # noqa: F811
    demo: Server,
    example: str,
    name: str,
) -> None:
    with opened(chromium, demo, example, SCREEN) as page:
        page.emulate_media(media="print")
        pdf = page.pdf(format="A4", print_background=False, prefer_css_page_size=True)
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / f"smart-{example}.pdf").write_bytes(pdf)
        pages = PdfReader(io.BytesIO(pdf)).pages
        MEASURED[f"{example} print"] = {"pages": len(pages)}
        assert 1 <= len(pages) <= 2
        for printed in pages:
            text = " ".join(unicodedata.normalize("NFKC", printed.extract_text()).split())
            assert name in text
            assert "as of 2025-06-30" in text
        assert "Accept for" not in " ".join(p.extract_text() for p in pages)  # no forms on paper


def test_report_the_figures() -> None:
    """Prints what was measured (pytest -s shows it); the runs above assert the limits."""
    for key, figures in MEASURED.items():
        print(key, {k: round(v, 1) for k, v in figures.items()})
