"""A simulated EHR: the CDS client side of CDS Hooks 2.0, as an EHR would play it.

Why: the service must be proven against a caller that does what EHRs do: sign every call with its
own ES384 or RS384 key and publish the public keys as a JWKS at its ``jku``; satisfy all, some or
none of the prefetch templates (or answer a key with an OperationOutcome, as CDS Hooks 2.0 allows,
or with Epic's "no results" searchset); pass a short-lived bearer token for its FHIR server; apply
the suggestions a user accepts to that FHIR server; and post feedback.

    with JwksServer(keys) as jwks:
        ehr = SimulatedEhr(keys=keys, jku=jwks.url, fhir_base=fhir.base_url, token_source=fhir.issue_token)
        services = ehr.discover(service_base)
        result = ehr.fire(service_base, "order-sign", ehr.order_sign_context(data, visit), prefetch="full")
        ehr.apply_suggestion(result.cards[0]["suggestions"][0], draft_orders=...)
        ehr.send_feedback(service_base, result.service_id, result.cards[0], accepted=[suggestion_id])

Its FHIR reads and writes (prefetch, applying suggestions) go through the project's one FHIR REST
client (``fhir_rest.SyncFhirRestClient``); ``http`` carries only the CDS Hooks calls (discovery,
hooks, feedback). It never logs: tokens, note text and names stay out of every log line.
"""
from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from fhir_rest import FhirRestError, Limits, SyncFhirRestClient
from sandbox.synthetic import TAG_SYSTEM, SyntheticDataset, SyntheticVisit

FHIR_MAX_BYTES = 32_000_000
"""Largest FHIR answer the simulated EHR keeps (its own server's prefetch Bundles)."""
PREFETCH_MODES: tuple[str, ...] = ("full", "partial", "empty", "absent", "operation-outcome", "epic-no-results")
_TOKEN = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
_USER_TOKENS = {"Practitioner": "userPractitionerId", "PractitionerRole": "userPractitionerRoleId",
                "Patient": "userPatientId", "RelatedPerson": "userRelatedPersonId"}


class EhrError(RuntimeError):
    """The simulated EHR could not complete a step (discovery, a FHIR write, feedback)."""


# --- keys and JWKS --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    alg: str
    kid: str
    private_key: Any
    public_jwk: dict[str, Any]


class EhrKeys:
    """The EHR's own signing keys: one ES384 (P-384) and one RS384 (RSA 2048), fresh per instance."""

    def __init__(self) -> None:
        ec_key = ec.generate_private_key(ec.SECP384R1())
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._keys = {
            "ES384": self._make("ES384", ec_key, ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True)),
            "RS384": self._make("RS384", rsa_key, RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True)),
        }

    @staticmethod
    def _make(alg: str, private_key: Any, jwk: dict[str, Any]) -> SigningKey:
        kid = f"{alg.lower()}-{uuid.uuid4().hex[:12]}"
        return SigningKey(alg, kid, private_key, {**jwk, "kid": kid, "alg": alg, "use": "sig"})

    def key(self, alg: str) -> SigningKey:
        return self._keys[alg]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk for k in self._keys.values()]}


class JwksServer:
    """Serves the EHR's JWKS at ``http://127.0.0.1:<port>/.well-known/jwks.json`` from a thread."""

    def __init__(self, keys: EhrKeys, host: str = "127.0.0.1", port: int = 0) -> None:
        body = json.dumps(keys.jwks()).encode()
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] not in ("/.well-known/jwks.json", "/jwks.json"):
                    self.send_error(404)
                    return
                outer.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr access log
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        port = self._server.server_address[1]
        self.origin = f"http://{host}:{port}"
        self.url = f"{self.origin}/.well-known/jwks.json"

    def start(self) -> JwksServer:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> JwksServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- hook calls -----------------------------------------------------------------------------------


@dataclass
class HookResult:
    service_id: str
    hook: str
    status: int
    elapsed: float
    body: Any
    request: dict[str, Any] = field(repr=False)

    @property
    def cards(self) -> list[dict[str, Any]]:
        if isinstance(self.body, dict) and isinstance(self.body.get("cards"), list):
            return list(self.body["cards"])
        return []

    @property
    def system_actions(self) -> list[dict[str, Any]]:
        if isinstance(self.body, dict) and isinstance(self.body.get("systemActions"), list):
            return list(self.body["systemActions"])
        return []


TokenSource = Callable[[], str]


class SimulatedEhr:
    """Fires hooks at a CDS service the way an EHR does. ``token_source`` mints the short-lived FHIR
    access token passed as ``fhirAuthorization`` (None: no token is passed)."""

    def __init__(
        self,
        *,
        keys: EhrKeys,
        jku: str,
        iss: str,
        fhir_base: str,
        token_source: TokenSource | None = None,
        ehr_token: str | None = None,
        client_id: str = "cds97530-service",
        http: httpx.Client | None = None,
        timeout: float = 30.0,
        run_tag: str | None = None,
    ) -> None:
        self.keys = keys
        self.jku = jku
        self.iss = iss
        self.fhir_base = fhir_base.rstrip("/")
        self.token_source = token_source
        self._fhir = SyncFhirRestClient(self.fhir_base, token=ehr_token,
                                        limits=Limits(call_seconds=timeout, max_bytes=FHIR_MAX_BYTES))
        self.client_id = client_id
        self.run_tag = run_tag
        self._http = http or httpx.Client(timeout=timeout)
        self._services: dict[str, dict[str, Any]] = {}
        self.issued_jwts: deque[str] = deque(maxlen=500)
        """The JWTs this EHR signed most recently (the log-leak test looks for them)."""

    @property
    def ehr_token(self) -> str | None:
        """The EHR's own token for its FHIR server (to satisfy prefetch and apply suggestions)."""
        return self._fhir.token

    @ehr_token.setter
    def ehr_token(self, token: str | None) -> None:
        self._fhir.token = token

    def close(self) -> None:
        self._http.close()
        self._fhir.close()

    def clients_entry(self, *, name: str = "sandbox-ehr") -> dict[str, Any]:
        """The entry for the service's clients YAML that trusts this EHR (iss, jku, FHIR server)."""
        return {"iss": self.iss, "jku": [self.jku], "fhir_servers": [self.fhir_base], "name": name}

    # --- JWT ----------------------------------------------------------------------------------
    def sign_jwt(self, aud: str, *, alg: str = "ES384", lifetime: int = 300, claims: Mapping[str, Any] | None = None,
                 headers: Mapping[str, Any] | None = None) -> str:
        """A CDS Hooks 2.0 client JWT: iss, aud (the exact endpoint URL), exp, iat, jti; kid/jku/typ in the header."""
        key = self.keys.key(alg)
        now = int(time.time())
        payload: dict[str, Any] = {"iss": self.iss, "aud": aud, "exp": now + lifetime, "iat": now, "jti": str(uuid.uuid4())}
        payload.update(claims or {})
        header = {"kid": key.kid, "jku": self.jku, "typ": "JWT", **(headers or {})}
        token = jwt.encode(payload, key.private_key, algorithm=alg, headers=header)
        self.issued_jwts.append(token)
        return token

    # --- discovery ----------------------------------------------------------------------------
    def discover(self, service_base: str) -> dict[str, dict[str, Any]]:
        """GET {base}/cds-services; services by hook (the first per hook) and by id."""
        resp = self._http.get(service_base.rstrip("/") + "/cds-services", headers={"Accept": "application/json"})
        if resp.status_code != 200:
            raise EhrError(f"discovery answered HTTP {resp.status_code}")
        services = resp.json().get("services") or []
        self._services = {}
        for svc in services:
            self._services.setdefault(svc["hook"], svc)
            self._services[svc["id"]] = svc
        return self._services

    def service(self, hook_or_id: str) -> dict[str, Any]:
        try:
            return self._services[hook_or_id]
        except KeyError:
            raise EhrError(f"no discovered service for {hook_or_id!r} (call discover first)") from None

    # --- contexts -------------------------------------------------------------------------------
    @staticmethod
    def order_sign_context(data: SyntheticDataset, visit: SyntheticVisit, *, units: int | None = None) -> dict[str, Any]:
        order = data.draft_order(visit, units=units)
        return {
            "userId": f"Practitioner/{visit.practitioner_id}", "patientId": visit.patient_id,
            "encounterId": visit.encounter_id,
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]},
        }

    @staticmethod
    def claim_context(data: SyntheticDataset, visit: SyntheticVisit) -> dict[str, Any]:
        return {
            "userId": f"Practitioner/{visit.practitioner_id}", "patientId": visit.patient_id,
            "encounterId": visit.encounter_id, "claim": data.resource(f"Claim/{visit.claim_id}"),
        }

    @staticmethod
    def patient_view_context(visit: SyntheticVisit) -> dict[str, Any]:
        return {"userId": f"Practitioner/{visit.practitioner_id}", "patientId": visit.patient_id,
                "encounterId": visit.encounter_id}

    @classmethod
    def context_for(cls, hook: str, data: SyntheticDataset, visit: SyntheticVisit) -> dict[str, Any]:
        """The context an EHR sends for ``hook`` ("order-sign", the claim hook or "claim", else patient-view)."""
        if hook == "order-sign":
            return cls.order_sign_context(data, visit)
        if hook in ("org.cds97530.claim-sign", "claim"):
            return cls.claim_context(data, visit)
        return cls.patient_view_context(visit)

    # --- prefetch ------------------------------------------------------------------------------
    def build_prefetch(self, service: Mapping[str, Any], context: Mapping[str, Any], mode: str,
                       *, keep: set[str] | None = None) -> dict[str, Any] | None:
        """Prefetch as an EHR would send it. ``partial`` keeps ``keep`` (default: every other key)."""
        templates: Mapping[str, str] = service.get("prefetch") or {}
        if mode == "absent":
            return None
        if mode == "empty":
            return {}
        keys = sorted(templates)
        if mode == "partial":
            keep = keep if keep is not None else set(keys[::2])
            keys = [k for k in keys if k in keep]
        out: dict[str, Any] = {}
        for key in keys:
            query = render_template(templates[key], context)
            if query is None:
                continue  # not satisfiable from this context: the key is omitted (CDS Hooks 2.0)
            if mode == "operation-outcome":
                out[key] = {"resourceType": "OperationOutcome", "issue": [{
                    "severity": "error", "code": "exception", "diagnostics": "prefetch query failed at the EHR"}]}
                continue
            value = self.fhir_get(query)
            if mode == "epic-no-results" and isinstance(value, dict) and value.get("resourceType") == "Bundle":
                value = {"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": [{
                    "resource": {"resourceType": "OperationOutcome", "issue": [{
                        "severity": "information", "code": "informational",
                        "details": {"text": "Resource request returns no results."}}]},
                    "search": {"mode": "outcome"}}]}
            out[key] = value
        return out

    def fhir_get(self, query: str) -> Any:
        """GET a relative query from the EHR's FHIR server: a resource, a Bundle, or None when a read is 404."""
        what = query.split("?")[0]
        try:
            value = self._fhir.get(query)
        except FhirRestError as exc:
            raise EhrError(f"FHIR GET {what} failed ({exc})") from exc
        if value is None and "?" in query:
            raise EhrError(f"FHIR GET {what} answered 404")
        return value

    # --- firing ----------------------------------------------------------------------------------
    def build_request(self, service: Mapping[str, Any], context: Mapping[str, Any], *, prefetch: str = "full",
                      keep: set[str] | None = None, fhir_token: str | None = None, with_token: bool = True,
                      fhir_server: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "hook": service["hook"], "hookInstance": str(uuid.uuid4()),
            "fhirServer": fhir_server or self.fhir_base, "context": dict(context),
        }
        token = fhir_token
        if token is None and with_token and self.token_source is not None:
            token = self.token_source()
        if token:
            body["fhirAuthorization"] = {
                "access_token": token, "token_type": "Bearer", "expires_in": 300,
                "scope": "patient/Patient.read patient/Encounter.read patient/Procedure.read "
                         "patient/DocumentReference.read patient/Binary.read patient/Coverage.read patient/Claim.read",
                "subject": self.client_id, "patient": context.get("patientId"),
            }
        value = self.build_prefetch(service, context, prefetch, keep=keep)
        if value is not None:
            body["prefetch"] = value
        return body

    def fire(self, service_base: str, hook_or_id: str, context: Mapping[str, Any], *, prefetch: str = "full",
             alg: str = "ES384", keep: set[str] | None = None, fhir_token: str | None = None,
             with_token: bool = True, fhir_server: str | None = None, timeout: float | None = None,
             jwt_override: str | None = None) -> HookResult:
        """POST one hook call (signed JWT) and time it. ``fhir_token`` overrides the minted token."""
        service = self.service(hook_or_id)
        body = self.build_request(service, context, prefetch=prefetch, keep=keep, fhir_token=fhir_token,
                                  with_token=with_token, fhir_server=fhir_server)
        return self.post_hook(service_base, service, body, alg=alg, timeout=timeout, jwt_override=jwt_override)

    def post_hook(self, service_base: str, service: Mapping[str, Any], body: Mapping[str, Any], *,
                  alg: str = "ES384", timeout: float | None = None, jwt_override: str | None = None) -> HookResult:
        url = f"{service_base.rstrip('/')}/cds-services/{quote(service['id'])}"
        token = jwt_override if jwt_override is not None else self.sign_jwt(url, alg=alg)
        started = time.perf_counter()
        resp = self._http.post(url, content=json.dumps(body), timeout=timeout or self._http.timeout,
                               headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                                        "Accept": "application/json"})
        elapsed = time.perf_counter() - started
        try:
            parsed: Any = resp.json()
        except ValueError:
            parsed = resp.text
        return HookResult(service["id"], service["hook"], resp.status_code, elapsed, parsed, dict(body))

    # --- suggestions and feedback -------------------------------------------------------------------
    def apply_suggestion(self, suggestion: Mapping[str, Any], *, drafts: dict[str, dict[str, Any]] | None = None) -> list[str]:
        """Carry out a suggestion's actions. Resources in ``drafts`` (``Type/id`` -> resource, e.g. the
        unsigned orders) are changed in place, as an EHR edits its own drafts; everything else is
        written to the FHIR server. Returns ``Type/id`` of what was created, updated or deleted."""
        done: list[str] = []
        drafts = drafts if drafts is not None else {}
        removed_draft_types: set[str] = set()
        for action in suggestion.get("actions") or []:
            kind = action.get("type")
            if kind in ("create", "update"):
                resource = dict(action.get("resource") or {})
                if not resource.get("resourceType"):
                    raise EhrError(f"{kind} action without a resource")
                ref = f"{resource['resourceType']}/{resource.get('id')}" if resource.get("id") else None
                if ref and ref in drafts:
                    drafts[ref] = resource
                    done.append(ref)
                    continue
                if kind == "create" and resource["resourceType"] in removed_draft_types:
                    # delete + create of an unsigned order (EHRs without update): a new draft, not a FHIR write
                    resource["id"] = f"draft-{uuid.uuid4().hex[:12]}"
                    ref = f"{resource['resourceType']}/{resource['id']}"
                    drafts[ref] = resource
                    done.append(ref)
                    continue
                self._tag(resource)
                done.append(self._write(kind, resource))
            elif kind == "delete":
                ids = action.get("resourceId") or []
                for ref in [ids] if isinstance(ids, str) else ids:
                    if ref in drafts:
                        drafts.pop(ref)
                        removed_draft_types.add(ref.split("/")[0])
                    else:
                        try:
                            self._fhir.delete(ref)  # 404/410: already gone
                        except FhirRestError as exc:
                            raise EhrError(f"DELETE {ref.split('/')[0]} failed ({exc})") from exc
                    done.append(ref)
            else:
                raise EhrError(f"unknown action type {kind!r}")
        return done

    def _tag(self, resource: dict[str, Any]) -> None:
        if not self.run_tag:
            return
        meta = resource.setdefault("meta", {})
        tags = [t for t in meta.get("tag") or [] if t.get("system") != TAG_SYSTEM]
        meta["tag"] = [*tags, {"system": TAG_SYSTEM, "code": self.run_tag}]

    def _write(self, kind: str, resource: dict[str, Any]) -> str:
        rtype = resource["resourceType"]
        try:
            stored = self._fhir.update(resource) if kind == "update" or resource.get("id") else self._fhir.create(resource)
        except FhirRestError as exc:
            raise EhrError(f"{kind} {rtype} failed ({exc})") from exc
        return f"{rtype}/{stored.get('id')}"

    def send_feedback(self, service_base: str, service_id: str, card: Mapping[str, Any], *,
                      accepted: list[str] | None = None, override_reason: Mapping[str, Any] | None = None,
                      comment: str | None = None) -> httpx.Response:
        """POST {service}/feedback for one card: accepted (with suggestion ids) or overridden."""
        item: dict[str, Any] = {"card": card["uuid"], "outcomeTimestamp": datetime.now(UTC).isoformat(timespec="seconds")}
        if accepted is not None:
            item["outcome"] = "accepted"
            item["acceptedSuggestions"] = [{"id": s} for s in accepted]
        else:
            item["outcome"] = "overridden"
            reason: dict[str, Any] = {}
            if override_reason:
                reason["reason"] = dict(override_reason)
            if comment:
                reason["userComment"] = comment
            if reason:
                item["overrideReason"] = reason
        url = f"{service_base.rstrip('/')}/cds-services/{quote(service_id)}/feedback"
        return self._http.post(url, content=json.dumps({"feedback": [item]}),
                               headers={"Authorization": f"Bearer {self.sign_jwt(url)}", "Content-Type": "application/json"})


def render_template(template: str, context: Mapping[str, Any]) -> str | None:
    """Fill ``{{context.x}}`` and ``{{userPractitionerId}}``-style tokens; None if one cannot be filled."""
    values: dict[str, str] = {}
    for name, value in context.items():
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            values[f"context.{name}"] = str(value)
    user = context.get("userId")
    if isinstance(user, str) and "/" in user:
        rtype, _, rid = user.partition("/")
        if rtype in _USER_TOKENS:
            values[_USER_TOKENS[rtype]] = rid
    missing = False

    def sub(match: re.Match[str]) -> str:
        nonlocal missing
        value = values.get(match.group(1))
        if value is None:
            missing = True
            return ""
        return quote(value, safe="/-.")

    out = _TOKEN.sub(sub, template)
    return None if missing else out
