"""A local rehearsal kit: a real FHIR server, synthetic EHR data and a simulated EHR (CDS client).

``fhir_server`` runs the Node FHIR server, ``synthetic`` builds the data, ``ehr`` signs CDS Hooks
JWTs, serves its JWKS, fires hooks, applies suggestions and posts feedback, and ``command`` is the
``cds97530 sandbox`` subcommand that puts them together. Nothing here is imported by the service.
"""
