"""The onboarding survey as one self-contained HTML page: tables and small inline SVG charts.

No script, no stylesheet or font from elsewhere (the page opens offline and from a ticket); it is
rendered from the survey's JSON (fhir_cml.fhir.survey), which holds counts and codes only.
"""

from __future__ import annotations

from html import escape
from typing import Any, Final

_STYLE: Final = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1b1f23;max-width:70rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{border-bottom:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#57606a}code{font-size:.9em}
"""


def render_survey(data: dict[str, Any]) -> str:
    """The page for a survey's JSON."""
    rows = data.get("rows") or []
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>fhir-cml survey</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>What this EHR sends, and what fhir-cml reads</h1>",
        _summary(data),
        "<h2>By resource type</h2>",
        _by_type(data.get("byType") or []),
        "<h2>Readable share per code</h2>",
        _share_chart(rows),
        "<h2>Results per month</h2>",
        _month_chart(data.get("resultsPerMonth") or []),
        "<h2>Per code, unit and value shape</h2>",
        _rows(rows, data.get("reasons") or {}),
        "<h2>Draft ConceptMap</h2>",
        "<p>The local codes and units not read, as a ConceptMap to complete (targets are "
        "<code>unmatched</code> until filled in) and pass back with <code>--concept-map</code>: "
        "<code>conceptmap-draft.json</code> next to this page.</p>",
        "<p class='muted'>Counts, codes, units and value shapes only: no patient identifier, "
        "date of a single result or value is in this report.</p>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _summary(data: dict[str, Any]) -> str:
    patients = data.get("patients") or {}
    total, read = int(data.get("resources") or 0), int(data.get("read") or 0)
    share = f"{100 * read / total:.0f} %" if total else "-"
    return (
        f"<p>{int(patients.get('cml') or 0)} CML patients "
        f"({int(patients.get('withoutCmlEvidence') or 0)} others without CML evidence); "
        f"{total} resources, of which fhir-cml reads {read} ({share}).</p>"
    )


def _by_type(items: list[dict[str, Any]]) -> str:
    body = "".join(
        f"<tr><td>{escape(str(i['resourceType']))}</td><td class='n'>{int(i['count'])}</td>"
        f"<td class='n'>{int(i['read'])}</td></tr>"
        for i in items
    )
    return f"<table><tr><th>type</th><th>resources</th><th>read</th></tr>{body}</table>"


def _share_chart(rows: list[dict[str, Any]], limit: int = 25) -> str:
    """Horizontal bars: each code's resources, the read part filled."""
    shown = sorted(rows, key=lambda r: -int(r["count"]))[:limit]
    if not shown:
        return "<p class='muted'>No resources.</p>"
    width, bar, label_w = 720, 16, 300
    height = len(shown) * (bar + 6) + 4
    most = max(int(r["count"]) for r in shown) or 1
    items = []
    for n, row in enumerate(shown):
        y = 2 + n * (bar + 6)
        full = (width - label_w - 60) * int(row["count"]) / most
        part = full * (int(row["read"]) / int(row["count"]) if int(row["count"]) else 0)
        label = escape(_label(row))
        items.append(
            f"<text x='0' y='{y + 12}' font-size='12'>{label}</text>"
            f"<rect x='{label_w}' y='{y}' width='{full:.1f}' height='{bar}' fill='#d0d7de'/>"
            f"<rect x='{label_w}' y='{y}' width='{part:.1f}' height='{bar}' fill='#2da44e'/>"
            f"<text x='{label_w + full + 4:.1f}' y='{y + 12}' font-size='12'>"
            f"{int(row['read'])}/{int(row['count'])}</text>"
        )
    return (
        f"<svg role='img' aria-label='Readable share per code' width='{width}' "
        f"height='{height}' viewBox='0 0 {width} {height}' xmlns='http://www.w3.org/2000/svg'>"
        + "".join(items)
        + "</svg><p class='muted'>Green: read by fhir-cml; grey: not read.</p>"
    )


def _month_chart(months: list[dict[str, Any]]) -> str:
    if not months:
        return "<p class='muted'>No dated results.</p>"
    width, height, base = 720, 160, 130
    step = width / len(months)
    most = max(int(m["count"]) for m in months) or 1
    items = []
    for n, month in enumerate(months):
        x = n * step
        h = (base - 10) * int(month["count"]) / most
        r = (base - 10) * int(month["read"]) / most
        items.append(
            f"<rect x='{x:.1f}' y='{base - h:.1f}' width='{max(step - 1, 1):.1f}' "
            f"height='{h:.1f}' fill='#d0d7de'><title>{escape(str(month['month']))}: "
            f"{int(month['count'])} results, {int(month['read'])} read</title></rect>"
            f"<rect x='{x:.1f}' y='{base - r:.1f}' width='{max(step - 1, 1):.1f}' "
            f"height='{r:.1f}' fill='#2da44e'/>"
        )
    first, last = escape(str(months[0]["month"])), escape(str(months[-1]["month"]))
    items.append(f"<text x='0' y='{base + 18}' font-size='12'>{first}</text>")
    items.append(
        f"<text x='{width}' y='{base + 18}' font-size='12' text-anchor='end'>{last}</text>"
    )
    return (
        f"<svg role='img' aria-label='Results per month' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' xmlns='http://www.w3.org/2000/svg'>"
        + "".join(items)
        + "</svg>"
    )


def _rows(rows: list[dict[str, Any]], reasons: dict[str, str]) -> str:
    body = []
    for row in rows:
        why = "; ".join(
            f"{escape(reasons.get(code, code))} ({int(n)})"
            for code, n in (row.get("notRead") or {}).items()
        )
        body.append(
            f"<tr><td>{escape(str(row['resourceType']))}</td><td>{escape(_label(row))}</td>"
            f"<td>{escape(str(row.get('display') or ''))}</td>"
            f"<td>{escape(str(row.get('unit') or ''))}</td>"
            f"<td>{escape(str(row.get('valueShape') or ''))}</td>"
            f"<td class='n'>{int(row['count'])}</td><td class='n'>{int(row['read'])}</td>"
            f"<td>{why}</td></tr>"
        )
    return (
        "<table><tr><th>type</th><th>code</th><th>display</th><th>unit</th><th>value</th>"
        "<th>resources</th><th>read</th><th>why not read</th></tr>" + "".join(body) + "</table>"
    )


def _label(row: dict[str, Any]) -> str:
    system = str(row.get("system") or "")
    short = {
        "http://loinc.org": "LOINC",
        "http://snomed.info/sct": "SNOMED",
        "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
        "http://www.whocc.no/atc": "ATC",
    }.get(system, system)
    return f"{short} {row.get('code') or ''}".strip() or "(no code)"
