"""``cds97530 audit``: the command line of the retrospective audit (registered by ``cds97530/cli.py``).

    cds97530 audit INPUT... --out DIR [--engine local|spark] [--master URL] [--processes N]
                   [--rules DIR] [--payer-map FILE] [--since YYYY-MM-DD --until YYYY-MM-DD] [--format parquet|csv]

Exit 0 when the audit ran (lines needing attention are its findings, not a failure), 2 on input or
options it cannot use (one line on stderr, no traceback). Needs only ``plugin`` and the ``[audit]`` extra.
"""
from __future__ import annotations

import argparse
import sys
from datetime import date
from typing import Any


def _day(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 512:
        raise argparse.ArgumentTypeError(f"{value} is outside 1..512")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="Bulk Data NDJSON files (.ndjson or .ndjson.gz), a folder of them, or the $export manifest JSON")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder: lines/, report.html, summary.json, skipped.csv")
    parser.add_argument("--engine", choices=("local", "spark"), default="local")
    parser.add_argument("--master", default=None, metavar="URL", help="Spark master (default local[*]); spark engine only")
    parser.add_argument("--processes", type=_positive, default=None, help="local engine: worker processes (default: the cores)")
    parser.add_argument("--rules", default=None, metavar="DIR", help="ruleset directory (plugin.load_ruleset); default the packaged rules")
    parser.add_argument("--payer-map", default=None, metavar="FILE", help="YAML/JSON: Coverage payor/class value -> payer profile id")
    parser.add_argument("--since", type=_day, default=None, metavar="DATE", help="first service date to audit (inclusive)")
    parser.add_argument("--until", type=_day, default=None, metavar="DATE", help="last service date to audit (inclusive)")
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet", help="line-level output format")
    parser.add_argument("--progress", dest="progress", action="store_true", default=None, help="always show the progress bar")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="never show the progress bar")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("audit", help="retrospective audit of a FHIR Bulk Data export (local or Spark)",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from audit.payer_map import PayerMapError, load_payer_map
    from audit.rows import AuditOptions, rules_note
    from audit.run import AuditInputError, run_audit

    if problem := _option_problem(args):
        return _fail(problem)
    try:
        payer_map = load_payer_map(args.payer_map) if args.payer_map else {}
    except PayerMapError as exc:
        return _fail(str(exc))
    if args.rules:
        from pathlib import Path

        if not Path(args.rules).is_dir():
            return _fail(f"--rules {args.rules}: no such directory")
        note = rules_note(args.rules)
        if "NOT applied" in note:
            print(f"audit: {note}", file=sys.stderr)
    options = AuditOptions(payer_map=payer_map, since=args.since, until=args.until, rules_dir=args.rules)
    try:
        result = run_audit(args.inputs, args.out, engine=args.engine, options=options, processes=args.processes,
                           master=args.master, fmt=args.format, progress=args.progress)
    except AuditInputError as exc:
        return _fail(str(exc))
    except ImportError as exc:
        return _fail(f"{exc.name or 'a package'} is missing: pip install 'cds97530[audit]'")
    except OSError as exc:
        return _fail(f"cannot write to {args.out}: {type(exc).__name__}: {exc.strerror or exc}")
    except _spark_errors() as exc:
        return _fail(f"Spark failed: {str(exc).splitlines()[0][:200]}")
    print(result.line())
    return 0


def _option_problem(args: argparse.Namespace) -> str | None:
    """Options that contradict each other, refused before anything is read."""
    if args.since and args.until and args.since > args.until:
        return f"--since {args.since} is after --until {args.until}"
    if args.master and args.engine != "spark":
        return "--master needs --engine spark"
    if args.processes and args.engine != "local":
        return "--processes is for --engine local (Spark uses --master local[N])"
    return None


def _spark_errors() -> tuple[type[BaseException], ...]:
    try:
        from py4j.protocol import Py4JError
        from pyspark.errors import PySparkException

        return (PySparkException, Py4JError)
    except ImportError:
        return (RuntimeError,)


def _fail(message: str) -> int:
    print(f"cds97530 audit: {message}", file=sys.stderr)
    return 2


def main(argv: Any = None) -> int:
    """``python -m audit.command``: the same command without the service package installed."""
    parser = argparse.ArgumentParser(prog="cds97530 audit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
