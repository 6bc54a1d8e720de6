"""The application service: assess a patient and write its suggestions, the one path every face
(CLI, sync job, FHIR operation, CDS Hooks, SMART app) takes."""
