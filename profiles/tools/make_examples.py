"""Example instances for the FHIR package: one at least per profile, each what fhir-cml reads or
writes, never hand-made.

- What fhir-cml reads (bcr-abl1-result, imatinib-trough, kinase-domain-mutation,
  tki-medication-statement, tki-medication-request): resources of the example patients in
  examples/ that claim them.
- What it writes (cml-risk-assessment, cml-care-plan, cml-service-request,
  cml-medication-request, cml-request-group, cml-provenance, cml-assess-result,
  cml-assess-output): the engine's output for the example patient failing imatinib with a low
  trough (examples/04-failure-low-trough.json) as of 2025-06-30 under ELN 2020, written at a
  fixed moment.
  The written resources get ids and refer to each other as Type/id, as on a server; the result
  Bundle keeps the urn:uuid fullUrls of a $cml-assess answer.

Usage: python make_examples.py <out-dir>   (one JSON file per example, <Type>-<id>.json)
"""

from __future__ import annotations

import copy
import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

from fhir_cml.domain import Guideline, assess
from fhir_cml.fhir import canonical as c
from fhir_cml.fhir import inbound
from fhir_cml.fhir.outbound import result_bundle
from fhir_cml.fhir.outbound.requests import request_key

ROOT: Final = Path(__file__).resolve().parents[2]
EXAMPLES: Final = ROOT / "examples"
AS_OF: Final = date(2025, 6, 30)
RECORDED: Final = datetime(2025, 6, 30, 14, 5, 9, tzinfo=UTC)
# Profile -> (example patient file, id of the resource that shows it best).
READ: Final = {
    c.PROFILE_BCR_ABL1: ("01-optimal-responder.json", "cml-optimal-pcr-2025-06-16"),
    c.PROFILE_TKI_STATEMENT: ("01-optimal-responder.json", "cml-optimal-imatinib"),
    c.PROFILE_TKI_REQUEST: ("21-us-core-medication-requests.json", "cml-orders-dasatinib-100-1"),
    c.PROFILE_TROUGH: ("04-failure-low-trough.json", None),
    c.PROFILE_MUTATION: ("03-failure-t315i.json", None),
}
# Failure on imatinib with a low trough: every kind of proposal (a switch with its options, a dose
# escalation with the next step, a PCR).
WRITTEN_FROM: Final = "04-failure-low-trough.json"
WRITTEN_IDS: Final = {
    "RiskAssessment": "example-reading",
    "CarePlan": "example-suggestions",
    "Provenance": "example-provenance",
    "OperationOutcome": "example-issues",
}


def read_examples() -> list[dict[str, Any]]:
    out = []
    for profile, (name, rid) in READ.items():
        bundle = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
        claiming = [
            e["resource"]
            for e in bundle["entry"]
            if profile in e["resource"].get("meta", {}).get("profile", [])
            and (rid is None or e["resource"]["id"] == rid)
        ]
        if not claiming:
            raise SystemExit(f"{name}: no resource {rid or ''} claims {profile}")
        resource = copy.deepcopy(claiming[-1])
        # Only this package's profiles: a server loading it knows no other guide's.
        resource["meta"]["profile"] = [
            p for p in resource["meta"]["profile"] if p.startswith(c.BASE)
        ]
        out.append(resource)
    return out


def written_examples() -> list[dict[str, Any]]:
    loaded = inbound.load_paths([EXAMPLES / WRITTEN_FROM], inbound.MappingOptions(now=RECORDED))
    [record] = loaded.records
    bundle = result_bundle([assess(record, AS_OF, Guideline.ELN2020)], RECORDED, loaded.issues)
    ids = {e["fullUrl"]: _example_id(e["resource"]) for e in bundle["entry"]}
    resources = []
    for entry in bundle["entry"]:
        resource = _with_references(copy.deepcopy(entry["resource"]), ids)
        rid = ids[entry["fullUrl"]].split("/")[1]
        resource = {"resourceType": resource["resourceType"], "id": rid, **resource}
        if resource["resourceType"] != "OperationOutcome":
            resources.append(resource)
    parameters = {
        "resourceType": "Parameters",
        "id": "example-output",
        "meta": {"profile": [c.PROFILE_ASSESS_OUTPUT]},
        "parameter": [{"name": "return", "resource": bundle}],
    }
    result = {
        "resourceType": "Bundle",
        "id": "example-result",
        "meta": {"profile": [c.PROFILE_ASSESS_RESULT]},
        **bundle,
    }
    return [*resources, result, parameters]


def _example_id(resource: dict[str, Any]) -> str:
    """``Type/id`` of an example: the type's name, or for a request what it proposes."""
    kind = resource["resourceType"]
    key = request_key(resource)
    if key is not None:
        return f"{kind}/example-{key.partition('-')[2]}"
    return f"{kind}/{WRITTEN_IDS[kind]}"


def _with_references(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {
            k: ids.get(v, v)
            if k == "reference" and isinstance(v, str)
            else _with_references(v, ids)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_with_references(v, ids) for v in value]
    return value


def examples() -> dict[str, dict[str, Any]]:
    """File name -> example resource."""
    everything = [*read_examples(), *written_examples()]
    return {f"{r['resourceType']}-{r['id']}.json": r for r in everything}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.json"):
        stale.unlink()
    made = examples()
    for name, resource in made.items():
        (out / name).write_text(
            json.dumps(resource, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    print(f"wrote {len(made)} examples to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
