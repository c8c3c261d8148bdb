"""The `cds97530` command line: one subcommand per job, and the one place the packages meet.

    check, rules          cds97530/check_command.py, rules_command.py: the library (``plugin``) on files
    serve, feedback, db   cds97530/service_commands.py: the CDS service (``cds_hooks``) with the SMART page
                          (``smart_app``) and, only under ``serve --demo``, the demo world (``sandbox``)
    sandbox               sandbox/command.py (the ``[sandbox]`` extra), given the service by this package
    audit                 audit/command.py (the ``[audit]`` extra)

``plugin`` imports none of the others, and ``cds_hooks``, ``smart_app`` and ``sandbox`` import one
another nowhere: only this package composes them (``tests/test_package_boundaries.py``).

Heavy imports (FastAPI, SQLAlchemy, uvicorn) happen inside the subcommand that needs them, so
`cds97530 check` starts fast. Each subcommand registers itself in ``_build_parser`` and is run by
a ``_cmd_<name>(args) -> int`` function. Errors a user can cause end as one line on stderr and
exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cds97530",
        description="Check CPT 97530 (Therapeutic Activities) documentation, units and codes.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # --- check (plugin on files) -------------------------------------------------------------
    check = sub.add_parser("check", help="evaluate FHIR Bundles or plain-text notes")
    check.add_argument("files", nargs="+", metavar="FILE", help="FHIR Bundle JSON or a plain-text note")
    check.add_argument("--format", choices=("json", "text"), default="text")
    check.add_argument("--payer", default=None, help="payer profile id (medicare, medicaid, commercial, wsi, ...)")
    check.add_argument("--code", default="97530", help="billed code of a plain-text note (default 97530)")
    check.add_argument("--units", type=_count(999), default=None, help="billed units of a plain-text note")
    check.add_argument("--minutes", type=_count(24 * 60), default=None, help="minutes billed for the line of a plain-text note")
    check.add_argument("--line", action="append", default=[], type=_line_spec, metavar="CODE:UNITS[:MINUTES]",
                       help="a billed line of a plain-text note (repeatable: --line 97530:2:25 --line 97110:1:15); "
                            "replaces --code/--units/--minutes")
    check.add_argument("--modifier", action="append", default=[], help="modifier of a plain-text note's line (repeatable)")
    check.add_argument("--role", choices=("PT", "PTA", "OT", "OTA"), default=None, help="who furnished a plain-text note's service")
    check.add_argument("--locality", default=None, metavar="MAC-LOC",
                       help="Medicare locality for fee estimates, e.g. 01112-05 (gpci.yaml); "
                       "overrides the Coverage's and the payer profile's (none: national)")
    check.add_argument("--rules", default=None, metavar="DIR", help="ruleset directory (a copy of plugin/data; default the packaged rules)")
    check.set_defaults(run=_cmd_check)

    # --- rules (test and explain a ruleset) ----------------------------------------------------
    rules = sub.add_parser("rules", help="test a ruleset's examples, or explain which rules decided a note")
    rsub = rules.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    rtest = rsub.add_parser("test", help="run every entry's fires/quiet examples; exit 1 on a failure")
    rtest.add_argument("dir", nargs="?", default=None, metavar="DIR", help="ruleset directory (default the packaged rules)")
    rtest.add_argument("--verbose", "-v", action="store_true", help="list every entry, not only failures")
    rtest.add_argument("--redos", action="store_true", help="also check every pattern for super-linear backtracking (needs regexploit)")
    rtest.set_defaults(run=_cmd_rules)
    rexplain = rsub.add_parser("explain", help="which rules fired where, and how each criterion and the code were decided")
    rexplain.add_argument("file", metavar="FILE", help="FHIR Bundle JSON or a plain-text note")
    rexplain.add_argument("--rules", default=None, metavar="DIR", help="ruleset directory (default the packaged rules)")
    rexplain.add_argument("--payer", default=None)
    rexplain.add_argument("--code", default="97530")
    rexplain.set_defaults(run=_cmd_rules)

    # --- other subcommands register below (serve, feedback, db, sandbox) -------------------------
    _register_audit(sub)
    _register_optional(sub)
    return parser


def _line_spec(text: str) -> tuple[str, int | None, int | None]:
    """argparse type: 'CODE:UNITS[:MINUTES]' ('97530:2:25'; units or minutes may be left empty)."""
    parts = text.split(":")
    if not 2 <= len(parts) <= 3 or not parts[0].strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not CODE:UNITS[:MINUTES] (e.g. 97530:2:25)")
    code = parts[0].strip().upper()
    if not (len(code) == 5 and code[:4].isalnum()):
        raise argparse.ArgumentTypeError(f"{code!r} is not a CPT/HCPCS code")
    units = _count(999)(parts[1]) if parts[1].strip() else None
    minutes = _count(24 * 60)(parts[2]) if len(parts) == 3 and parts[2].strip() else None
    return code, units, minutes


def _count(limit: int) -> Callable[[str], int]:
    """argparse type: a whole number from 0 to ``limit``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not 0 <= value <= limit:
            raise argparse.ArgumentTypeError(f"{value} is outside 0..{limit}")
        return value
    return parse


def _register_audit(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`audit` lives in the top-level audit package (plugin + the [audit] extra, no service deps)."""
    try:
        from audit import command as audit_command
    except ImportError:
        return
    audit_command.register(sub)


def _register_optional(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``serve``, ``feedback``, ``db`` (the service's dependencies) and ``sandbox`` (the ``[sandbox]`` extra)."""
    try:
        from cds97530 import service_commands
    except ImportError:  # an install without the service's dependencies still runs `check` and `audit`
        return
    service_commands.register(sub)
    try:
        from sandbox import command as sandbox_command
    except ModuleNotFoundError as exc:
        if exc.name != "sandbox":
            raise
        return  # a build without the demo world
    sandbox_command.register(sub, service_factory=service_commands.sandbox_service_factory)


def _cmd_rules(args: argparse.Namespace) -> int:
    from cds97530.rules_command import run_rules

    return run_rules(args)


def _cmd_check(args: argparse.Namespace) -> int:
    from cds97530.check_command import run_check

    return run_check(args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
