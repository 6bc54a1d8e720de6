"""CDS Hooks 2.0: discovery, the hook services, their cards and feedback (blueprint in
:mod:`fhir_cml.web.cds.hooks`)."""
