"""The site's local codes and units in the service (docs/inbound.md, "Local codes and units").

``FHIR_CML_CONCEPT_MAPS`` names the site's ConceptMap files (or directories of them), read and
checked at start-up: a missing or unreadable file, or one holding no ConceptMap, stops the
service with the reason. ``FHIR_CML_TERMINOLOGY_SERVER`` is asked ``ConceptMap/$translate`` for
the codes and units the files do not map, within ``FHIR_CML_TERMINOLOGY_DEADLINE`` seconds per
request (shorter than the CDS Hooks deadline, checked at start-up): past it, or when the server
fails, a code stays untranslated and its result is reported as not read - a hook never waits
on the terminology server. The server's answers are kept for the life of the process.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from flask import Response, after_this_request, current_app, has_app_context, has_request_context

from fhir_cml.ehr.client import FhirClient, RetryPolicy
from fhir_cml.ehr.fetch import DEFAULT_FETCH, FetchOptions
from fhir_cml.ehr.terminology import Answers, Chained, ServerTerminology, search_codes
from fhir_cml.fhir.inbound.conceptmaps import ConceptMaps, Terminology, concept_maps_from

__all__ = ["SiteTerminology", "check_concept_maps", "site_fetch", "site_terminology"]

log = logging.getLogger("fhir_cml.web")


def check_concept_maps(paths: tuple[Path, ...]) -> ConceptMaps:
    """The maps of ``paths``; ValueError naming the files that cannot be used."""
    maps = concept_maps_from(paths)
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise ValueError(f"no such file or directory: {', '.join(missing)}")
    if maps.unusable:
        raise ValueError("; ".join(maps.unusable))
    if not maps.names:
        raise ValueError(f"no ConceptMap in {', '.join(str(p) for p in paths)}")
    return maps


@dataclass
class SiteTerminology:
    """The site's ConceptMap files and terminology server, shared by every request."""

    maps: ConceptMaps | None
    server: str | None
    deadline: float
    answers: Answers = field(default_factory=Answers)

    @classmethod
    def start(
        cls, paths: tuple[Path, ...], server: str | None, deadline: float
    ) -> SiteTerminology | None:
        if not paths and server is None:
            return None
        maps = check_concept_maps(paths) if paths else None
        for problem in maps.problems if maps else ():
            log.warning("event=concept-map problem=%r", problem)
        return cls(maps, server, deadline)

    def local_codes(self) -> dict[tuple[str, str], tuple[str, str]] | None:
        """The site's Observation codes and what each stands for; None when a terminology
        server decides (its maps are not known in advance)."""
        if self.server is not None:
            return None
        return dict(self.maps.codes) if self.maps is not None else {}

    def for_request(self) -> Terminology:
        """The translations of one request: the files, then the server within the deadline."""
        if self.server is None:
            assert self.maps is not None
            return self.maps
        client = FhirClient(
            self.server,
            timeout=(self.deadline, self.deadline),
            retry=RetryPolicy(attempts=0),
            deadline=time.monotonic() + self.deadline,
        )
        if has_request_context():

            @after_this_request
            def _close(response: Response) -> Response:
                client.close()
                return response

        remote = ServerTerminology(client, self.deadline, answers=self.answers)
        remote.problems = _Logged()
        return remote if self.maps is None else Chained(self.maps, remote)


def _site() -> SiteTerminology | None:
    if not has_app_context():
        return None
    from fhir_cml.web.runtime import EXTENSION

    found = current_app.extensions.get(EXTENSION)
    return getattr(found, "terminology", None)


def site_terminology() -> Terminology | None:
    """The current request's translations of the site's codes, or None without any."""
    site = _site()
    return site.for_request() if site is not None else None


def site_fetch(options: FetchOptions = DEFAULT_FETCH) -> FetchOptions:
    """Reads from the EHR that also ask for the site's own codes the ConceptMaps map."""
    site = _site()
    if site is None:
        return options
    if site.server is not None:  # its maps are not known in advance: every Observation
        return replace(options, observation_codes=None)
    return replace(options, observation_codes=search_codes(site.maps, options.observation_codes))


class _Logged(list[str]):
    """Problems of a request's translations go to the log (they name codes, not patients)."""

    def append(self, problem: str) -> None:
        log.warning("event=terminology problem=%r", problem)
