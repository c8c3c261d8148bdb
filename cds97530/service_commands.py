"""The service's subcommands: ``serve``, ``feedback report``, ``db upgrade``; and the composition.

    cds97530 serve --host 127.0.0.1 --port 8530 --clients clients.yaml --public-url https://cds.example.org
    cds97530 serve --demo                      # + the demo EHR and its authorization server (``[sandbox]``)
    cds97530 feedback report [--database-url URL] [--format text|json]
    cds97530 db upgrade [--database-url URL]

Options left out fall back to ``CDS97530_*`` (service) and ``SMART_*`` (SMART page) environment
variables, then to the defaults (docs/deploying.md).

This module is where the packages meet (``build_app``; the parser is ``cds97530/cli.py``): the CDS
service at ``/``, the SMART page at ``/smart`` (production: the EHR's own authorization server,
sessions in the service's database, ``iss`` allow-list and ``frame-ancestors`` from the settings and
the clients file) and, only with ``--demo``, the sandbox's demo EHR and authorization server at ``/demo``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cds_hooks.errors import CdsError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="run the CDS Hooks service (uvicorn, one process)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8530)
    serve.add_argument("--public-url", default=None, help="base URL EHRs call (JWT aud); default http://HOST:PORT")
    serve.add_argument("--database-url", default=None, help="SQLAlchemy URL (default: SQLite under ./.cds97530/)")
    serve.add_argument("--clients", type=Path, default=None, help="YAML clients file (see docs/registering.md)")
    serve.add_argument("--smart-launch-url", default=None, help="launch URL of the SMART page for card links")
    serve.add_argument("--deadline", type=float, default=None, help="whole-request deadline in seconds")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (share the store: use PostgreSQL)")
    serve.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    serve.add_argument(
        "--dev-mode-insecure", action="store_true",
        help="SKIP JWT CHECKS (local trials only; logged loudly on every call)",
    )
    serve.add_argument("--rules", type=Path, default=None, metavar="DIR",
                       help="ruleset directory (a copy of plugin/data) instead of the packaged rules")
    serve.add_argument("--demo", action="store_true",
                       help="also run the demo world: FHIR server, synthetic data, demo EHR and auth server ([sandbox] extra)")
    serve.set_defaults(run=_cmd_serve)

    feedback = sub.add_parser("feedback", help="clinicians' feedback on cards")
    fsub = feedback.add_subparsers(dest="feedback_command", required=True, metavar="ACTION")
    report = fsub.add_parser("report", help="print accept/override rates per rule")
    report.add_argument("--database-url", default=None)
    report.add_argument("--format", choices=("text", "json"), default="text")
    report.add_argument("--by", choices=("rule", "visit"), default="rule",
                        help="rates per rule (default), or one row per visit, line and rule with its answer")
    report.set_defaults(run=_cmd_feedback_report)

    db = sub.add_parser("db", help="database maintenance")
    dsub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = dsub.add_parser("upgrade", help="apply Alembic migrations up to the latest")
    upgrade.add_argument("--database-url", default=None)
    upgrade.set_defaults(run=_cmd_db_upgrade)


def _settings(**overrides: Any) -> Any:
    from cds_hooks.settings import CdsSettings

    return CdsSettings(**{k: v for k, v in overrides.items() if v is not None})


def _fail(message: str) -> int:
    print(f"cds97530: {message}", file=sys.stderr)
    return 2


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from cds_hooks.app import DEV_MODE_BANNER
    from cds_hooks.logs import configure_logging

    try:
        settings = _settings(
            public_url=args.public_url or f"http://{args.host}:{args.port}",
            database_url=args.database_url,
            clients_file=args.clients,
            smart_launch_url=args.smart_launch_url,
            deadline_seconds=args.deadline,
            dev_mode_insecure=True if args.dev_mode_insecure else None,
            rules_dir=args.rules,
        )
        from plugin import load_ruleset

        load_ruleset(settings.rules_dir)  # a bad ruleset fails here (RuleSetError names file and entry), not on a call
        if settings.dev_mode_insecure:
            print(f"\n  !!! {DEV_MODE_BANNER} !!!\n", file=sys.stderr)
        if args.workers > 1:
            if args.demo:
                return _fail("--demo runs in one worker; drop --workers or --demo")
            from cds_hooks.clients import ClientRegistry

            ClientRegistry.load(settings.clients_file)  # a bad clients file fails here, not in N workers
            configure_logging(args.log_level.upper())
            return _serve_workers(args, settings)
        app = build_app(settings, demo=args.demo)
    except DemoUnavailableError as exc:
        return _fail(str(exc))
    except (CdsError, ValueError, OSError) as exc:
        return _fail(str(exc))
    configure_logging(args.log_level.upper())
    from cds_hooks.http_limits import uvicorn_limits

    print(startup_line(args.host, args.port, settings.public_url, demo=args.demo), flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, workers=1, access_log=False,
                **uvicorn_limits(settings))
    return 0


def _serve_workers(args: argparse.Namespace, settings: Any) -> int:
    """Several worker processes: each builds its app from the same settings, passed as environment
    (CDS97530_*), because uvicorn imports the factory in every worker. The store and the jti replay
    cache are shared through the database, so use PostgreSQL (or one worker on SQLite)."""
    import os

    import uvicorn

    for name, value in settings.model_dump(exclude_unset=True).items():
        if value is None:
            continue
        os.environ[f"CDS97530_{name.upper()}"] = value if isinstance(value, str) else (
            str(value) if not isinstance(value, (list, dict)) else __import__("json").dumps(value))
    os.environ["CDS97530_LOG_LEVEL"] = args.log_level.upper()
    from cds_hooks.http_limits import uvicorn_limits

    print(startup_line(args.host, args.port, settings.public_url), flush=True)
    uvicorn.run("cds97530.service_commands:create_worker_app", factory=True, host=args.host, port=args.port, log_config=None,
                workers=args.workers, access_log=False, **uvicorn_limits(settings, workers=args.workers))
    return 0


class DemoUnavailableError(RuntimeError):
    """``--demo`` without the demo world installed."""


def build_app(settings: Any, *, demo: bool = False, smart: Any = None, demo_env: Any = None) -> Any:
    """The deployed app: the CDS service, with the SMART page at ``/smart``; with ``demo`` also
    the demo world at ``/demo`` (FHIR server started now, stopped when the app shuts down).

    ``smart`` is a ``SmartSettings`` to start from (default: ``SMART_*`` from the environment);
    ``demo_env`` an already started ``sandbox.demo_ehr.DemoEnvironment`` (the caller stops it).
    """
    import httpx

    from cds_hooks.app import create_app
    from smart_app import SmartSettings
    from smart_app import create_app as create_smart_app

    env = demo_env
    own_env = demo and demo_env is None
    if own_env:
        try:
            from sandbox.demo_ehr import DemoSettings, start_demo
        except ImportError as exc:
            raise DemoUnavailableError(
                f"--demo needs the demo world: pip install 'cds97530[sandbox]' ({exc.name} is missing)") from exc
        env = start_demo(DemoSettings(public_url=settings.public_url), extra_clients=settings.clients_file)
    if env is not None:
        from sandbox.demo_ehr import demo_app

        settings = settings.model_copy(update=env.cds_overrides())
    try:
        if settings.smart_launch_url is None:  # card links open our own page
            settings = settings.model_copy(update={"smart_launch_url": f"{settings.public_url}/smart/launch"})
        app = create_app(settings)
        smart_settings = smart_settings_for(settings, smart or SmartSettings())
        if env is not None:
            smart_settings = smart_settings.model_copy(update=env.smart_overrides())
        smart_http = httpx.AsyncClient(timeout=smart_settings.fhir_timeout_seconds, follow_redirects=False)
        closers: list[Any] = [smart_http.aclose]
        app.mount("/smart", create_smart_app(smart_settings, smart_http))
        if env is not None:
            demo_http = httpx.AsyncClient(timeout=env.settings.hook_timeout_seconds, follow_redirects=False)
            closers.append(demo_http.aclose)
            app.mount("/demo", demo_app(env, demo_http))
            app.add_api_route("/", _to_demo_ehr, include_in_schema=False)
            if own_env:
                closers.append(env.close)
    except BaseException:
        if own_env and env is not None:
            env.close()
        raise
    _close_with_app(app, closers)
    return app


async def _to_demo_ehr() -> Any:
    from fastapi.responses import RedirectResponse

    return RedirectResponse("/demo/ehr/", status_code=307)


def smart_settings_for(settings: Any, smart: Any) -> Any:
    """The SMART page's settings in production: its URL under the service's, its sessions in the
    service's database, every registered EHR's FHIR server as an allowed ``iss`` and every
    registered browser origin as a ``frame-ancestors`` source (besides SMART_* values)."""
    from cds_hooks.clients import ClientRegistry

    registry = ClientRegistry.load(settings.clients_file)
    update: dict[str, Any] = {
        "allowed_issuers": list(dict.fromkeys([*smart.allowed_issuers, *registry.all_fhir_servers()])),
        "frame_ancestors": list(dict.fromkeys([*smart.frame_ancestors, *registry.all_cors_origins()])),
    }
    if "base_url" not in smart.model_fields_set:
        update["base_url"] = f"{settings.public_url}/smart"
    if smart.database_url is None:
        update["database_url"] = settings.database_url
        update["create_tables"] = settings.create_tables
    if smart.rules_dir is None:  # the page judges with the service's ruleset (--rules / CDS97530_RULES_DIR)
        update["rules_dir"] = settings.rules_dir
    return smart.model_validate({**smart.model_dump(), **update})


def _close_with_app(app: Any, closers: list[Any]) -> None:
    """Run ``closers`` (sync or async) after the app's own shutdown."""
    import inspect
    from contextlib import asynccontextmanager

    from starlette.concurrency import run_in_threadpool

    original = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> Any:
        try:
            async with original(a) as state:
                yield state
        finally:
            for close in closers:
                if inspect.iscoroutinefunction(close):
                    await close()
                else:
                    await run_in_threadpool(close)

    app.router.lifespan_context = lifespan


def create_worker_app() -> Any:
    """Factory for ``cds97530 serve --workers N``: uvicorn imports it in each worker process, so
    each sets up its own logging (CDS97530_LOG_LEVEL) and builds the same app from CDS97530_* and
    SMART_* (sessions and the jti cache are shared through the database)."""
    import os

    from cds_hooks.logs import configure_logging

    configure_logging(os.environ.get("CDS97530_LOG_LEVEL", "INFO").upper())
    return build_app(_settings())


def sandbox_service_factory(clients_file: Path, database_url: str) -> Any:
    """For ``cds97530 sandbox``: builds the real service for the URL the sandbox bound."""
    def factory(public_url: str) -> Any:
        return build_app(_settings(public_url=public_url, clients_file=clients_file, database_url=database_url))
    return factory


def startup_line(host: str, port: int, public_url: str, *, demo: bool = False) -> str:
    """The one line ``serve`` prints before it listens: where, and what to open."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = public_url.rstrip("/")
    line = f"cds97530: listening on http://{shown}:{port} (public URL {base}); CDS discovery {base}/cds-services"
    return line + (f"; open the demo EHR at {base}/" if demo else "")


def _cmd_feedback_report(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from cds_hooks.store import Store

    by_visit = getattr(args, "by", "rule") == "visit"
    try:
        store = Store(_settings(database_url=args.database_url).database_url)
        visit_rows = store.feedback_by_visit() if by_visit else []
        rates = [] if by_visit else store.feedback_rates()
    except (SQLAlchemyError, ValueError) as exc:
        return _fail(f"cannot read the store ({type(exc).__name__}); run `cds97530 db upgrade` first?")
    if by_visit:
        print(json.dumps(visit_rows, indent=2) if args.format == "json" else format_visit_report(visit_rows))
        return 0
    if args.format == "json":
        print(json.dumps([
            {"rule": r.rule, "cards": r.cards, "accepted": r.accepted, "overridden": r.overridden,
             "acceptRate": r.accept_rate, "overrideRate": r.override_rate, "shown": r.shown,
             "overrideReasons": [{"reason": reason, "count": n} for reason, n in r.reasons]}
            for r in rates
        ], indent=2))
        return 0
    print(format_report(rates))
    return 0


def format_report(rates: list[Any]) -> str:
    if not rates:
        return "No cards recorded yet."
    width = max(len("rule"), *(len(r.rule) for r in rates))
    head = f"{'rule':<{width}}  {'cards':>5}  {'accepted':>8}  {'overridden':>10}  {'accept%':>7}  {'override%':>9}"
    lines = [head, "-" * len(head)]
    for r in rates:
        acc = f"{r.accept_rate:.0%}" if r.accept_rate is not None else "-"
        ovr = f"{r.override_rate:.0%}" if r.override_rate is not None else "-"
        lines.append(f"{r.rule:<{width}}  {r.cards:>5}  {r.accepted:>8}  {r.overridden:>10}  {acc:>7}  {ovr:>9}")
        for reason, n in getattr(r, "reasons", ()):
            lines.append(f"{'':<{width}}    overridden {n}x: {reason}")
    lines.append("A card counts once per visit and line, however often the hook fired, and under every rule it "
                 "carries; rates are over cards with feedback.")
    return "\n".join(lines)


def format_visit_report(rows: list[dict[str, Any]]) -> str:
    """One line per visit, line and rule: how often the card was shown and the answer given."""
    if not rows:
        return "No cards recorded yet."
    out = [f"{'visit':<28}  {'line':<22}  {'rule':<34}  {'shown':>5}  answer"]
    out.append("-" * len(out[0]))
    for r in rows:
        answer = r["outcome"] or "no answer"
        if r.get("reason"):
            answer += f" ({r['reason']})"
        out.append(f"{str(r['visit'])[:28]:<28}  {str(r['line'] or '-')[:22]:<22}  {r['rule'][:34]:<34}  {r['shown']:>5}  {answer}")
    return "\n".join(out)


def _cmd_db_upgrade(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from cds_hooks.migrate import upgrade_database

    try:
        url = _settings(database_url=args.database_url).database_url
        upgrade_database(url)
    except (SQLAlchemyError, ValueError, OSError) as exc:
        return _fail(f"upgrade failed ({type(exc).__name__})")
    print("database is at the latest revision")
    return 0
