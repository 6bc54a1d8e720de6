"""The course chart: log-scale positions, how each kind of result is drawn, the milestone
targets, the therapy lane and the trough panel, read back from the SVG itself."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from datetime import date

import pytest

from fhir_cml.domain import Guideline, assess
from fhir_cml.domain.model import (
    BcrAbl1Result,
    CytogeneticResult,
    MutationResult,
    PatientRecord,
    TkiStatement,
    TroughLevel,
)
from fhir_cml.domain.vocabulary import ControlGene, MedicationStatus, StopReason, Tki, Transcript
from fhir_cml.web.smart.chart import (
    NARROW,
    ChartData,
    Marker,
    chart_data,
    month_ticks,
    render_svg,
    scales,
)

SVG = "{http://www.w3.org/2000/svg}"
START = date(2023, 1, 2)
AS_OF = date(2025, 6, 30)


def result(
    day: date,
    percent: float | None,
    *,
    copies: int | None = 60_000,
    detectable: bool = True,
    on_is: bool = True,
    raw: float | None = None,
    factor: float | None = None,
    gene: ControlGene = ControlGene.ABL1,
    transcript: Transcript | None = None,
) -> BcrAbl1Result:
    return BcrAbl1Result(
        ref=f"Observation/pcr-{day.isoformat()}",
        date=day,
        detectable=detectable,
        is_percent=percent,
        on_is=on_is,
        raw_percent=raw if raw is not None else percent,
        conversion_factor=factor,
        control_gene=gene,
        control_copies=copies,
        transcript=transcript,
    )


def record(*results: BcrAbl1Result, tki: tuple[TkiStatement, ...] | None = None) -> PatientRecord:
    statements = tki or (
        TkiStatement(
            "MedicationStatement/ima",
            Tki.IMATINIB,
            MedicationStatus.ACTIVE,
            START,
            daily_dose_mg=400,
        ),
    )
    return PatientRecord(
        patient="Patient/p",
        bcr_abl1=tuple(results),
        tki=statements,
        troughs=(TroughLevel("Observation/trough", date(2023, 7, 3), 812.0, hours_since_dose=24),),
    )


def draw(
    rec: PatientRecord, guideline: Guideline = Guideline.ELN2020
) -> tuple[ET.Element, ChartData]:
    assessment = assess(rec, AS_OF, guideline)
    data = chart_data(rec, assessment)
    return ET.fromstring(render_svg(data)), data


def results_of(root: ET.Element, kind: Marker) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if g.get("class", "").split() == ["result", kind.value]]


def marker_y(group: ET.Element) -> float:
    """The y of a marker's centre: a circle's cy, or the middle of a path's y values."""
    circle = group.find(f"{SVG}circle")
    if circle is not None:
        return float(circle.get("cy", "nan"))
    path = group.find(f"{SVG}path")
    assert path is not None
    numbers = [
        float(n)
        for n in path.get("d", "").replace("M", " ").replace("L", " ").replace("Z", " ").split()
    ]
    ys = numbers[1::2]
    return (min(ys) + max(ys)) / 2


def test_the_log_scale_gives_every_decade_the_same_height() -> None:
    rec = record(result(date(2023, 4, 3), 8.0), result(date(2023, 7, 3), 0.9))
    _, data = draw(rec)
    s = scales(data)
    decade = s.y(10) - s.y(100)
    assert decade > 0
    for upper in (10.0, 1.0, 0.1, 0.01):
        assert s.y(upper / 10) - s.y(upper) == pytest.approx(decade)
    # A value between decades sits where its logarithm says: 0.0032 % is half a decade below 0.01.
    assert s.y(0.0032) - s.y(0.01) == pytest.approx(
        decade * (math.log10(0.01) - math.log10(0.0032))
    )


def test_detected_results_sit_at_their_is_value_and_reference_lines_at_theirs() -> None:
    rec = record(result(date(2023, 4, 3), 8.0), result(date(2024, 1, 8), 0.1))
    root, data = draw(rec)
    s = scales(data)
    detected = results_of(root, Marker.DETECTED)
    assert [g.get("data-date") for g in detected] == ["2023-04-03", "2024-01-08"]
    assert marker_y(detected[0]) == pytest.approx(s.y(8.0), abs=0.01)
    assert marker_y(detected[1]) == pytest.approx(s.y(0.1), abs=0.01)
    lines = {
        line.get("data-level"): float(line.get("y1", "nan"))
        for line in root.iter(f"{SVG}line")
        if line.get("class") == "reference"
    }
    assert set(lines) == {"MMR", "MR4", "MR4.5"}
    assert lines["MMR"] == pytest.approx(s.y(0.1), abs=0.01)
    assert lines["MR4"] == pytest.approx(s.y(0.01), abs=0.01)
    assert lines["MR4.5"] == pytest.approx(s.y(0.0032), abs=0.01)
    # The MMR result lies on the MMR line.
    assert marker_y(detected[1]) == pytest.approx(lines["MMR"], abs=0.01)


def test_an_undetectable_result_is_drawn_at_the_level_its_copies_support() -> None:
    rec = record(
        result(date(2024, 1, 8), 0.05),
        result(date(2024, 7, 8), None, detectable=False, copies=12_000),  # MR4
        result(date(2025, 1, 6), None, detectable=False, copies=61_000),  # MR4.5
        result(date(2025, 6, 2), None, detectable=False, copies=8_000),  # too few
    )
    root, data = draw(rec)
    s = scales(data)
    undetectable = results_of(root, Marker.UNDETECTABLE)
    assert [g.get("data-value") for g in undetectable] == ["0.01", "0.0032"]
    assert marker_y(undetectable[0]) == pytest.approx(s.y(0.01), abs=0.01)
    assert marker_y(undetectable[1]) == pytest.approx(s.y(0.0032), abs=0.01)
    # Undetectable results are open triangles, not the filled circles of detected ones.
    for g in undetectable:
        assert g.find(f"{SVG}circle") is None
        path = g.find(f"{SVG}path")
        assert path is not None
        assert path.get("fill") == "#ffffff"
    [inadequate] = results_of(root, Marker.INADEQUATE)
    assert float(inadequate.get("data-value", "nan")) == pytest.approx(100 / 8_000)
    assert marker_y(inadequate) == pytest.approx(s.y(100 / 8_000), abs=0.01)
    title = inadequate.find(f"{SVG}title")
    assert title is not None
    assert "too few control-gene copies" in (title.text or "")
    points = {p.date: p for p in data.points}
    assert points[date(2025, 1, 6)].depth == "MR4.5"
    assert points[date(2025, 1, 6)].used
    assert not points[date(2025, 6, 2)].used


def test_results_not_on_the_is_are_marked_not_used_and_converted_ones_are_used() -> None:
    rec = record(
        result(date(2023, 4, 3), None, on_is=False, raw=12.0),
        result(date(2023, 7, 3), 0.52, raw=1.0, factor=0.52),
        result(date(2023, 10, 2), 5.0, transcript=Transcript.E1A2),
    )
    root, data = draw(rec)
    not_used = results_of(root, Marker.NOT_USED)
    assert [g.get("data-date") for g in not_used] == ["2023-04-03", "2023-10-02"]
    assert all(g.find(f"{SVG}title") is not None for g in not_used)
    notes = [p.note for p in data.points]
    assert "not on the International Scale" in notes[0]
    assert "cannot be reported on the IS" in notes[2]
    [converted] = results_of(root, Marker.CONVERTED)
    assert converted.get("data-value") == "0.52"
    assert [p.used for p in data.points] == [False, True, False]


def test_milestone_targets_are_drawn_at_3_6_and_12_months() -> None:
    rec = record(result(date(2023, 4, 3), 8.0))
    root, data = draw(rec)
    s = scales(data)
    targets = [line for line in root.iter(f"{SVG}line") if line.get("class") == "milestone-target"]
    found = [
        (float(t.get("data-months", "nan")), float(t.get("data-value", "nan"))) for t in targets
    ]
    assert found == [(3.0, 10.0), (6.0, 1.0), (12.0, 0.1)]
    for t, (months, value) in zip(targets, found, strict=True):
        x1, x2 = float(t.get("x1", "nan")), float(t.get("x2", "nan"))
        assert (x1 + x2) / 2 == pytest.approx(s.x(months), abs=0.01)
        assert float(t.get("y1", "nan")) == pytest.approx(s.y(value), abs=0.01)


def test_the_cytogenetic_era_guideline_has_its_own_molecular_target() -> None:
    rec = record(result(date(2023, 4, 3), 8.0))
    root, _ = draw(rec, Guideline.ELN2009)
    targets = [line for line in root.iter(f"{SVG}line") if line.get("class") == "milestone-target"]
    assert [(t.get("data-months"), t.get("data-value")) for t in targets] == [("18", "0.1")]


def test_dose_changes_holds_and_stops_share_the_time_axis() -> None:
    tki = (
        TkiStatement(
            "MedicationStatement/a",
            Tki.IMATINIB,
            MedicationStatus.COMPLETED,
            START,
            date(2023, 9, 30),
            daily_dose_mg=400,
            stop_reason=StopReason.DOSE_CHANGE,
        ),
        TkiStatement(
            "MedicationStatement/b",
            Tki.IMATINIB,
            MedicationStatus.STOPPED,
            date(2023, 10, 1),
            date(2025, 1, 13),
            daily_dose_mg=600,
            stop_reason=StopReason.TFR,
        ),
    )
    rec = record(result(date(2023, 4, 3), 8.0), tki=tki)
    root, data = draw(rec)
    s = scales(data)
    bars = [r for r in root.iter(f"{SVG}rect") if "therapy-bar" in r.get("class", "")]
    assert len(bars) == 2
    second = data.bars[1]
    assert float(bars[1].get("x", "nan")) == pytest.approx(s.x(second.start_months), abs=0.01)
    changes = [line for line in root.iter(f"{SVG}line") if line.get("class") == "therapy-change"]
    assert [float(c.get("x1", "nan")) for c in changes] == pytest.approx(
        [s.x(second.start_months), s.x(second.end_months)], abs=0.01
    )
    texts = "".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "stopped (tfr)" in texts
    assert "imatinib 600 mg/day" in texts


def test_troughs_are_drawn_against_the_1000_ng_ml_line() -> None:
    rec = record(result(date(2023, 4, 3), 8.0))
    root, data = draw(rec)
    s = scales(data)
    [line] = [x for x in root.iter(f"{SVG}line") if x.get("class") == "trough-target"]
    assert float(line.get("y1", "nan")) == pytest.approx(s.y_trough(1000), abs=0.01)
    [trough] = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "trough"]
    centre = float(trough.get("y", "nan")) + 4.5
    assert centre == pytest.approx(s.y_trough(812), abs=0.01)
    assert centre > float(line.get("y1", "nan"))  # below the line: under 1000 ng/mL


def test_the_figure_is_described_for_screen_readers() -> None:
    rec = record(result(date(2023, 4, 3), 8.0), result(date(2023, 7, 3), 0.9))
    root, _ = draw(rec)
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "chart-title chart-desc"
    title = root.find(f"{SVG}title")
    desc = root.find(f"{SVG}desc")
    assert title is not None
    assert "log scale" in (title.text or "")
    assert desc is not None
    assert "2 BCR::ABL1 results" in (desc.text or "")
    assert "0.9 % IS" in (desc.text or "")


def test_text_from_the_record_is_escaped() -> None:
    tki = (
        TkiStatement(
            'MedicationStatement/"><script>',
            Tki.IMATINIB,
            MedicationStatus.ACTIVE,
            START,
            daily_dose_mg=400,
        ),
    )
    rec = PatientRecord(
        patient="Patient/p",
        bcr_abl1=(BcrAbl1Result('Observation/<b>"x"</b>', date(2023, 4, 3), True, 8.0, True, 8.0),),
        tki=tki,
    )
    svg = render_svg(chart_data(rec, assess(rec, AS_OF, Guideline.ELN2020)))
    assert "<script>" not in svg
    assert "<b>" not in svg
    ET.fromstring(svg)  # still well-formed


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (0.0, 14.0, [0, 3, 6, 9, 12]),
        (-2.0, 40.0, [0, 6, 12, 18, 24, 30, 36]),
        (0, 130, list(range(0, 131, 24))),
    ],
)
def test_month_ticks_stay_readable(lo: float, hi: float, expected: list[int]) -> None:
    assert month_ticks(lo, hi) == [float(m) for m in expected]


def test_a_patient_without_results_or_therapy_still_gets_a_chart() -> None:
    rec = PatientRecord(patient="Patient/p", tki=())
    data = chart_data(rec, assess(rec, AS_OF, Guideline.ELN2020))
    root = ET.fromstring(render_svg(data))
    assert data.points == ()
    assert data.origin == AS_OF
    texts = "".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "No TKI course recorded" in texts
    assert "first result (no TKI start known)" in texts


# --- the chart tells the truth at a glance -------------------------------------------------------


def groups(root: ET.Element, cls: str) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if cls in g.get("class", "").split()]


def test_results_not_on_the_is_are_kept_off_the_is_axis() -> None:
    rec = record(
        result(date(2023, 4, 3), 8.0),
        result(date(2023, 7, 3), None, on_is=False, raw=37.0),  # would sit at 37 % on the axis
        result(date(2023, 10, 2), 0.5),
    )
    root, data = draw(rec)
    [strip] = groups(root, "not-on-is")
    [results] = groups(root, "results")
    drawn = [g for g in results.iter(f"{SVG}g") if "result" in g.get("class", "").split()]
    assert [g.get("data-date") for g in drawn] == ["2023-04-03", "2023-10-02"]
    [off_axis] = [g for g in strip.iter(f"{SVG}g") if "result" in g.get("class", "")]
    assert off_axis.get("data-date") == "2023-07-03"
    s = scales(data)
    assert marker_y(off_axis) > s.main_bottom  # below the IS panel, not at 37 %
    assert "not on the IS" in "".join(t.text or "" for t in strip.iter(f"{SVG}text"))


def test_undetectable_results_break_the_trend_line() -> None:
    rec = record(
        result(date(2023, 4, 3), 8.0),
        result(date(2023, 7, 3), 0.9),
        result(date(2023, 10, 2), None, detectable=False, copies=40_000),
        result(date(2024, 1, 2), 0.05),
        result(date(2024, 4, 1), 0.04),
    )
    root, _ = draw(rec)
    lines = [p for p in root.iter(f"{SVG}polyline") if p.get("class") == "trend"]
    assert [len((p.get("points") or "").split()) for p in lines] == [2, 2]  # not 5: not joined
    [below] = results_of(root, Marker.UNDETECTABLE)
    title = below.find(f"{SVG}title")
    assert title is not None
    assert "at or below MR4.5" in (title.text or "")


def test_levels_that_are_not_valid_troughs_are_marked() -> None:
    rec = PatientRecord(
        patient="Patient/p",
        bcr_abl1=(result(date(2023, 4, 3), 8.0),),
        tki=record().tki,
        troughs=(
            TroughLevel("Observation/t1", date(2023, 7, 3), 812.0, hours_since_dose=24),
            TroughLevel("Observation/t2", date(2023, 10, 2), 2400.0, hours_since_dose=2),
        ),
    )
    root, data = draw(rec)
    assert [t.valid for t in data.troughs] == [True, False]
    assert "2 h after the last dose" in data.troughs[1].why_not
    rects = [r for r in root.iter(f"{SVG}rect") if "trough" in r.get("class", "").split()]
    assert [r.get("class") for r in rects] == ["trough", "trough not-trough"]
    assert rects[0].get("fill") != "#ffffff"
    assert rects[1].get("fill") == "#ffffff"  # hollow
    title = rects[1].find(f"{SVG}title")
    assert title is not None
    assert "not a valid trough" in (title.text or "")


def test_mutations_are_flagged_at_their_dates() -> None:
    base = record(result(date(2023, 4, 3), 8.0), result(date(2024, 1, 2), 3.0))
    rec = PatientRecord(
        patient=base.patient,
        bcr_abl1=base.bcr_abl1,
        tki=base.tki,
        mutations=(
            MutationResult("Observation/m0", date(2023, 7, 3), False),
            MutationResult("Observation/m1", date(2024, 1, 2), True, "T315I"),
        ),
    )
    root, _ = draw(rec)
    flagged = [g for g in groups(root, "mutation") if "detected" in g.get("class", "")]
    assert [g.get("data-date") for g in flagged] == ["2024-01-02"]
    assert "T315I" in "".join(t.text or "" for t in flagged[0].iter(f"{SVG}text"))
    assert len(groups(root, "none-found")) == 1
    assert "T315I on 2024-01-02" in ET.tostring(root, encoding="unicode")


def test_cytogenetic_results_get_a_panel_of_their_own() -> None:
    base = record(result(date(2023, 4, 3), 8.0))
    assert groups(draw(base)[0], "cytogenetics") == []
    rec = PatientRecord(
        patient=base.patient,
        bcr_abl1=base.bcr_abl1,
        tki=base.tki,
        cytogenetics=(
            CytogeneticResult("Observation/c1", date(2023, 4, 3), 60.0),
            CytogeneticResult("Observation/c2", date(2023, 7, 3), 0.0),
        ),
    )
    root, data = draw(rec, Guideline.ELN2009)
    [panel] = groups(root, "cytogenetics")
    points = [g for g in panel.iter(f"{SVG}g") if g.get("class") == "cyto"]
    assert [g.get("data-value") for g in points] == ["60", "0"]
    s = scales(data)
    ys = [float(r.get("y", "nan")) + 5 for g in points for r in g.iter(f"{SVG}rect")]
    assert ys == pytest.approx([s.y_cyto(60), s.y_cyto(0)], abs=0.01)


def test_the_axis_shows_calendar_dates_with_months_on_therapy() -> None:
    root, data = draw(record(result(date(2023, 4, 3), 8.0)))
    dates = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "tick-date"]
    months = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "tick-months"]
    assert dates[:3] == ["2023-01", "2023-07", "2024-01"]  # TKI start 2023-01-02
    assert months[:3] == ["0 m", "6 m", "12 m"]
    assert data.date_at(6.0).strftime("%Y-%m") == "2023-07"


def test_the_months_after_a_tfr_stop_have_their_own_scale() -> None:
    tki = (
        TkiStatement(
            "MedicationStatement/ima",
            Tki.IMATINIB,
            MedicationStatus.STOPPED,
            START,
            date(2025, 1, 13),
            daily_dose_mg=400,
            stop_reason=StopReason.TFR,
        ),
    )
    monthly = [date(2025, m, 14) for m in range(2, 7)]
    rec = record(
        result(date(2023, 4, 3), 8.0),
        result(date(2024, 12, 20), None, detectable=False, copies=120_000),
        *(result(d, 0.004) for d in monthly),
        tki=tki,
    )
    root, data = draw(rec)
    assert data.tfr_stop == date(2025, 1, 13)
    [inset] = groups(root, "tfr-inset")
    shown = [g.get("data-date") for g in inset.iter(f"{SVG}g") if g is not inset]
    assert shown == ["2024-12-20", *(d.isoformat() for d in monthly)]
    # The five monthly results spread over the inset's width, not squeezed at the end.
    xs = [float(c.get("cx", "nan")) for g in inset.iter(f"{SVG}g") for c in g.iter(f"{SVG}circle")]
    s = scales(data)
    assert xs[-1] - xs[0] > 0.5 * (s.plot_right - s.plot_left)
    assert "After the TKI stop on 2025-01-13" in "".join(
        t.text or "" for t in inset.iter(f"{SVG}text")
    )


def test_milestone_zones_come_from_one_seam_and_are_drawn_per_milestone() -> None:
    from fhir_cml.domain.vocabulary import ElnStatus
    from fhir_cml.web.smart.chart import Zone, milestone_zones

    rec = record(result(date(2023, 4, 3), 8.0))
    assessment = assess(rec, AS_OF, Guideline.ELN2020)
    assert chart_data(rec, assessment).zones == milestone_zones(Guideline.ELN2020)
    zones = (
        Zone(1.5, 4.5, ElnStatus.OPTIMAL, 0.0001, 10.0),
        Zone(1.5, 4.5, ElnStatus.FAILURE, 10.0, 1000.0),
    )
    data = chart_data(rec, assessment, zones=zones)
    root = ET.fromstring(render_svg(data))
    s = scales(data)
    rects = [r for r in root.iter(f"{SVG}rect") if "zone" in r.get("class", "").split()]
    assert [r.get("data-status") for r in rects] == ["optimal", "failure"]
    optimal, failure = rects
    assert float(optimal.get("x", "nan")) == pytest.approx(s.x(1.5), abs=0.01)
    assert float(optimal.get("y", "nan")) == pytest.approx(s.y(10.0), abs=0.01)
    assert float(failure.get("y", "nan")) == pytest.approx(s.y(100.0), abs=0.01)  # clipped


def test_the_narrow_layout_draws_the_same_results() -> None:
    rec = record(result(date(2023, 4, 3), 8.0), result(date(2023, 7, 3), 0.9))
    data = chart_data(rec, assess(rec, AS_OF, Guideline.ELN2020))
    wide = ET.fromstring(render_svg(data))
    narrow = ET.fromstring(render_svg(data, NARROW))
    assert narrow.get("class") == "course-chart narrow"
    assert [g.get("data-date") for g in results_of(narrow, Marker.DETECTED)] == [
        g.get("data-date") for g in results_of(wide, Marker.DETECTED)
    ]
    assert narrow.get("viewBox", "").split()[2] == "420"
