"""``cds97530 sandbox``: rehearse an EHR registration locally, end to end.

Starts the real FHIR server (or uses ``--fhir-base-url``), loads the synthetic patients, starts the
simulated EHR's JWKS endpoint and the CDS service (or targets ``--service-url``), fires order-sign,
the claim hook and patient-view as the EHR would, and prints the cards. ``--apply`` accepts the first
suggestion, writes it to the FHIR server and posts feedback; ``--serve`` keeps everything running
so the admin can point other tools at it. See docs/sandbox.md.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PREFETCH_MODES = ("full", "partial", "empty", "absent", "operation-outcome", "epic-no-results")
"""Kept in step with ``sandbox.ehr.PREFETCH_MODES`` (not imported: the CLI starts fast)."""
HOOKS = {"order-sign": "order-sign", "claim": "org.cds97530.claim-sign", "patient-view": "patient-view"}


ServiceFactory = Any
"""``(clients_file, database_url) -> (public_url -> ASGI app)``, given by the command line (the
composition point): the sandbox never imports the service."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], *, service_factory: ServiceFactory = None) -> None:
    p = sub.add_parser(
        "sandbox",
        help="rehearse locally: real FHIR server + synthetic data + simulated EHR firing hooks at the service",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--hooks", default="order-sign,claim,patient-view",
                   help="comma-separated: order-sign, claim, patient-view (default: all three)")
    p.add_argument("--payer", choices=("medicare", "medicaid", "commercial", "wsi"), default=None,
                   help="only visits of this payer")
    p.add_argument("--visits", type=int, default=4, help="how many visits to fire hooks for (default 4)")
    p.add_argument("--prefetch", default="full",
                   choices=PREFETCH_MODES,
                   help="how the EHR satisfies the prefetch templates (default full)")
    p.add_argument("--alg", choices=("ES384", "RS384"), default="ES384", help="JWT signing algorithm")
    p.add_argument("--apply", action="store_true",
                   help="accept the first suggestion: apply it to the FHIR server and post feedback")
    p.add_argument("--fhir-base-url", default=None,
                   help="use this FHIR R4 server instead of starting one (data is tagged and deleted after)")
    p.add_argument("--fhir-token", default=None, help="bearer token for --fhir-base-url (passed as fhirAuthorization)")
    p.add_argument("--service-url", default=None,
                   help="fire at this running service instead of starting one (register the printed client entry there)")
    p.add_argument("--jwks-port", type=int, default=0, help="fixed port for the EHR's JWKS (default: a free one)")
    p.add_argument("--serve", action="store_true", help="keep FHIR server, JWKS and service running until Ctrl-C")
    p.add_argument("--keep-data", action="store_true", help="do not delete the synthetic data from --fhir-base-url")
    p.add_argument("--json", action="store_true", help="print one JSON object per hook call")
    p.set_defaults(run=run, service_factory=service_factory)


def run(args: argparse.Namespace) -> int:
    from sandbox.ehr import EhrError
    from sandbox.fhir_server import FhirServerError

    logging.getLogger("httpx").setLevel(logging.WARNING)
    hooks = [h.strip() for h in args.hooks.split(",") if h.strip()]
    unknown = [h for h in hooks if h not in HOOKS]
    if unknown:
        print(f"cds97530 sandbox: unknown hook(s) {', '.join(unknown)}; use {', '.join(HOOKS)}", file=sys.stderr)
        return 2
    try:
        return _run(args, hooks)
    except (FhirServerError, EhrError, OSError) as exc:
        print(f"cds97530 sandbox: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, hooks: list[str]) -> int:
    from sandbox.synthetic import build_dataset

    out = sys.stdout
    data = build_dataset()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cds97530-sandbox-")))
        base, ehr_token, token_source = _fhir_with_data(stack, args, data, out)
        ehr = _simulated_ehr(stack, args, data, base, ehr_token, token_source, out)
        service_base = _service(stack, args, tmp, ehr.clients_entry())
        if service_base is None:
            print("cds97530 sandbox: no service to start here; pass --service-url", file=sys.stderr)
            return 2
        print(f"CDS service     {service_base}/cds-services\n", file=out)
        _fire_hooks(out, args, ehr, data, service_base, hooks)
        if args.serve:
            print("\nrunning; Ctrl-C to stop", file=out)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(1)
    return 0


def _fhir_with_data(
    stack: contextlib.ExitStack, args: argparse.Namespace, data: Any, out: Any
) -> tuple[str, str | None, Callable[[], str]]:
    """The FHIR server (``--fhir-base-url``, else one started here) with the synthetic data loaded; data
    put on a server we did not start is deleted on the way out unless ``--keep-data``. Returns the base,
    the EHR's own token and where the EHR gets the token it hands the service."""
    from sandbox.fhir_server import FhirServer, fhir_transaction
    from sandbox.public import delete_dataset

    if args.fhir_base_url:
        base = args.fhir_base_url.rstrip("/")
        ehr_token = args.fhir_token

        def token_source() -> str:
            return args.fhir_token or ""
    else:
        fhir = stack.enter_context(FhirServer())
        base = fhir.base_url
        ehr_token = fhir.issue_token(expires_in=None)

        def token_source() -> str:
            return fhir.issue_token(expires_in=300)
    print(f"FHIR server     {base}", file=out)
    for bundle in data.bundles():
        fhir_transaction(base, bundle, token=ehr_token)
    print(f"synthetic data  {len(data.resources)} resources, {len(data.patients)} patients, tag {data.tag_param}", file=out)
    if args.fhir_base_url and not args.keep_data:
        stack.callback(delete_dataset, base, data, token=ehr_token)
    return base, ehr_token, token_source


def _simulated_ehr(
    stack: contextlib.ExitStack, args: argparse.Namespace, data: Any, base: str, ehr_token: str | None,
    token_source: Callable[[], str], out: Any,
) -> Any:
    """The simulated EHR with its signing keys and JWKS endpoint; prints the client entry the service
    must register. It hands the service a FHIR token only when it has one (a started server, or --fhir-token)."""
    from sandbox.ehr import EhrKeys, JwksServer, SimulatedEhr

    keys = EhrKeys()
    jwks = stack.enter_context(JwksServer(keys, port=args.jwks_port))
    ehr = SimulatedEhr(keys=keys, jku=jwks.url, iss=jwks.origin, fhir_base=base,
                       token_source=token_source if (args.fhir_token or not args.fhir_base_url) else None,
                       ehr_token=ehr_token, run_tag=data.tag)
    stack.callback(ehr.close)
    print(f"EHR JWKS        {jwks.url}", file=out)
    print("clients entry   " + json.dumps(ehr.clients_entry()), file=out)
    return ehr


def _service(stack: contextlib.ExitStack, args: argparse.Namespace, tmp: Path, entry: dict[str, Any]) -> str | None:
    """The service to fire at: ``--service-url``, else one started here that registers only this EHR
    (SQLite store in the temporary folder). None when there is neither."""
    import yaml

    from sandbox.service_runner import running_service

    if args.service_url:
        return str(args.service_url).rstrip("/")
    if args.service_factory is None:
        return None
    clients = tmp / "clients.yaml"
    clients.write_text(yaml.safe_dump({"clients": [entry]}), encoding="utf-8")
    factory = args.service_factory(clients, f"sqlite:///{tmp / 'sandbox.sqlite3'}")
    svc = stack.enter_context(running_service(factory))
    return str(svc.base_url)


def _fire_hooks(out: Any, args: argparse.Namespace, ehr: Any, data: Any, service_base: str, hooks: list[str]) -> None:
    """Discovery, then each chosen hook for each visit, printed as it answers; with ``--apply`` the first
    suggestion of a successful answer is applied and its feedback posted."""
    ehr.discover(service_base)
    visits = data.visits(payer=args.payer)[: max(args.visits, 0)]
    applied = False
    for visit in visits:
        for hook in hooks:
            context = dict(ehr.context_for(hook, data, visit))
            result = ehr.fire(service_base, HOOKS[hook], context, prefetch=args.prefetch, alg=args.alg)
            _print_result(out, visit, hook, result, as_json=args.json)
            if args.apply and not applied and result.status == 200:
                applied = _apply_first(out, ehr, service_base, result, context)


def _print_result(out: Any, visit: Any, hook: str, result: Any, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"visit": visit.key, "payer": visit.payer, "content_type": visit.content_type,
                          "hook": result.hook, "service": result.service_id, "status": result.status,
                          "elapsed_ms": round(result.elapsed * 1000), "response": result.body}), file=out)
        return
    print(f"{visit.key:<14} {visit.payer:<10} {visit.content_type:<16} {hook:<13} "
          f"HTTP {result.status} {result.elapsed * 1000:5.0f} ms  {len(result.cards)} card(s)", file=out)
    for card in result.cards:
        print(f"    [{card.get('indicator')}] {card.get('summary')}", file=out)
        for s in card.get("suggestions") or []:
            print(f"        suggestion: {s.get('label')}", file=out)


def _apply_first(out: Any, ehr: Any, service_base: str, result: Any, context: dict[str, Any]) -> bool:
    for card in result.cards:
        for suggestion in card.get("suggestions") or []:
            drafts = {}
            for entry in (context.get("draftOrders") or {}).get("entry") or []:
                res = entry["resource"]
                drafts[f"{res['resourceType']}/{res['id']}"] = res
            done = ehr.apply_suggestion(suggestion, drafts=drafts)
            resp = ehr.send_feedback(service_base, result.service_id, card,
                                     accepted=[suggestion["uuid"]] if suggestion.get("uuid") else [])
            print(f"    applied '{suggestion.get('label')}': {', '.join(done)}; feedback HTTP {resp.status_code}", file=out)
            return True
    return False
