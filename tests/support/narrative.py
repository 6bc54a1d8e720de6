"""Checks a FHIR narrative the way a strict validator does (R4 Narrative, txt-1 and txt-2).

The ``div`` must be well-formed XML: one ``div`` element in the XHTML namespace, holding only
basic formatting elements (no scripts, forms, frames, objects, event attributes), with some
non-whitespace text. fhir-cml's narratives use no attributes at all, so any is reported.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

XHTML = "{http://www.w3.org/1999/xhtml}"
ALLOWED = frozenset(
    {"div", "p", "b", "i", "em", "strong", "code", "br", "span", "ul", "ol", "li", "table"}
    | {"thead", "tbody", "tr", "th", "td", "caption", "h1", "h2", "h3", "h4", "h5", "h6"}
)


def problems(text: Any) -> list[str]:
    """What is wrong with a resource's ``text`` (empty when nothing is)."""
    if not isinstance(text, dict):
        return ["no text"]
    out = []
    if text.get("status") not in ("generated", "extensions", "additional", "empty"):
        out.append(f"status {text.get('status')!r}")
    div = text.get("div")
    if not isinstance(div, str):
        return [*out, "no div"]
    try:
        root = ET.fromstring(div)
    except ET.ParseError as err:
        return [*out, f"not well-formed XML: {err}"]
    if root.tag != f"{XHTML}div":
        out.append(f"root is {root.tag}, not an XHTML div")
    for element in root.iter():
        if not element.tag.startswith(XHTML):
            out.append(f"{element.tag} is not XHTML")
        elif element.tag[len(XHTML) :] not in ALLOWED:
            out.append(f"<{element.tag[len(XHTML) :]}> is not allowed")
        if element.attrib:
            out.append(f"<{element.tag[len(XHTML) :]}> has attributes {sorted(element.attrib)}")
    if not "".join(root.itertext()).strip():
        out.append("no text content (txt-2)")
    return out
