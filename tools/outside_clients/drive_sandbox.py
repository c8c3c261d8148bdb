"""Drive the official CDS Hooks sandbox (built from github cds-hooks/sandbox, served on
127.0.0.1:8633) in Chromium against cds97530; record every call to the service and the FHIR server
(JWT header and claims decoded, never the signature) and what the page shows.

    .venv/bin/python tools/outside_clients/drive_sandbox.py --patient h5-outside-pat-1 --out DIR [--override|--dismiss|--accept]
    .venv/bin/python tools/outside_clients/drive_sandbox.py --hook order-sign --screen rx-sign --out DIR
"""
from __future__ import annotations

import argparse
import base64
import json
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, Request, Response, sync_playwright

parser = argparse.ArgumentParser()
parser.add_argument("--sandbox", default="http://127.0.0.1:8633")
parser.add_argument("--service", default="http://127.0.0.1:8632")
parser.add_argument("--fhir", default="http://127.0.0.1:8640/fhir")
parser.add_argument("--patient", default="h5-outside-pat-1")
parser.add_argument("--hook", default="patient-view", choices=["patient-view", "order-sign"])
parser.add_argument("--screen", default="patient-view", choices=["patient-view", "rx-sign", "pama"])
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--dismiss", action="store_true", help="click Dismiss on the first card")
parser.add_argument("--override", action="store_true", help="dismiss the first card with its first override reason")
parser.add_argument("--accept", action="store_true", help="take the first card's first suggestion")
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)
log: list[dict[str, Any]] = []


def _b64(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def ours(url: str) -> bool:
    return url.startswith((args.service, args.fhir))


def on_request(req: Request) -> None:
    if not ours(req.url):
        return
    entry: dict[str, Any] = {"dir": "request", "method": req.method, "url": req.url}
    auth = req.headers.get("authorization")
    if auth and auth.startswith("Bearer ") and req.url.startswith(args.service):
        header, claims, _ = auth[7:].split(".")
        entry["jwt_header"], entry["jwt_claims"] = _b64(header), _b64(claims)
    if req.post_data:
        try:
            entry["body"] = json.loads(req.post_data)
        except ValueError:
            entry["body"] = req.post_data
    log.append(entry)


def on_response(resp: Response) -> None:
    if not ours(resp.url):
        return
    entry: dict[str, Any] = {"dir": "response", "method": resp.request.method, "url": resp.url, "status": resp.status,
                             "cors": resp.headers.get("access-control-allow-origin")}
    if resp.url.startswith(args.service):
        try:
            entry["body"] = resp.json()
        except (ValueError, PlaywrightError):  # a preflight or an empty body
            entry["body"] = None
    log.append(entry)


def hook_answered() -> bool:
    return any(e["dir"] == "response" and e["method"] == "POST" and "/cds-services/" in e["url"]
               and not e["url"].endswith("/feedback") for e in log)


def sign_an_order(page: Page) -> None:
    """Rx Sign: choose a medication and press Sign Order (the sandbox fires order-sign only then)."""
    for _ in range(60):
        if any(e["dir"] == "response" and e["url"].endswith("/cds-services") for e in log):
            break
        page.wait_for_timeout(500)
    page.wait_for_timeout(1500)
    page.fill('input[name="medication-input"]', "aspirin")
    page.wait_for_timeout(1500)
    page.locator(".MuiListItemButton-root").first.click()
    page.wait_for_timeout(800)
    page.get_by_role("button", name="Sign Order").click()


with sync_playwright() as pw:
    browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.on("console", lambda m: log.append({"dir": "console", "type": m.type, "text": m.text[:300]})
            if m.type in ("error", "warning") else None)
    # no internet on the trial machine: the sandbox's default services and web fonts are refused at once
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(("http://127.0.0.1", "http://localhost"))
               else route.abort())
    page.on("request", on_request)
    page.on("response", on_response)
    page.goto(f"{args.sandbox}/?fhirServiceUrl={args.fhir}&patientId={args.patient}"
              f"&serviceDiscoveryURL={args.service}/cds-services&hook={args.hook}&screen={args.screen}")
    if args.screen == "rx-sign":
        sign_an_order(page)
    deadline = time.time() + 60
    while time.time() < deadline and not hook_answered():
        page.wait_for_timeout(500)
    page.wait_for_timeout(3000)
    page.screenshot(path=str(args.out / "cards.png"), full_page=True)
    (args.out / "page.txt").write_text(page.inner_text("body"))
    if args.override:
        page.get_by_label("select dismiss reason").first.click()
        page.wait_for_timeout(500)
        page.get_by_role("menuitem").first.click()
    elif args.dismiss:
        page.get_by_role("button", name="Dismiss").first.click()
    elif args.accept:
        page.locator("button").filter(has_text="Change").or_(page.locator("button").filter(has_text="Add")).first.click()
    page.wait_for_timeout(2000)
    page.screenshot(path=str(args.out / "after.png"), full_page=True)
    browser.close()

(args.out / "exchange.json").write_text(json.dumps(log, indent=1))
for e in log:
    if e["dir"] == "console":
        continue
    line = f"{e['dir']:8} {e['method']:4} {e['url'][:150]} {e.get('status', '')}"
    if e["dir"] == "request" and "jwt_header" in e:
        line += f"  JWT header {e['jwt_header']}"
    print(line)
for e in log:
    if e.get("url", "").startswith(args.service + "/cds-services/") and e["dir"] == "response":
        cards = (e.get("body") or {}).get("cards") if isinstance(e.get("body"), dict) else None
        print("answer", e["url"].rsplit("/", 1)[-1], e["status"], [c.get("summary") for c in cards] if cards is not None else e.get("body"))
