"""The test FHIR server does what the rest of the suite relies on, over HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests

from tests.support.fhir_server import FhirTestServer

pytestmark = pytest.mark.integration

FHIR_JSON = "application/fhir+json"
HEADERS = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
LOINC = "http://loinc.org"
BCR_ABL1 = "69380-4"  # BCR-ABL1 transcripts/ABL1 transcripts (IS), in %
HEMOGLOBIN = "718-7"
MRN = "urn:example:mrn"


def patient(pid: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": MRN, "value": pid}],
        "name": [{"family": f"Family-{pid}"}],
    }


def observation(
    oid: str, pid: str, code: str = BCR_ABL1, when: str = "2024-03-01"
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when,
        "valueQuantity": {
            "value": 0.1,
            "unit": "%",
            "system": "http://unitsofmeasure.org",
            "code": "%",
        },
    }


def search_ids(base: str, query: str) -> list[str]:
    response = requests.get(f"{base}/{query}", headers=HEADERS, timeout=30)
    assert response.status_code == 200, response.text
    return [
        entry["resource"]["id"]
        for entry in response.json().get("entry", [])
        if entry["search"]["mode"] == "match"
    ]


def link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((lk["url"] for lk in bundle.get("link", []) if lk["relation"] == relation), None)


# --- CRUD -----------------------------------------------------------------------------------


def test_create_read_update_delete(fhir_base: str) -> None:
    new_patient = patient("ignored")
    del new_patient["id"]
    created = requests.post(f"{fhir_base}/Patient", json=new_patient, headers=HEADERS, timeout=10)
    assert created.status_code == 201, created.text
    assert created.headers["Content-Type"].startswith(FHIR_JSON)
    body = created.json()
    pid, v1 = body["id"], body["meta"]["versionId"]
    assert created.headers["Location"] == f"{fhir_base}/Patient/{pid}/_history/{v1}"
    assert created.headers["ETag"] == f'W/"{v1}"'

    read = requests.get(f"{fhir_base}/Patient/{pid}", headers=HEADERS, timeout=10)
    assert read.status_code == 200
    assert read.json()["name"] == [{"family": "Family-ignored"}]

    changed = read.json() | {"gender": "female"}
    updated = requests.put(
        f"{fhir_base}/Patient/{pid}",
        json=changed,
        headers=HEADERS | {"If-Match": f'W/"{v1}"'},
        timeout=10,
    )
    assert updated.status_code == 200, updated.text
    v2 = updated.json()["meta"]["versionId"]
    assert v2 != v1
    assert updated.json()["gender"] == "female"

    stale = requests.put(
        f"{fhir_base}/Patient/{pid}",
        json=changed,
        headers=HEADERS | {"If-Match": f'W/"{v1}"'},
        timeout=10,
    )
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome"

    old = requests.get(f"{fhir_base}/Patient/{pid}/_history/{v1}", headers=HEADERS, timeout=10)
    assert old.status_code == 200
    assert "gender" not in old.json()
    history = requests.get(
        f"{fhir_base}/Patient/{pid}/_history", headers=HEADERS, timeout=10
    ).json()
    assert history["type"] == "history"
    assert history["total"] == 2
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == [v2, v1]

    deleted = requests.delete(f"{fhir_base}/Patient/{pid}", headers=HEADERS, timeout=10)
    assert deleted.status_code == 200
    gone = requests.get(f"{fhir_base}/Patient/{pid}", headers=HEADERS, timeout=10)
    assert gone.status_code == 410
    missing = requests.get(f"{fhir_base}/Patient/never-there", headers=HEADERS, timeout=10)
    assert missing.status_code == 404
    assert missing.json()["issue"][0]["code"] == "not-found"


def test_update_with_a_client_id_creates_then_updates(fhir_base: str) -> None:
    first = requests.put(
        f"{fhir_base}/Patient/p-1", json=patient("p-1"), headers=HEADERS, timeout=10
    )
    assert first.status_code == 201, first.text
    assert first.json()["id"] == "p-1"
    second = requests.put(
        f"{fhir_base}/Patient/p-1",
        json=patient("p-1") | {"gender": "male"},
        headers=HEADERS,
        timeout=10,
    )
    assert second.status_code == 200
    assert requests.get(f"{fhir_base}/Patient/p-1", timeout=10).json()["gender"] == "male"


def test_invalid_resources_are_refused(fhir_base: str) -> None:
    bad_status = observation("o-1", "p-1") | {"status": "finished"}
    response = requests.post(
        f"{fhir_base}/Observation", json=bad_status, headers=HEADERS, timeout=10
    )
    assert response.status_code == 400
    issue = response.json()["issue"][0]
    assert issue["expression"] == ["Observation.status"]
    unknown_element = observation("o-1", "p-1") | {"colour": "red"}
    response = requests.post(
        f"{fhir_base}/Observation", json=unknown_element, headers=HEADERS, timeout=10
    )
    assert response.status_code == 400
    assert requests.get(f"{fhir_base}/Observation", timeout=10).json()["total"] == 0


# --- Search ---------------------------------------------------------------------------------


@pytest.fixture
def two_patients(fhir_server: FhirTestServer, fhir_base: str) -> str:
    resources = [patient("a"), patient("b"), patient("c"), patient("d")]
    resources += [
        observation("a-bcr-2023", "a", when="2023-06-01"),
        observation("a-bcr-2024", "a", when="2024-06-01"),
        observation("a-hb-2024", "a", code=HEMOGLOBIN, when="2024-06-01"),
        observation("b-bcr-2024", "b", when="2024-02-01"),
        observation("c-bcr-2024", "c", when="2024-07-01"),
        observation("d-bcr-2024", "d", when="2024-08-01"),
    ]
    fhir_server.load(resources)
    return fhir_base


def test_search_by_patient_code_and_date(two_patients: str) -> None:
    base = two_patients
    assert sorted(search_ids(base, "Observation?patient=a")) == [
        "a-bcr-2023",
        "a-bcr-2024",
        "a-hb-2024",
    ]
    assert sorted(search_ids(base, "Observation?subject=Patient/a")) == [
        "a-bcr-2023",
        "a-bcr-2024",
        "a-hb-2024",
    ]
    assert sorted(search_ids(base, f"Observation?patient=a&code={LOINC}|{BCR_ABL1}")) == [
        "a-bcr-2023",
        "a-bcr-2024",
    ]
    assert search_ids(base, f"Observation?patient=a&code={LOINC}|{BCR_ABL1}&date=ge2024-01-01") == [
        "a-bcr-2024"
    ]
    assert search_ids(base, f"Observation?code=http://other.org|{BCR_ABL1}") == []
    assert search_ids(base, "Observation?subject:Patient=b") == ["b-bcr-2024"]
    assert search_ids(base, "Observation?patient.identifier=urn:example:mrn|c") == ["c-bcr-2024"]
    assert search_ids(base, "Patient?identifier=urn:example:mrn|c") == ["c"]


def test_search_several_patients_at_once(two_patients: str) -> None:
    base = two_patients
    code = f"{LOINC}|{BCR_ABL1}"
    assert sorted(search_ids(base, f"Observation?patient=a,b,c&code={code}")) == [
        "a-bcr-2023",
        "a-bcr-2024",
        "b-bcr-2024",
        "c-bcr-2024",
    ]
    assert sorted(search_ids(base, "Observation?subject=Patient/b,Patient/d")) == [
        "b-bcr-2024",
        "d-bcr-2024",
    ]


def test_post_search_equals_get_search(two_patients: str) -> None:
    base = two_patients
    response = requests.post(
        f"{base}/Observation/_search",
        data={"patient": "a,b", "date": "ge2024-01-01"},
        headers={"Accept": FHIR_JSON},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    ids = sorted(e["resource"]["id"] for e in response.json()["entry"])
    assert ids == sorted(search_ids(base, "Observation?patient=a,b&date=ge2024-01-01"))
    assert ids == ["a-bcr-2024", "a-hb-2024", "b-bcr-2024"]


def test_include_and_revinclude(two_patients: str) -> None:
    base = two_patients
    bundle = requests.get(
        f"{base}/Observation?patient=b&_include=Observation:patient", headers=HEADERS, timeout=10
    ).json()
    modes = sorted((e["search"]["mode"], e["resource"]["id"]) for e in bundle["entry"])
    assert modes == [("include", "b"), ("match", "b-bcr-2024")]
    assert bundle["total"] == 1
    bundle = requests.get(
        f"{base}/Patient?_id=c&_revinclude=Observation:patient", headers=HEADERS, timeout=10
    ).json()
    modes = sorted((e["search"]["mode"], e["resource"]["id"]) for e in bundle["entry"])
    assert modes == [("include", "c-bcr-2024"), ("match", "c")]


def test_sort_uses_the_first_key_first(two_patients: str) -> None:
    base = two_patients
    newest_first = search_ids(base, f"Observation?patient=a,b&code={BCR_ABL1}&_sort=-date")
    assert newest_first == ["a-bcr-2024", "b-bcr-2024", "a-bcr-2023"]
    by_code_then_date = search_ids(base, "Observation?patient=a,b&_sort=code,-date")
    assert by_code_then_date == ["a-bcr-2024", "b-bcr-2024", "a-bcr-2023", "a-hb-2024"]
    by_date = search_ids(base, "Observation?patient=a,b,c,d&code=69380-4&_sort=date")
    assert by_date == ["a-bcr-2023", "b-bcr-2024", "a-bcr-2024", "c-bcr-2024", "d-bcr-2024"]


def test_paging_follows_next_links_to_the_end(fhir_server: FhirTestServer, fhir_base: str) -> None:
    fhir_server.load([patient("p")] + [observation(f"o-{i:02}", "p") for i in range(53)])
    url: str | None = f"{fhir_base}/Observation?patient=p&_count=10"
    seen: list[str] = []
    pages = 0
    while url:
        bundle = requests.get(url, headers=HEADERS, timeout=10).json()
        assert bundle["type"] == "searchset"
        assert bundle["total"] == 53
        if pages == 1:
            assert link(bundle, "previous") is not None
        seen += [e["resource"]["id"] for e in bundle["entry"]]
        assert all(
            e["fullUrl"] == f"{fhir_base}/Observation/{e['resource']['id']}"
            for e in bundle["entry"]
        )
        url = link(bundle, "next")
        pages += 1
    assert pages == 6
    assert len(seen) == 53
    assert sorted(seen) == [f"o-{i:02}" for i in range(53)]


def test_page_size_defaults_and_limits(fhir_server: FhirTestServer, fhir_base: str) -> None:
    fhir_server.load([patient(f"p{i}") for i in range(25)])
    default = requests.get(f"{fhir_base}/Patient", headers=HEADERS, timeout=10).json()
    assert len(default["entry"]) == 20
    assert "_offset=20" in (link(default, "next") or "")
    count_only = requests.get(
        f"{fhir_base}/Patient?_summary=count", headers=HEADERS, timeout=10
    ).json()
    assert count_only["total"] == 25
    assert "entry" not in count_only
    bad = requests.get(f"{fhir_base}/Patient?_count=-1", headers=HEADERS, timeout=10)
    assert bad.status_code == 400


def test_searches_the_engine_cannot_answer_are_refused(fhir_base: str) -> None:
    for query in (
        "Observation?value-quantity=gt5",
        "Observation?colour=red",
        "Patient?_has:Observation:patient:code=x",
    ):
        response = requests.get(f"{fhir_base}/{query}", headers=HEADERS, timeout=10)
        assert response.status_code == 400, query
        assert response.json()["resourceType"] == "OperationOutcome"


# --- Transactions and conditional interactions ----------------------------------------------


def cml_transaction() -> dict[str, Any]:
    patient_urn = "urn:uuid:6c1c7a1e-0c53-4d5c-9a4e-0f7f6a0e1b01"
    obs = observation("x", "x") | {"identifier": [{"system": "urn:example:lab", "value": "L-1"}]}
    del obs["id"]
    obs["subject"] = {"reference": patient_urn}
    pat = patient("x")
    del pat["id"]
    pat["identifier"] = [{"system": MRN, "value": "MRN-7"}]
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": patient_urn,
                "resource": pat,
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"identifier={MRN}|MRN-7",
                },
            },
            {
                "fullUrl": "urn:uuid:6c1c7a1e-0c53-4d5c-9a4e-0f7f6a0e1b02",
                "resource": obs,
                "request": {
                    "method": "POST",
                    "url": "Observation",
                    "ifNoneExist": "identifier=urn:example:lab|L-1",
                },
            },
        ],
    }


def test_transaction_with_if_none_exist_is_idempotent(fhir_base: str) -> None:
    first = requests.post(fhir_base, json=cml_transaction(), headers=HEADERS, timeout=10)
    assert first.status_code == 200, first.text
    assert first.json()["type"] == "transaction-response"
    assert [e["response"]["status"] for e in first.json()["entry"]] == ["201", "201"]
    pid = first.json()["entry"][0]["resource"]["id"]
    assert first.json()["entry"][1]["resource"]["subject"] == {"reference": f"Patient/{pid}"}

    second = requests.post(fhir_base, json=cml_transaction(), headers=HEADERS, timeout=10)
    assert second.status_code == 200, second.text
    assert [e["response"]["status"] for e in second.json()["entry"]] == ["200", "200"]
    assert second.json()["entry"][0]["resource"]["id"] == pid
    assert requests.get(f"{fhir_base}/Patient", timeout=10).json()["total"] == 1
    assert requests.get(f"{fhir_base}/Observation", timeout=10).json()["total"] == 1


def test_a_failing_transaction_changes_nothing(fhir_base: str) -> None:
    bundle = cml_transaction()
    bundle["entry"][1]["resource"]["status"] = "not-a-status"
    response = requests.post(fhir_base, json=bundle, headers=HEADERS, timeout=10)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
    assert requests.get(f"{fhir_base}/Patient", timeout=10).json()["total"] == 0


def test_a_batch_runs_entries_independently(fhir_base: str) -> None:
    bundle = cml_transaction()
    bundle["type"] = "batch"
    bundle["entry"][1]["resource"]["status"] = "not-a-status"
    response = requests.post(fhir_base, json=bundle, headers=HEADERS, timeout=10)
    assert response.status_code == 200
    assert response.json()["type"] == "batch-response"
    assert [e["response"]["status"] for e in response.json()["entry"]] == ["201", "400"]
    assert requests.get(f"{fhir_base}/Patient", timeout=10).json()["total"] == 1


def test_prefer_return_minimal_leaves_the_resources_out_of_bundle_responses(
    two_patients: str,
) -> None:
    base = two_patients
    bundle = cml_transaction() | {"type": "batch"}
    bundle["entry"].append({"request": {"method": "GET", "url": "Patient?_id=a"}})
    minimal = HEADERS | {"Prefer": "return=minimal"}
    response = requests.post(base, json=bundle, headers=minimal, timeout=10)
    assert response.status_code == 200, response.text
    created, observed, searched = response.json()["entry"]
    assert "resource" not in created
    assert "resource" not in observed
    assert created["response"]["status"] == "201"
    assert created["response"]["location"].startswith("Patient/")
    assert searched["resource"]["entry"][0]["resource"]["id"] == "a"  # reads keep their results
    again = requests.post(base, json=cml_transaction(), headers=HEADERS, timeout=10)
    assert [e["resource"]["resourceType"] for e in again.json()["entry"]] == [
        "Patient",
        "Observation",
    ]


def test_conditional_create_and_update(fhir_base: str) -> None:
    headers = HEADERS | {"If-None-Exist": f"identifier={MRN}|MRN-9"}
    body = patient("x") | {"identifier": [{"system": MRN, "value": "MRN-9"}]}
    del body["id"]
    first = requests.post(f"{fhir_base}/Patient", json=body, headers=headers, timeout=10)
    again = requests.post(f"{fhir_base}/Patient", json=body, headers=headers, timeout=10)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]

    url = f"{fhir_base}/Patient?identifier={MRN}|MRN-9"
    updated = requests.put(url, json=body | {"gender": "other"}, headers=HEADERS, timeout=10)
    assert updated.status_code == 200, updated.text
    assert updated.json()["id"] == first.json()["id"]
    assert updated.json()["meta"]["versionId"] != first.json()["meta"]["versionId"]

    new_url = f"{fhir_base}/Patient?identifier={MRN}|MRN-10"
    new_body = body | {"identifier": [{"system": MRN, "value": "MRN-10"}]}
    created = requests.put(new_url, json=new_body, headers=HEADERS, timeout=10)
    assert created.status_code == 201, created.text
    assert created.json()["id"] != first.json()["id"]
    assert requests.get(f"{fhir_base}/Patient", timeout=10).json()["total"] == 2


# --- Search indexes (identifier, references) ------------------------------------------------

RISK = "urn:example:assessment"


def post(base: str, body: dict[str, Any], **headers: str) -> requests.Response:
    return requests.post(
        f"{base}/{body['resourceType']}", json=body, headers=HEADERS | headers, timeout=10
    )


def scans(server: FhirTestServer) -> dict[str, int]:
    """Searches that examined every resource of a type, by type, since the last reset_stats()."""
    result: dict[str, int] = server.stats()["fullScans"]
    return result


def test_the_identifier_index_follows_creates_updates_and_deletes(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    fhir_server.load([patient(f"other-{i}") for i in range(5)])
    body = patient("x") | {"identifier": [{"system": MRN, "value": "A-1"}]}
    del body["id"]
    pid = post(fhir_base, body).json()["id"]
    assert search_ids(fhir_base, f"Patient?identifier={MRN}|A-1") == [pid]
    # Compared as the engine compares tokens: case-insensitively, with or without the system.
    assert search_ids(fhir_base, f"Patient?identifier={MRN.upper()}|a-1") == [pid]
    assert search_ids(fhir_base, "Patient?identifier=A-1") == [pid]
    assert search_ids(fhir_base, "Patient?identifier=urn:other|A-1") == []
    assert search_ids(fhir_base, f"Patient?identifier={MRN}|A-1,{MRN}|other-3") == sorted(
        [pid, "other-3"], key=lambda i: i != pid
    )

    changed = body | {"id": pid, "identifier": [{"system": MRN, "value": "B-2"}]}
    response = requests.put(f"{fhir_base}/Patient/{pid}", json=changed, headers=HEADERS, timeout=10)
    assert response.status_code == 200, response.text
    assert search_ids(fhir_base, f"Patient?identifier={MRN}|A-1") == []
    assert search_ids(fhir_base, f"Patient?identifier={MRN}|B-2") == [pid]
    assert scans(fhir_server).get("Patient") is None  # all of these by the index

    assert len(search_ids(fhir_base, f"Patient?identifier={MRN}|")) == 6  # by system: a scan
    assert scans(fhir_server)["Patient"] == 1

    assert requests.delete(f"{fhir_base}/Patient/{pid}", timeout=10).status_code == 200
    assert search_ids(fhir_base, f"Patient?identifier={MRN}|B-2") == []
    fhir_server.load(patient("loaded") | {"identifier": [{"system": MRN, "value": "B-2"}]})
    assert search_ids(fhir_base, f"Patient?identifier={MRN}|B-2") == ["loaded"]
    fhir_server.reset()
    assert search_ids(fhir_base, f"Patient?identifier={MRN}|B-2") == []


def test_conditional_creates_hit_and_miss_by_the_index(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    body = patient("x") | {"identifier": [{"system": MRN, "value": "C-1"}]}
    del body["id"]
    condition = {"If-None-Exist": f"identifier={MRN}|C-1"}
    first = post(fhir_base, body, **condition)
    again = post(fhir_base, body, **condition)
    other = post(
        fhir_base,
        body | {"identifier": [{"system": MRN, "value": "C-2"}]},
        **{"If-None-Exist": f"identifier={MRN}|C-2"},
    )
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert again.json()["id"] == first.json()["id"] != other.json()["id"]
    assert requests.get(f"{fhir_base}/Patient", timeout=10).json()["total"] == 2
    assert scans(fhir_server) == {"Patient": 1}  # the count above, not the conditions


def risk_and_provenance(fingerprint: str) -> dict[str, Any]:
    """fhir-cml's write-back in miniature: a RiskAssessment and its Provenance, both conditional."""
    risk_urn = f"urn:uuid:6c1c7a1e-0c53-4d5c-9a4e-{fingerprint:0>12}"
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": risk_urn,
                "resource": {
                    "resourceType": "RiskAssessment",
                    "status": "final",
                    "identifier": [{"system": RISK, "value": fingerprint}],
                    "subject": {"reference": "Patient/a"},
                },
                "request": {
                    "method": "POST",
                    "url": "RiskAssessment",
                    "ifNoneExist": f"identifier={RISK}|{fingerprint}",
                },
            },
            {
                "resource": {
                    "resourceType": "Provenance",
                    "target": [{"reference": risk_urn}],
                    "recorded": "2025-06-30T00:00:00Z",
                    "agent": [{"who": {"display": "fhir-cml"}}],
                },
                "request": {
                    "method": "POST",
                    "url": "Provenance",
                    "ifNoneExist": f"target:RiskAssessment.identifier={RISK}|{fingerprint}",
                },
            },
        ],
    }


def test_provenance_conditions_on_the_target_use_the_indexes(
    fhir_server: FhirTestServer, two_patients: str
) -> None:
    base = two_patients
    fhir_server.reset_stats()
    first = requests.post(base, json=risk_and_provenance("1"), headers=HEADERS, timeout=10)
    second = requests.post(base, json=risk_and_provenance("2"), headers=HEADERS, timeout=10)
    again = requests.post(base, json=risk_and_provenance("1"), headers=HEADERS, timeout=10)
    statuses = [
        [e["response"]["status"] for e in r.json()["entry"]] for r in (first, second, again)
    ]
    assert statuses == [["201", "201"], ["201", "201"], ["200", "200"]]
    risk = first.json()["entry"][0]["response"]["location"].split("/")[1]
    provenance = first.json()["entry"][1]["response"]["location"].split("/")[1]
    assert again.json()["entry"][1]["response"]["location"].split("/")[1] == provenance

    assert search_ids(base, f"Provenance?target=RiskAssessment/{risk}") == [provenance]
    assert search_ids(base, f"Provenance?target:RiskAssessment.identifier={RISK}|1") == [provenance]
    assert search_ids(base, "Provenance?target=RiskAssessment/unknown") == []
    batch = risk_and_provenance("1") | {"type": "batch"}
    del batch["entry"][0]
    batch["entry"][0]["resource"]["target"] = [{"reference": f"RiskAssessment/{risk}"}]
    batch["entry"][0]["request"]["ifNoneExist"] = f"target=RiskAssessment/{risk}"
    response = requests.post(base, json=batch, headers=HEADERS, timeout=10)
    assert response.json()["entry"][0]["response"]["status"] == "200"
    assert scans(fhir_server) == {}
    assert requests.get(f"{base}/Provenance", timeout=10).json()["total"] == 2


def test_a_rolled_back_transaction_leaves_the_indexes_as_they_were(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    fhir_server.load(
        [
            patient("kept") | {"identifier": [{"system": MRN, "value": "K-1"}]},
            patient("gone") | {"identifier": [{"system": MRN, "value": "G-1"}]},
        ]
    )
    assert search_ids(fhir_base, f"Patient?identifier={MRN}|K-1") == ["kept"]  # index built
    new = patient("x") | {"identifier": [{"system": MRN, "value": "N-1"}]}
    del new["id"]
    renamed = patient("kept") | {"identifier": [{"system": MRN, "value": "K-2"}]}
    invalid = observation("bad", "kept") | {"status": "not-a-status"}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [  # the engine runs deletes, then creates, then updates
            {"request": {"method": "DELETE", "url": "Patient/gone"}},
            {
                "resource": new,
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"identifier={MRN}|N-1",
                },
            },
            {"resource": renamed, "request": {"method": "PUT", "url": "Patient/kept"}},
            {"resource": invalid, "request": {"method": "PUT", "url": "Observation/bad"}},
        ],
    }
    response = requests.post(fhir_base, json=bundle, headers=HEADERS, timeout=10)
    assert response.status_code == 400, response.text

    assert search_ids(fhir_base, f"Patient?identifier={MRN}|K-1") == ["kept"]
    assert search_ids(fhir_base, f"Patient?identifier={MRN}|K-2") == []
    assert search_ids(fhir_base, f"Patient?identifier={MRN}|G-1") == ["gone"]
    assert search_ids(fhir_base, f"Patient?identifier={MRN}|N-1") == []
    again = post(fhir_base, new, **{"If-None-Exist": f"identifier={MRN}|N-1"})
    kept = post(fhir_base, new, **{"If-None-Exist": f"identifier={MRN}|K-1"})
    assert (again.status_code, kept.status_code) == (201, 200)
    assert kept.json()["id"] == "kept"


# --- Metadata, admin ------------------------------------------------------------------------


def test_capability_statement(fhir_base: str) -> None:
    response = requests.get(f"{fhir_base}/metadata", headers=HEADERS, timeout=10)
    assert response.status_code == 200
    statement = response.json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["kind"] == "instance"
    rest = statement["rest"][0]
    assert {i["code"] for i in rest["interaction"]} == {"transaction", "batch"}
    resources = {r["type"]: r for r in rest["resource"]}
    assert {
        "Patient",
        "Observation",
        "MedicationStatement",
        "CarePlan",
        "RiskAssessment",
        "Group",
    } <= set(resources)
    observation_resource = resources["Observation"]
    assert {i["code"] for i in observation_resource["interaction"]} == {
        "read",
        "vread",
        "update",
        "patch",
        "delete",
        "history-instance",
        "create",
        "search-type",
    }
    params = {p["name"]: p["type"] for p in observation_resource["searchParam"]}
    assert params["patient"] == "reference"
    assert params["code"] == "token"
    assert params["date"] == "date"
    assert "value-quantity" not in params
    assert resources["Patient"]["operation"][0]["definition"].endswith("/patient-export")
    assert resources["Group"]["operation"][0]["definition"].endswith("/group-export")
    assert "security" not in rest


def test_load_accepts_bundles_with_urn_references_and_ndjson(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    result = fhir_server.load(
        {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [
                {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient"}},
                {
                    "resource": observation("o-1", "x") | {"subject": {"reference": "urn:uuid:p"}},
                },
            ],
        }
    )
    assert result == {"loaded": 2, "types": {"Patient": 1, "Observation": 1}}
    pid = search_ids(fhir_base, "Patient")[0]
    assert search_ids(fhir_base, f"Observation?patient={pid}") == ["o-1"]
    assert fhir_server.load([patient("n1"), patient("n2")])["loaded"] == 2
    assert requests.get(f"{fhir_base}/Patient", timeout=10).json()["total"] == 3
    fhir_server.reset()
    assert requests.get(f"{fhir_base}/Patient", timeout=10).json()["total"] == 0


def test_stats_count_requests_by_method_and_interaction(
    fhir_server: FhirTestServer, two_patients: str
) -> None:
    base = two_patients
    fhir_server.reset_stats()
    requests.get(f"{base}/Patient/a", timeout=10)
    requests.get(f"{base}/Observation?patient=a", timeout=10)
    requests.get(f"{base}/Observation?patient=b", timeout=10)
    requests.post(f"{base}/Observation", json=observation("n", "a"), headers=HEADERS, timeout=10)
    requests.post(base, json=cml_transaction(), headers=HEADERS, timeout=10)
    stats = fhir_server.stats()
    assert stats["requests"] == 5
    assert stats["byMethod"] == {"GET": 3, "POST": 2}
    assert stats["byInteraction"] == {"read": 1, "search": 2, "create": 1, "transaction": 1}
    assert stats["byResourceType"]["Observation"] == {"search": 2, "create": 1}
    assert stats["bundleEntries"] == 2
    fhir_server.reset_stats()
    assert fhir_server.stats()["requests"] == 0


# --- Bulk Data export -----------------------------------------------------------------------

EXPORT_HEADERS = {"Accept": FHIR_JSON, "Prefer": "respond-async"}


@pytest.fixture
def export_data(fhir_server: FhirTestServer, fhir_base: str) -> str:
    old = {"meta": {"lastUpdated": "2020-01-01T00:00:00.000Z"}}
    resources: list[dict[str, Any]] = []
    for pid in ("a", "b", "c"):
        resources += [
            patient(pid) | old,
            observation(f"{pid}-1", pid) | old,
            observation(f"{pid}-2", pid) | old,
        ]
        resources.append(
            {
                "resourceType": "Condition",
                "id": f"{pid}-cml",
                "subject": {"reference": f"Patient/{pid}"},
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "92818009"}]},
            }
            | old
        )
    resources.append({"resourceType": "Practitioner", "id": "doc"} | old)
    resources.append(
        {
            "resourceType": "Group",
            "id": "cml-cohort",
            "type": "person",
            "actual": True,
            "member": [
                {"entity": {"reference": "Patient/a"}},
                {"entity": {"reference": "Patient/c"}},
            ],
        }
        | old
    )
    fhir_server.load(resources)
    return fhir_base


def run_export(kick_off_url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Kicks off an export, polls it to the end and returns the manifest."""
    headers = headers or {}
    response = requests.get(kick_off_url, headers=EXPORT_HEADERS | headers, timeout=10)
    assert response.status_code == 202, response.text
    status_url = response.headers["Content-Location"]
    polls = 0
    while True:
        status = requests.get(
            status_url, headers={"Accept": "application/json"} | headers, timeout=10
        )
        polls += 1
        if status.status_code != 202:
            break
        assert int(status.headers["Retry-After"]) >= 0
        assert status.headers["X-Progress"]
        assert polls < 10
    assert status.status_code == 200, status.text
    assert status.headers["Content-Type"].startswith("application/json")
    assert polls == 2  # the server answers 202 once by default
    manifest: dict[str, Any] = status.json()
    return manifest


def download(
    manifest: dict[str, Any], headers: dict[str, str] | None = None
) -> dict[str, list[dict[str, Any]]]:
    by_type: dict[str, list[dict[str, Any]]] = {}
    for item in manifest["output"]:
        response = requests.get(item["url"], headers=headers or {}, timeout=10)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/fhir+ndjson"
        lines = [json.loads(line) for line in response.text.splitlines() if line]
        assert len(lines) == item["count"]
        assert {r["resourceType"] for r in lines} == {item["type"]}
        by_type.setdefault(item["type"], []).extend(lines)
    return by_type


def ids(resources: list[dict[str, Any]]) -> list[str]:
    return sorted(r["id"] for r in resources)


def test_patient_export(export_data: str) -> None:
    kick_off = f"{export_data}/Patient/$export"
    now = datetime.now(UTC)
    before = now.replace(microsecond=now.microsecond // 1000 * 1000)  # the server keeps ms
    manifest = run_export(kick_off)
    assert manifest["request"] == kick_off
    assert manifest["requiresAccessToken"] is False
    assert manifest["error"] == []
    transaction_time = datetime.fromisoformat(manifest["transactionTime"].replace("Z", "+00:00"))
    assert before <= transaction_time <= datetime.now(UTC)
    data = download(manifest)
    # The patient compartment: Group (through Group.member) but not Practitioner.
    assert set(data) == {"Patient", "Observation", "Condition", "Group"}
    assert ids(data["Patient"]) == ["a", "b", "c"]
    assert ids(data["Observation"]) == ["a-1", "a-2", "b-1", "b-2", "c-1", "c-2"]


def test_export_by_type_and_since(export_data: str) -> None:
    manifest = run_export(f"{export_data}/Patient/$export?_type=Observation,Patient")
    assert sorted(item["type"] for item in manifest["output"]) == ["Observation", "Patient"]

    requests.put(
        f"{export_data}/Observation/b-2", json=observation("b-2", "b"), headers=HEADERS, timeout=10
    )
    manifest = run_export(f"{export_data}/Patient/$export?_since=2021-01-01T00:00:00Z")
    data = download(manifest)
    assert {t: ids(r) for t, r in data.items()} == {"Observation": ["b-2"]}


def test_group_export(export_data: str) -> None:
    manifest = run_export(f"{export_data}/Group/cml-cohort/$export?_type=Patient,Condition")
    data = download(manifest)
    assert ids(data["Patient"]) == ["a", "c"]
    assert ids(data["Condition"]) == ["a-cml", "c-cml"]
    missing = requests.get(f"{export_data}/Group/nope/$export", headers=EXPORT_HEADERS, timeout=10)
    assert missing.status_code == 404


def test_system_export_and_cancel(export_data: str) -> None:
    data = download(run_export(f"{export_data}/$export?_type=Practitioner,Group"))
    assert {t: ids(r) for t, r in data.items()} == {
        "Group": ["cml-cohort"],
        "Practitioner": ["doc"],
    }

    kick_off = requests.get(f"{export_data}/Patient/$export", headers=EXPORT_HEADERS, timeout=10)
    status_url = kick_off.headers["Content-Location"]
    assert requests.delete(status_url, timeout=10).status_code == 202
    assert requests.get(status_url, timeout=10).status_code == 404


def test_export_kick_off_errors(export_data: str) -> None:
    url = f"{export_data}/Patient/$export"
    no_prefer = requests.get(url, headers={"Accept": FHIR_JSON}, timeout=10)
    assert no_prefer.status_code == 400
    assert no_prefer.json()["resourceType"] == "OperationOutcome"
    assert (
        requests.get(f"{url}?_type=Nonsense", headers=EXPORT_HEADERS, timeout=10).status_code == 400
    )
    assert (
        requests.get(f"{url}?_since=yesterday", headers=EXPORT_HEADERS, timeout=10).status_code
        == 400
    )
    assert (
        requests.get(f"{url}?_elements=id", headers=EXPORT_HEADERS, timeout=10).status_code == 400
    )
    lenient = run_export(
        f"{url}?_elements=id&_type=Patient", {"Prefer": "respond-async, handling=lenient"}
    )
    assert len(lenient["error"]) == 1
    outcome = json.loads(requests.get(lenient["error"][0]["url"], timeout=10).text.splitlines()[0])
    assert "_elements" in outcome["issue"][0]["details"]["text"]


# --- Bearer tokens --------------------------------------------------------------------------


class Introspection:
    """A minimal RFC 7662 introspection endpoint on loopback."""

    def __init__(self, tokens: dict[str, dict[str, Any]]) -> None:
        self.tokens = tokens
        self.requests: list[dict[str, list[str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                form = parse_qs(self.rfile.read(length).decode())
                outer.requests.append(form)
                info = outer.tokens.get(form.get("token", [""])[0], {"active": False})
                body = json.dumps(info).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/introspect"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def introspection() -> Iterator[Introspection]:
    endpoint = Introspection(
        {
            "system-token": {"active": True, "scope": "system/*.rs"},
            "patient-a-token": {"active": True, "scope": "patient/*.rs", "patient": "a"},
            "expired-token": {"active": False},
        }
    )
    yield endpoint
    endpoint.close()


AUTHORIZE_URL = "http://127.0.0.1:9/authorize"
TOKEN_URL = "http://127.0.0.1:9/token"


@pytest.fixture(scope="module")
def protected_server(
    fhir_server_factory: Callable[..., FhirTestServer], introspection: Introspection
) -> FhirTestServer:
    return fhir_server_factory(
        introspection_url=introspection.url,
        tokens={"fixed-token": None},
        args=["--smart-authorize-url", AUTHORIZE_URL, "--smart-token-url", TOKEN_URL],
    )


@pytest.fixture
def protected(protected_server: FhirTestServer) -> FhirTestServer:
    protected_server.reset()
    protected_server.load(
        [
            patient("a"),
            patient("b"),
            observation("a-1", "a"),
            observation("b-1", "b"),
            observation("a-2", "a"),
        ]
    )
    return protected_server


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": FHIR_JSON}


def test_requests_without_a_valid_token_are_refused(
    protected: FhirTestServer, introspection: Introspection
) -> None:
    base = protected.base_url
    missing = requests.get(f"{base}/Patient/a", timeout=10)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert missing.json()["resourceType"] == "OperationOutcome"
    invalid = requests.get(f"{base}/Patient/a", headers=bearer("expired-token"), timeout=10)
    assert invalid.status_code == 401
    assert 'error="invalid_token"' in invalid.headers["WWW-Authenticate"]
    assert introspection.requests[-1]["token"] == ["expired-token"]
    metadata = requests.get(f"{base}/metadata", timeout=10)
    assert metadata.status_code == 200
    security = metadata.json()["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"


def test_valid_tokens_are_accepted(protected: FhirTestServer) -> None:
    base = protected.base_url
    for token in ("system-token", "fixed-token"):
        response = requests.get(f"{base}/Observation?patient=b", headers=bearer(token), timeout=10)
        assert response.status_code == 200, token
        assert [e["resource"]["id"] for e in response.json()["entry"]] == ["b-1"]
    manifest = run_export(f"{base}/Patient/$export?_type=Patient", bearer("system-token"))
    assert manifest["requiresAccessToken"] is True
    url = manifest["output"][0]["url"]
    assert requests.get(url, timeout=10).status_code == 401
    assert ids(download(manifest, bearer("system-token"))["Patient"]) == ["a", "b"]


def test_a_patient_token_sees_only_that_patient(protected: FhirTestServer) -> None:
    base = protected.base_url
    token = bearer("patient-a-token")
    assert requests.get(f"{base}/Patient/a", headers=token, timeout=10).status_code == 200
    assert requests.get(f"{base}/Observation/a-1", headers=token, timeout=10).status_code == 200
    assert requests.get(f"{base}/Patient/b", headers=token, timeout=10).status_code == 403
    assert requests.get(f"{base}/Observation/b-1", headers=token, timeout=10).status_code == 403
    assert (
        requests.get(f"{base}/Observation?patient=b", headers=token, timeout=10).status_code == 403
    )
    assert (
        requests.get(f"{base}/Observation?patient=a,b", headers=token, timeout=10).status_code
        == 403
    )
    own = requests.get(f"{base}/Observation?patient=a", headers=token, timeout=10).json()
    assert sorted(e["resource"]["id"] for e in own["entry"]) == ["a-1", "a-2"]
    unfiltered = requests.get(f"{base}/Observation", headers=token, timeout=10).json()
    assert unfiltered["total"] == 2
    patients = requests.get(f"{base}/Patient", headers=token, timeout=10).json()
    assert [e["resource"]["id"] for e in patients["entry"]] == ["a"]

    write_own = requests.post(
        f"{base}/Observation", json=observation("a-3", "a"), headers=token | HEADERS, timeout=10
    )
    assert write_own.status_code == 201
    write_other = requests.post(
        f"{base}/Observation", json=observation("b-3", "b"), headers=token | HEADERS, timeout=10
    )
    assert write_other.status_code == 403
    move_away = [{"op": "replace", "path": "/subject/reference", "value": "Patient/b"}]
    patch_headers = token | {"Content-Type": "application/json-patch+json"}
    moved = requests.patch(
        f"{base}/Observation/a-1", json=move_away, headers=patch_headers, timeout=10
    )
    assert moved.status_code == 403
    unchanged = requests.get(f"{base}/Observation/a-1", headers=token, timeout=10).json()
    assert unchanged["subject"] == {"reference": "Patient/a"}
    export = requests.get(
        f"{base}/Patient/$export", headers=token | {"Prefer": "respond-async"}, timeout=10
    )
    assert export.status_code == 403


def test_smart_endpoints_are_discoverable(
    protected: FhirTestServer, introspection: Introspection
) -> None:
    base = protected.base_url
    config = requests.get(f"{base}/.well-known/smart-configuration", timeout=10)
    assert config.status_code == 200
    assert config.json()["authorization_endpoint"] == AUTHORIZE_URL
    assert config.json()["token_endpoint"] == TOKEN_URL
    assert config.json()["code_challenge_methods_supported"] == ["S256"]
    security = requests.get(f"{base}/metadata", timeout=10).json()["rest"][0]["security"]
    oauth_uris = {e["url"]: e["valueUri"] for e in security["extension"][0]["extension"]}
    assert oauth_uris == {
        "authorize": AUTHORIZE_URL,
        "token": TOKEN_URL,
        "introspect": introspection.url,
    }
