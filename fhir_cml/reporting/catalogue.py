"""docs/rules.md, written from the guideline tables, the rule catalogue and the rule settings.

``python -m fhir_cml.reporting.catalogue > docs/rules.md`` rewrites it; a test checks that the
committed file is what this writes, so the document never restates a threshold by hand.
"""

from __future__ import annotations

import sys

from fhir_cml.domain.config import DEFAULT_CONFIG, MEANING
from fhir_cml.domain.guidelines import TABLES, GuidelineTable
from fhir_cml.domain.guidelines.table import EVENT_LABELS, Row, band_text
from fhir_cml.domain.rule import RULES, RULESET_VERSION
from fhir_cml.domain.vocabulary import ElnStatus, Milestone
from fhir_cml.reporting.sources import citation_text, source_text

_WHEN = {Milestone.BASELINE: "Baseline", Milestone.ANY: "Any time"}
_HEAD = """# The rules

What fhir-cml reads, and from which paper: the guideline tables (the only place a milestone
threshold is written: `fhir_cml/domain/guidelines/`), every rule with its sources, and the values a
site may set. Written by `python -m fhir_cml.reporting.catalogue > docs/rules.md` from the code;
a test keeps it so. Ruleset version {version}.

Time runs from the start of first-line TKI. A milestone's window opens one month before it (the
`milestone_tolerance_months` setting) and lasts until the next one opens; in it the result nearest
the milestone is read, and a later result can only make the reading worse. After the last
milestone the "any time" row applies. The baseline row sets the reading only until a milestone
has been read. Results off treatment after a stop for treatment-free remission are not read
against the milestones.
"""


def _cell(row: Row, status: ElnStatus) -> str:
    found = [band_text(b) for b in row.bands if b.status is status]
    found += [EVENT_LABELS[c.event] for c in row.criteria if c.status is status]
    return "; ".join(found) or "-"


def guideline_table(tab: GuidelineTable) -> list[str]:
    statuses = tab.statuses
    label = tab.guideline.label
    out = [
        f"### {label} ({tab.where})",
        "",
        citation_text(tab.citation),
        "",
        "| Time | " + " | ".join(s.value for s in statuses) + " | rule |",
        "|---" * (len(statuses) + 2) + "|",
    ]
    for row in tab.rows:
        when = _WHEN[row.milestone] if row.months is None else f"{row.months:g} months"
        cells = " | ".join(_cell(row, s) for s in statuses)
        out.append(f"| {when} | {cells} | `{row.rule.id}` |")
    return [*out, ""]


def rules_markdown() -> str:
    lines = [_HEAD.format(version=RULESET_VERSION), "## Milestones", ""]
    for tab in TABLES.values():
        lines += guideline_table(tab)
    lines += [
        "## Every rule",
        "",
        "Each rule is also published as a PlanDefinition (`profiles/`, "
        "`PlanDefinition/<rule id>`).",
        "",
        "| rule | what it reads | sources |",
        "|---|---|---|",
    ]
    for rule in RULES.values():
        title = rule.title.replace("|", "\\|")
        lines.append(f"| `{rule.id}` | {title} | {source_text(rule).replace('|', '/')} |")
    lines += [
        "",
        "## Site rule settings",
        "",
        "A site changes these with a JSON object of the values it sets, e.g. "
        '`{"trough_target_ng_ml": 1100, "tdm_min_days_on_therapy": 28}`: '
        "`fhir-cml assess --rules-config FILE`, `fhir-cml sync --rules-config FILE`, "
        "`FHIR_CML_RULES_CONFIG=FILE` for the service. The values used are part of every "
        "reading (the JSON contract's `rule_settings` names those that differ from the "
        "defaults) and of the fingerprint of what is written back.",
        "",
        "| setting | default | meaning |",
        "|---|---|---|",
    ]
    for name, meaning in MEANING.items():
        default = getattr(DEFAULT_CONFIG, name)
        shown = list(default) if isinstance(default, tuple) else default
        lines.append(f"| `{name}` | {shown} | {meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(rules_markdown())
