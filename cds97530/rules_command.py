"""`cds97530 rules test [DIR]` and `cds97530 rules explain FILE`: a billing lead's view of a ruleset.

``test`` loads the ruleset (a load error is exit 2 naming file, path and entry id), runs every
entry's paired examples on the entry alone and the ablation through the engine, prints one
line per failure and exits 1 when any failed. ``explain`` evaluates one note or Bundle and prints
which rules fired where and how each criterion and the documented code were decided.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports the plugin when a command runs
    from plugin import Ruleset

# The same cap as `cds97530 check` (check_command.MAX_INPUT_BYTES; the library's commands import only the
# library, so the number is written twice and tests/cli_input checks the two commands refuse alike): a
# note is kilobytes, and an unbounded read of a mistaken path (a disk image, a log) takes the memory.
MAX_INPUT_BYTES = 32 * 1024 * 1024
_MB = 1024 * 1024


def run_rules(args: argparse.Namespace) -> int:
    from plugin import RuleSetError, load_ruleset

    directory = args.dir if args.rules_command == "test" else args.rules
    try:
        ruleset = load_ruleset(directory)
    except RuleSetError as exc:
        print(f"cds97530: ruleset: {exc}", file=sys.stderr)
        return 2
    if args.rules_command == "test":
        return _test(ruleset, verbose=args.verbose, redos=getattr(args, "redos", False))
    return _explain(ruleset, Path(args.file), payer=args.payer, code=args.code)


def _test(ruleset: Ruleset, *, verbose: bool, redos: bool = False) -> int:
    from plugin.rulecheck import ablation_failures, check_entry, redos_failures

    lexicon = ruleset.lexicon
    failures = []
    if redos:  # first: an exponential pattern would hang the examples below
        try:
            failures = redos_failures(lexicon)
        except ImportError:
            print("cds97530: --redos needs the regexploit package (pip install regexploit)", file=sys.stderr)
            return 2
        if failures:
            for failure in failures:
                print(f"FAIL {failure}")
            print(f"{len(failures)} patterns backtrack super-linearly: fix them before the examples can run")
            return 1
    for rule in lexicon.rules:
        found = check_entry(rule)
        failures.extend(found)
        if verbose:
            print(f"{'FAIL' if found else 'ok  '} {rule.id} ({len(rule.fires)} fires, {len(rule.quiet)} quiet)")
    failures.extend(ablation_failures(lexicon))
    for failure in failures:
        print(f"FAIL {failure}")
    entries = len(lexicon.rules)
    examples = sum(len(r.fires) + len(r.quiet) for r in lexicon.rules)
    bad = len({f.rule_id for f in failures})
    print(f"{entries} entries, {examples} examples, ruleset {ruleset.directory}: "
          f"{'all pass' if not failures else f'{len(failures)} failures in {bad} entries'}")
    return 1 if failures else 0


def _explain(ruleset: Ruleset, path: Path, *, payer: str | None, code: str) -> int:
    from plugin import FhirInputError, PluginError
    from plugin.explain import explain_note, explain_resources, render
    from plugin.note_file import read_input

    try:
        raw = _read_capped(path)
    except OSError as exc:
        print(f"cds97530: {path}: cannot read the file ({exc.strerror or type(exc).__name__})", file=sys.stderr)
        return 2
    except _TooLarge as exc:
        print(f"cds97530: {path}: {exc}", file=sys.stderr)
        return 2
    try:
        kind, value = read_input(raw)  # the same reading of the file as `check` (a PDF is not a note)
        if kind == "fhir":
            report = explain_resources(value, ruleset=ruleset, payer=payer)
        else:
            report = explain_note(value, ruleset=ruleset, payer=payer, code=code, note_id=path.name)
    except (FhirInputError, PluginError) as exc:
        print(f"cds97530: {path}: {exc}", file=sys.stderr)
        return 2
    print(render(report))
    return 0


class _TooLarge(ValueError):
    pass


def _read_capped(path: Path) -> bytes:
    """The file's bytes, refused past MAX_INPUT_BYTES: by its size before reading (a regular file), and
    by a read of at most one byte over the cap (a pipe or /dev/stdin, whose size says nothing)."""
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        raw = b"" if size > MAX_INPUT_BYTES else handle.read(MAX_INPUT_BYTES + 1)
    if size > MAX_INPUT_BYTES or len(raw) > MAX_INPUT_BYTES:
        raise _TooLarge(f"file is {max(size, len(raw)) // _MB} MB, over the {MAX_INPUT_BYTES // _MB} MB limit")
    return raw
