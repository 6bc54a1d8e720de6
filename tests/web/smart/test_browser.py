"""End to end in headless Chromium: the EHR launches the app, the EHR's authorization server
signs the user in, the page shows the patient's course and reading, Accept writes the proposal
to the EHR's FHIR server once, however often it is clicked.

Debian's Chromium (``/usr/bin/chromium``, installed by ``scripts/bootstrap.sh``) driven by
Playwright; Playwright's own browser download is not used. The app runs on a real loopback port
(werkzeug's threaded server), so cookies, redirects and forms behave as in a browser at a
clinic: two patients in two tabs, the app inside a frame of an EHR on another origin (and the
new window it opens where framing is refused). Screenshots are saved to ``artifacts/``
(git-ignored).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from fhir_cml.fhir.outbound.care_plan import recommendation_code
from fhir_cml.web.smart.serve import Server, make
from tests.support.smart_ehr import USER
from tests.web.smart.conftest import AS_OF, CLIENT_ID, USER_NAME, Ehr, launch_url
from tests.web.smart.test_decisions import agents, nightly_sync, provenances_of

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[3] / "artifacts"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: ./scripts/test installs it (apt-get install chromium)",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def serve(ehr: Ehr, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Serves the app on a loopback port, registered at the EHR under its real redirect URI."""
    running: list[tuple[Server, threading.Thread]] = []

    def start(**settings: Any) -> Server:
        server = make(
            demo=False,
            host="127.0.0.1",
            port=0,
            settings={
                "state": str(tmp_path / f"state{len(running)}.sqlite3"),
                "smart_issuers": ehr.base,
                "smart_client_id": CLIENT_ID,
                "smart_as_of": AS_OF,
                **settings,
            },
        )
        ehr.auth.register(CLIENT_ID, f"{server.base_url}/smart/callback")
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        running.append((server, thread))
        return server

    yield start
    for server, thread in running:
        server.shutdown()
        server.close()
        thread.join(timeout=5)


@pytest.fixture
def served(serve: Callable[..., Server]) -> Server:
    return serve()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1366, "height": 900})
    yield context.new_page()
    context.close()


def test_ehr_launch_shows_the_course_and_accept_writes_the_proposal_once(
    ehr: Ehr, served: Server, page: Page
) -> None:
    patient = ehr.load("14-dose-history-risk-scores")

    page.goto(served.base_url + launch_url(ehr.base, ehr.auth.launch(patient)))
    page.wait_for_url(f"{served.base_url}/smart/l/*")

    # Who, as of when, and the standing notice.
    expect(page.locator("h1")).to_have_text("Doris History")
    expect(page.locator(".asof")).to_contain_text(f"Reading as of {AS_OF}")
    expect(page.locator("header .notice")).to_have_text(
        "Suggestions for a clinician to review; not orders."
    )
    # The reading: ELN 2020 category with its reason, risk scores, the next PCR.
    eln = page.locator(".reading .row", has_text="ELN 2020 category")
    expect(eln.locator(".value")).to_have_text("optimal (any time)")
    expect(eln.locator(".basis").first).to_contain_text("0.031 %")
    expect(page.locator(".reading .row", has_text="Risk scores")).to_contain_text(
        "Sokal 1.586 (high)"
    )
    expect(page.locator(".reading .row", has_text="Next BCR::ABL1 PCR")).to_contain_text(
        "due by 2025-08-25"
    )
    # A suggestion with the results, rule and source it rests on.
    cont = page.locator(".suggestion[data-code='continue-therapy']")
    expect(cont.locator(".text")).to_contain_text("continue imatinib")
    expect(cont.locator(".evidence").first).to_contain_text("BCR::ABL1 0.031 % IS on 2025-05-26")
    expect(cont.locator(".meta").first).to_contain_text("Hochhaus")
    # The chart: nine results, three milestone targets, three reference lines, three troughs.
    chart = page.locator("svg.course-chart.wide")
    expect(chart.locator("g.result.detected")).to_have_count(9)
    expect(chart.locator(".milestone-target")).to_have_count(3)
    expect(chart.locator("line.reference")).to_have_count(3)
    expect(chart.locator("rect.trough")).to_have_count(3)
    expect(chart.locator("rect.therapy-bar.on-hold")).to_have_count(1)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "smart-page.png"), full_page=True)

    page.click("#accept")
    result = page.locator("#result")
    expect(result).to_have_class("flash flash-accepted")
    expect(result).to_contain_text("Created CarePlan/")
    [care_plan] = ehr.search(f"CarePlan?patient={patient}")
    # The clinician's decision is in the EHR: the proposal put in force (still a proposal, not
    # an order), a Provenance naming the practitioner as verifier of what was written and one
    # naming them as author of the acceptance.
    assert care_plan["status"] == "active"
    assert care_plan["intent"] == "proposal"
    assert_decided_by_the_practitioner(ehr, care_plan)
    assert {recommendation_code(a) for a in care_plan["activity"]} == {
        "continue-therapy",
        "schedule-pcr",
    }

    page.click("#accept")
    expect(result).to_have_class("flash flash-unchanged")
    expect(result).to_contain_text(f"CarePlan/{care_plan['id']}")
    assert [p["id"] for p in ehr.search(f"CarePlan?patient={patient}")] == [care_plan["id"]]
    assert len(ehr.search(f"RiskAssessment?patient={patient}")) == 1
    assert len(ehr.search("Provenance")) == 2  # written, accepted: nothing more the second time
    expect(page.locator(".decided")).to_contain_text("This proposal was accepted")


def assert_decided_by_the_practitioner(ehr: Ehr, care_plan: dict[str, Any]) -> None:
    """The EHR holds who accepted ``care_plan``: the signed-in practitioner, by name."""
    roles: dict[str, list[dict[str, Any]]] = {}
    for provenance in ehr.search("Provenance"):
        targets = [t["reference"] for t in provenance["target"]]
        if not any(t.startswith(f"CarePlan/{care_plan['id']}") for t in targets):
            continue
        for agent in provenance["agent"]:
            roles.setdefault(agent["type"]["coding"][0]["code"], []).append(agent["who"])
    practitioner = {"reference": USER, "display": f"Dr {USER_NAME}"}
    assert practitioner in roles["verifier"]  # of what was written
    assert practitioner in roles["author"]  # of the decision
    assert "assembler" in roles  # fhir-cml computed it


def test_two_patients_in_two_tabs_each_keep_their_patient(
    ehr: Ehr, served: Server, chromium: Browser
) -> None:
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    try:
        a = ehr.load("03-failure-t315i")
        b = ehr.load("05-tfr-candidate")
        tab_a = context.new_page()
        tab_a.goto(served.base_url + launch_url(ehr.base, ehr.auth.launch(a)))
        tab_a.wait_for_url(f"{served.base_url}/smart/l/*")
        tab_b = context.new_page()
        tab_b.goto(served.base_url + launch_url(ehr.base, ehr.auth.launch(b)))
        tab_b.wait_for_url(f"{served.base_url}/smart/l/*")
        assert tab_a.url != tab_b.url
        tab_a.reload()
        expect(tab_a.locator("h1")).to_have_text("Tom Threefifteen")
        expect(tab_b.locator("h1")).to_have_text("Remy Mission")
        tab_a.click("#accept")
        expect(tab_a.locator("#result")).to_have_class("flash flash-accepted")
        expect(tab_a.locator("h1")).to_have_text("Tom Threefifteen")
        assert len(ehr.search(f"CarePlan?patient={a}")) == 1
        assert ehr.search(f"CarePlan?patient={b}") == []
    finally:
        context.close()


def ehr_frame(ehr: Ehr, launch: str) -> str:
    """The test EHR's page that shows ``launch`` in an iframe, on the origin ``localhost``
    (another site than the app's ``127.0.0.1``)."""
    port = urlsplit(ehr.auth.url).port
    return f"http://localhost:{port}/frame?src={quote(launch, safe='')}"


def test_an_ehr_on_another_origin_shows_the_app_in_its_frame(
    ehr: Ehr, serve: Callable[..., Server], page: Page
) -> None:
    ehr_origin = f"http://localhost:{urlsplit(ehr.auth.url).port}"
    served = serve(smart_frame_ancestors=ehr_origin)
    patient = ehr.load("03-failure-t315i")
    page.goto(ehr_frame(ehr, served.base_url + launch_url(ehr.base, ehr.auth.launch(patient))))
    frame = page.frame_locator("#app")
    expect(frame.locator("h1")).to_have_text("Tom Threefifteen")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "smart-in-ehr-frame.png"))
    # The partitioned cookie works in the frame: a form posts and Accept writes once.
    frame.locator("#accept").click()
    expect(frame.locator("#result")).to_have_class("flash flash-accepted")
    [plan] = ehr.search(f"CarePlan?patient={patient}")
    assert plan["status"] == "active"
    assert_decided_by_the_practitioner(ehr, plan)


def test_where_framing_is_refused_the_frame_opens_the_app_in_a_new_window(
    ehr: Ehr, served: Server, page: Page
) -> None:
    patient = ehr.load("03-failure-t315i")
    page.goto(ehr_frame(ehr, served.base_url + launch_url(ehr.base, ehr.auth.launch(patient))))
    frame = page.frame_locator("#app")
    link = frame.get_by_role("link", name="Open the CML app in a new window")
    expect(link).to_be_visible()
    with page.context.expect_page() as opened:
        link.click()
    window = opened.value
    window.wait_for_url(f"{served.base_url}/smart/l/*")
    expect(window.locator("h1")).to_have_text("Tom Threefifteen")


def test_dismiss_in_the_browser_revokes_the_syncs_draft_in_the_practitioners_name(
    ehr: Ehr, served: Server, page: Page
) -> None:
    patient = ehr.load("07-dose-reduction-candidate")
    drafted = nightly_sync(served.app, ehr, patient)
    page.goto(served.base_url + launch_url(ehr.base, ehr.auth.launch(patient)))
    page.wait_for_url(f"{served.base_url}/smart/l/*")
    page.select_option("#reason", "clinical-judgement")
    page.fill("#comment", "Keep 400 mg until the next PCR.")
    page.click("#dismiss")
    result = page.locator("#result")
    expect(result).to_have_class("flash flash-dismissed")
    expect(result).to_contain_text(f"Withdrawn in the EHR: CarePlan/{drafted['id']} is revoked")
    [care_plan] = ehr.search(f"CarePlan?patient={patient}")
    assert care_plan["status"] == "revoked"
    [revocation] = [p for p in provenances_of(ehr, care_plan) if "reason" in p]
    assert agents(revocation)["author"] == {"reference": USER, "display": f"Dr {USER_NAME}"}
    assert "Keep 400 mg until the next PCR." in revocation["reason"][0]["text"]
    expect(page.locator(".decided")).to_contain_text("dismissed")
    expect(page.locator(".decided")).to_contain_text(f"by Dr {USER_NAME}")
