"""fhir_rest: the one FHIR R4 REST client of the project (CDS service and SMART page).

Small on purpose: reads, searches, ``next`` pages and Binary attachments with a bearer token (and,
for an EHR's own code such as the demo's, create/update/delete/transaction),
each bounded in time (per call and per request), size (streamed, gzip inflation capped) and
event-loop CPU; base URLs checked and normalised before anything is sent. Imports httpx only.

    from fhir_rest import Budget, FhirRestClient, Limits
    client = FhirRestClient(http, fhir_server, token=access_token, budget=Budget(1.2))
    with SyncFhirRestClient(fhir_server, token=access_token) as fhir: ...   # the same, for sync code

``refs`` holds the small readings of FHIR data the SMART page and the demo EHR share (a safe
relative reference, a person's display name).
"""
from fhir_rest.client import FHIR_JSON, Budget, Fetched, FhirRestClient, Limits
from fhir_rest.errors import FhirRestError, FhirTimeoutError, FhirTooLargeError, FhirUrlError
from fhir_rest.refs import REFERENCE, human_name, parse_reference
from fhir_rest.sync import SyncFhirRestClient
from fhir_rest.urls import check_base, check_url, under_base

__all__ = [
    "FHIR_JSON",
    "Budget",
    "Fetched",
    "FhirRestClient",
    "FhirRestError",
    "FhirTimeoutError",
    "FhirTooLargeError",
    "FhirUrlError",
    "Limits",
    "REFERENCE",
    "SyncFhirRestClient",
    "check_base",
    "check_url",
    "human_name",
    "parse_reference",
    "under_base",
]
