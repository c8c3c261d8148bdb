"""The SMART launcher (github smart-on-fhir/smart-launcher-v2, built from its repository and run on
127.0.0.1:8635 with FHIR_SERVER_R4 = the open trial FHIR server) launching cds97530's SMART page as
an EHR would, in Chromium. Modes:

  direct    the launcher's own /launcher?launch_uri=... link (provider login and encounter picker)
  ehr       the launcher's simulated EHR (/ehr?app=...): the page inside the EHR's iframe
  variants  hand-built launch options (the launcher's codec): encounter of the day, no encounter, PKCE "always"
  tls       cross-site iframe over TLS: EHR at https://localhost:8636, page at https://127.0.0.1:8637
  tls-deny  the same page framed by an origin it does not list (http://127.0.0.1:8635): must be refused

    .venv/bin/python tools/outside_clients/drive_launcher.py MODE OUT_DIR
"""
from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
from playwright.sync_api import Frame, Page, sync_playwright

MODE, OUT = sys.argv[1], Path(sys.argv[2])
OUT.mkdir(parents=True, exist_ok=True)
LAUNCHER, APP = "http://127.0.0.1:8635", "http://127.0.0.1:8632/smart/launch"
TLS_LAUNCHER, TLS_APP = "https://localhost:8636", "https://127.0.0.1:8637/smart/launch"
SECRET_PARAMS = ("code", "state", "launch", "code_challenge")
steps: list[dict[str, Any]] = []


def launch_code(patient: str, encounter: str, *, sim_ehr: bool = False, pkce: str = "auto") -> str:
    """The launcher's ``launch`` value: base64url of its JSON array (src/isomorphic/codec.ts)."""
    arr = [0, patient, "h5-outside-prac-pt-stanton", encounter, 1, 1, int(sim_ehr), "", "", "", "", "", "", "", 0,
           ["none", "auto", "always"].index(pkce), ""]
    return base64.urlsafe_b64encode(json.dumps(arr).encode()).decode().rstrip("=")


def note(resp: Any) -> None:
    u = urlparse(resp.url)
    if u.port not in (8632, 8635, 8636, 8637) or u.path.startswith(("/static", "/vendor", "/smart/static")):
        return
    query = {k: (f"<{len(v[0])} chars>" if k in SECRET_PARAMS else v[0]) for k, v in parse_qs(u.query).items()}
    steps.append({"status": resp.status, "method": resp.request.method, "url": f"{u.scheme}://{u.netloc}{u.path}", "query": query,
                  "frame_ancestors": next((d.strip() for d in (resp.headers.get("content-security-policy") or "").split(";")
                                           if d.strip().startswith("frame-ancestors")), None)})


def click_through(page: Page, where: Page | Frame) -> None:
    """The launcher's provider-login and encounter-picker pages: take the first choice."""
    for label in ("Login", "Continue", "Authorize", "Allow", "Launch"):
        button = where.get_by_role("button", name=label)
        if button.count():
            button.first.click()
            return
    rows = where.locator("table tbody tr")
    if rows.count():
        rows.first.click()


def the_app(page: Page) -> Page | Frame | None:
    if MODE == "direct":
        return page if page.url.startswith("http://127.0.0.1:8632/smart/evaluation") else None
    frame = page.frame(name="iframe")
    return frame if frame is not None and "/smart/evaluation" in frame.url else None


def walk(page: Page, start: str) -> str:
    page.goto(start)
    for i in range(15):
        page.wait_for_timeout(1200)
        page.screenshot(path=str(OUT / f"step{i:02d}.png"))
        app = the_app(page)
        if app is not None:
            page.wait_for_timeout(1000)
            return app.inner_text("body")
        where = page if MODE == "direct" else page.frame(name="iframe")
        if where is not None and where.url.startswith("http"):
            click_through(page, where)
    frame = page.frame(name="iframe")
    return (frame.inner_text("body") if frame is not None and frame.url.startswith("http") else page.inner_text("body"))


with sync_playwright() as pw:
    browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
    context = browser.new_context(ignore_https_errors=MODE.startswith("tls"), viewport={"width": 1400, "height": 1000})
    refusals: list[str] = []
    results: dict[str, str] = {}
    if MODE == "variants":
        cases = {"encounter of the day": ("h5-outside-pat-2", "h5-outside-2-9-enc", "auto"),
                 "no encounter in the token": ("h5-outside-pat-2", "NONE", "auto"),
                 "PKCE always": ("h5-outside-pat-1", "h5-outside-1-9-enc", "always")}
        for name, (patient, encounter, pkce) in cases.items():
            page = context.new_page()
            page.on("response", note)
            page.goto(f"{APP}?" + urlencode({"iss": f"{LAUNCHER}/v/r4/fhir", "launch": launch_code(patient, encounter, pkce=pkce)}))
            page.wait_for_timeout(3000)
            results[name] = page.url + " | " + page.inner_text("body")
            page.close()
    else:
        page = context.new_page()
        page.on("response", note)
        page.on("console", lambda m: refusals.append(m.text[:220]) if "frame-ancestors" in m.text else None)
        if MODE == "direct":
            start = f"{LAUNCHER}/launcher?" + urlencode({"launch_uri": APP, "fhir_ver": 4, "patient": "h5-outside-pat-1",
                                                          "select_encounter": 1})
        elif MODE == "ehr":
            target = httpx.get(f"{LAUNCHER}/launcher?" + urlencode({"launch_uri": APP, "fhir_ver": 4, "patient": "h5-outside-pat-1",
                                                                     "sim_ehr": 1, "select_encounter": 1})).headers["location"]
            start = f"{LAUNCHER}/ehr?" + urlencode({"app": target})
        else:
            app_url = f"{TLS_APP}?" + urlencode({"iss": f"{TLS_LAUNCHER}/v/r4/fhir",
                                                  "launch": launch_code("h5-outside-pat-2", "h5-outside-2-9-enc", sim_ehr=True)})
            start = f"{TLS_LAUNCHER if MODE == 'tls' else LAUNCHER}/ehr?" + urlencode({"app": app_url})
        results[MODE] = walk(page, start)
        page.screenshot(path=str(OUT / "final.png"), full_page=True)
    cookies = [(c["name"], c["domain"], c.get("sameSite"), c.get("secure"), c.get("partitionKey")) for c in context.cookies()
               if c["name"].startswith("cds97530")]
    browser.close()

(OUT / "steps.json").write_text(json.dumps(steps, indent=1))
for s in steps:
    fa = f"  [{s['frame_ancestors']}]" if s["frame_ancestors"] and "/smart/" in s["url"] else ""
    print(s["status"], s["method"], s["url"], json.dumps(s["query"])[:160] + fa)
for name, text in results.items():
    print(f"== {name}: {' '.join(text.split())[:400]}")
print("session cookie (name, domain, SameSite, Secure, partition):", cookies)
print("frame-ancestors refusals:", refusals)
