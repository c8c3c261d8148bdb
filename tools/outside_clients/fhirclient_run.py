"""Stock fhirclient (PyPI, in .venv) as a SMART app, then fhirpy (in the HealthChain venv) with the
token it got. Two authorization servers that are not the app's own code paths:

  demo FHIR_BASE   standalone launch at the demo (serve --demo on :8631): endpoints from the
                   CapabilityStatement's oauth-uris (all fhirclient reads), PKCE, the demo's
                   patient picker in Chromium
  launcher         EHR launch at the SMART launcher (:8635), launch options preset (no login pages)

    .venv/bin/python tools/outside_clients/fhirclient_run.py demo http://127.0.0.1:PORT/fhir
    .venv/bin/python tools/outside_clients/fhirclient_run.py launcher
"""
from __future__ import annotations

import base64
import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
from fhirclient import client
from fhirclient.models.patient import Patient
from fhirclient.models.procedure import Procedure
from playwright.sync_api import sync_playwright

HC_PYTHON = Path(sys.argv[3] if len(sys.argv) > 3 else "/tmp/cds97530-outside/hc-venv/bin/python")
FHIRPY = Path(__file__).with_name("fhirpy_run.py")
MODE = sys.argv[1]
DEMO = "http://127.0.0.1:8631"
LAUNCHER_ISS = "http://127.0.0.1:8635/v/r4/fhir"
SCOPES = "patient/Patient.rs patient/Procedure.rs patient/Encounter.rs patient/DocumentReference.rs patient/Binary.r"


def demo(fhir: str) -> client.FHIRClient:
    smart = client.FHIRClient(settings={"app_id": "cds97530-smart", "api_base": fhir, "redirect_uri": f"{DEMO}/smart/callback",
                                        "scope": f"launch/patient {SCOPES}"})
    url = smart.authorize_url  # reads the CapabilityStatement
    auth = smart.server.auth
    print("endpoints from the CapabilityStatement (oauth-uris):", auth._authorize_uri, auth._token_uri)
    q = parse_qs(urlparse(url).query)
    print("authorize: PKCE", q.get("code_challenge_method"), "| aud", q.get("aud"))
    seen: dict[str, str] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page()
        # the demo registers only the SMART page's redirect URI; the code is read off that request (the
        # page itself answers "no launch in progress" and never redeems it)
        page.on("request", lambda r: seen.setdefault("url", r.url) if r.url.startswith(f"{DEMO}/smart/callback") else None)
        page.goto(url)
        page.locator('input[name="demo_patient"]').first.check()
        page.get_by_role("button", name="Authorize the app").click()
        page.wait_for_timeout(1500)
        browser.close()
    smart.handle_callback(seen["url"])
    return smart


def launcher() -> client.FHIRClient:
    arr = [0, "h5-outside-pat-2", "h5-outside-prac-pt-stanton", "h5-outside-2-9-enc", 1, 1, 0, "", "", "", "", "", "", "", 0, 1, ""]
    launch = base64.urlsafe_b64encode(json.dumps(arr).encode()).decode().rstrip("=")
    redirect = "http://127.0.0.1:8699/cb"  # never listened on: the code is read off the redirect
    smart = client.FHIRClient(settings={"app_id": "h5-fhirclient", "api_base": LAUNCHER_ISS, "redirect_uri": redirect,
                                        "launch_token": launch, "scope": "launch openid fhirUser patient/*.read"})
    url = smart.authorize_url
    q = parse_qs(urlparse(url).query)
    print("authorize:", urlparse(url).netloc + urlparse(url).path, "| PKCE", q.get("code_challenge_method"),
          "| launch passed:", q.get("launch") == [launch])
    response = httpx.get(url, follow_redirects=False)
    for _ in range(5):
        location = response.headers.get("location", "")
        if response.status_code not in (301, 302, 303) or location.startswith(redirect):
            break
        response = httpx.get(location if location.startswith("http") else "http://127.0.0.1:8635" + location, follow_redirects=False)
    smart.handle_callback(response.headers["location"])
    return smart


def main() -> None:
    print("fhirclient", version("fhirclient"))
    smart = demo(sys.argv[2]) if MODE == "demo" else launcher()
    print("token:", bool(smart.server.auth.access_token), "| patient:", smart.patient_id,
          "| encounter:", (smart.launch_context or {}).get("encounter"))
    patient = Patient.read(smart.patient_id, smart.server)
    print("Patient.read:", patient.id)
    procedures = Procedure.where(struct={"patient": smart.patient_id, "code": "97530"}).perform_resources(smart.server)
    print("Procedure?code=97530:", len(procedures))
    out = subprocess.run([str(HC_PYTHON), str(FHIRPY), smart.server.base_uri.rstrip("/"), smart.patient_id],
                         input=smart.server.auth.access_token, capture_output=True, text=True, check=False)
    print(out.stdout.strip(), out.stderr.strip()[-300:])


if __name__ == "__main__":
    main()
