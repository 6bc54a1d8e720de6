"""The onboarding survey, the site's ConceptMaps and $translate answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from fhir_cml.cli import main
from fhir_cml.ehr.terminology import matches
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir.inbound import MappingOptions
from fhir_cml.fhir.inbound.conceptmaps import concept_maps_from
from fhir_cml.fhir.survey import survey
from fhir_cml.reporting.survey import render_survey
from tests.unit.inbound_builders import NOW, bcr, condition, patient

LAB = "https://lab.example.org/codes"
SECRET_ID = "zz-secret-patient-4711"
SECRET_NAME = "Secretina Privata"
SECRET_MRN = "MRN-998877"


def site_data() -> list[dict[str, Any]]:
    person = patient(
        SECRET_ID,
        name=[{"family": SECRET_NAME}],
        identifier=[{"system": "urn:mrn", "value": SECRET_MRN}],
    )
    subject = f"Patient/{SECRET_ID}"
    local = {"coding": [{"system": LAB, "code": "BCRIS", "display": "BCR-ABL1 IS"}]}
    return [
        person,
        {**condition(), "subject": {"reference": subject}},
        bcr(0.0451, oid="known", subject=subject, effectiveDateTime="2024-03-17"),
        bcr(None, oid="local", subject=subject, code="x", effectiveDateTime="2024-04-11")
        | {"code": local, "valueString": "0,0437 %"},
        bcr(None, oid="unit", subject=subject, effectiveDateTime="2024-05-13")
        | {"valueQuantity": {"value": 0.0389, "unit": "Prozent IS"}},
    ]


def test_survey_counts_what_is_read_and_why_not_and_drafts_a_concept_map() -> None:
    data = survey(site_data(), MappingOptions(now=NOW))
    obs = {
        (r["system"], r["code"], r["unit"]): r
        for r in data["rows"]
        if r["resourceType"] == "Observation"
    }
    assert obs[(c.LOINC, "69380-4", "%")]["read"] == 1
    assert obs[(LAB, "BCRIS", "")] == obs[(LAB, "BCRIS", "")] | {"count": 1, "read": 0}
    assert obs[(LAB, "BCRIS", "")]["notRead"] == {"not-a-code-read": 1}
    assert obs[(c.LOINC, "69380-4", "Prozent IS")]["notRead"] == {"unknown-unit": 1}
    assert [m["month"] for m in data["resultsPerMonth"]] == ["2024-03", "2024-04", "2024-05"]
    draft = data["draftConceptMap"]
    codes = {(g.get("source"), e["code"]) for g in draft["group"] for e in g["element"]}
    assert (LAB, "BCRIS") in codes
    assert (None, "Prozent IS") in codes


def test_a_completed_draft_passed_back_makes_the_codes_read(tmp_path: Path) -> None:
    draft = survey(site_data(), MappingOptions(now=NOW))["draftConceptMap"]
    for group in draft["group"]:
        for element in group["element"]:
            target = element["target"][0]
            target["equivalence"] = "equivalent"
            target["code"] = "69380-4" if group["target"] == c.LOINC else "%"
    path = tmp_path / "site.json"
    path.write_text(json.dumps(draft))
    maps = concept_maps_from([path])
    assert maps.problems == []
    data = survey(site_data(), MappingOptions(now=NOW, terminology=maps))
    assert data["read"] == data["resources"]


def test_the_survey_never_shows_identifiers_or_values(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    (export / "data.ndjson").write_text("\n".join(json.dumps(r) for r in site_data()))
    result = CliRunner().invoke(main, ["survey", str(export), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    written = [result.output] + [p.read_text() for p in (tmp_path / "out").iterdir()]
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "survey.html",
        "survey.json",
        "conceptmap-draft.json",
    }
    for text in written:
        for secret in (SECRET_ID, SECRET_NAME, SECRET_MRN, "0.0451", "0,0437", "0.0389", "17"):
            # The output directory's path is named in the message, and may hold any digits.
            assert secret not in text.replace("2024-", "").replace(str(tmp_path), ""), secret
    html = (tmp_path / "out" / "survey.html").read_text()
    assert "<svg" in html
    assert "http" not in html.replace("http://www.w3.org/2000/svg", "").split("<table")[0]


def test_the_survey_needs_exactly_one_source() -> None:
    assert CliRunner().invoke(main, ["survey"]).exit_code == 2


def test_render_escapes_what_the_ehr_sent() -> None:
    data = survey(site_data(), MappingOptions(now=NOW))
    data["rows"][0]["display"] = "<script>alert(1)</script>"
    assert "<script>" not in render_survey(data)


def test_equivalent_matches_of_a_translate_answer() -> None:
    answer = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "result", "valueBoolean": True},
            {
                "name": "match",
                "part": [
                    {"name": "equivalence", "valueCode": "equivalent"},
                    {"name": "concept", "valueCoding": {"system": c.LOINC, "code": "69380-4"}},
                ],
            },
            {
                "name": "match",
                "part": [
                    {"name": "equivalence", "valueCode": "wider"},
                    {"name": "concept", "valueCoding": {"system": c.LOINC, "code": "55147-3"}},
                ],
            },
        ],
    }
    assert matches(answer) == [(c.LOINC, "69380-4")]


def test_concept_maps_report_what_they_do_not_use(tmp_path: Path) -> None:
    path = tmp_path / "maps.json"
    path.write_text(
        json.dumps(
            {
                "resourceType": "ConceptMap",
                "url": "https://site/cm",
                "group": [
                    {
                        "source": LAB,
                        "target": c.LOINC,
                        "element": [
                            {
                                "code": "A",
                                "target": [{"code": "69380-4", "equivalence": "narrower"}],
                            }
                        ],
                    }
                ],
            }
        )
    )
    maps = concept_maps_from([path])
    assert maps.codes == {}
    assert "narrower" in maps.problems[0]


def test_translations_used_change_only_with_the_maps_a_patient_needs() -> None:
    """The sync fingerprint's part for the site's maps: only the codes the resources carry."""
    from fhir_cml.ehr.fetch import input_fingerprint
    from fhir_cml.fhir.inbound.conceptmaps import ConceptMaps, translations_used

    data = site_data()
    unmapped = ConceptMaps()
    other = ConceptMaps(codes={(LAB, "HB"): (c.LOINC, "718-7")})
    mapped = ConceptMaps(codes={(LAB, "BCRIS"): (c.LOINC, "69380-4")})
    unit = ConceptMaps(
        codes={(LAB, "BCRIS"): (c.LOINC, "69380-4")}, units={("", "Prozent IS"): "%"}
    )
    seen, digest = translations_used(data, unmapped)
    assert seen == data
    assert digest is not None  # asked about BCRIS: no answer yet
    assert translations_used(data, other)[1] == digest  # a map of a code nobody here carries
    seen, with_map = translations_used(data, mapped)
    assert with_map != digest
    assert translations_used(data, unit)[1] not in (digest, with_map)
    # The result under the local code counts in the fingerprint once it is mapped.
    assert input_fingerprint(seen) != input_fingerprint(data)
    assert data[3]["code"]["coding"] == [
        {"system": LAB, "code": "BCRIS", "display": "BCR-ABL1 IS"}
    ]  # the input is left untouched
    plain = [r for r in data if r["resourceType"] != "Observation" or r["id"] == "known"]
    plain[-1] = plain[-1] | {
        "valueQuantity": {"value": 1, "unit": "%", "code": "%", "system": c.UCUM}
    }
    assert translations_used(plain, mapped) == (plain, None)  # nothing local: no digest
