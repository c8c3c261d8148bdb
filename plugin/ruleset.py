"""The ruleset as a value: everything the engine believes, loaded from one directory of YAML.

Why a value rather than module-level caches: a billing lead must be able to copy
``plugin/data/``, edit a synonym or a payer profile, and run ``cds97530 check --rules DIR`` or
``cds97530 rules test DIR`` against the copy without touching the installed package, and the
service must be able to run with a ruleset chosen by its settings. So every piece of rule data
(the compiled lexicon, the criteria wording, the payer profiles) hangs off one immutable
``Ruleset``; callers pass it (``evaluate_visit(visit, ruleset=...)``) or get the packaged default.
Loading validates everything at once: a bad file raises ``RuleSetError`` naming the file, the
path inside it and the entry id, before any note is read.

    >>> rs = load_ruleset()
    >>> rs.lexicon.rule("ta.transfer").group
    'activities.97530'
    >>> load_ruleset() is rs  # one value per directory
    True
"""
from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import yaml

from plugin import yaml_text
from plugin.errors import RuleSetError

if TYPE_CHECKING:
    from plugin.billing.payers import PayerProfile
    from plugin.billing.tables import BillingTables
    from plugin.criteria import CriteriaText
    from plugin.lexicon import Lexicon

MAX_RULE_FILE_BYTES = 4_000_000  # a rules file larger than this is not a hand-edited ruleset


@cache
def packaged_dir() -> Path:
    """The packaged ``plugin/data`` directory (the default ruleset)."""
    return Path(__file__).resolve().parent / "data"


def read_yaml(path: Path) -> Any:
    """One rules file, parsed; ``RuleSetError`` naming the file when unreadable or not YAML."""
    name = path.name if path.parent == packaged_dir() else str(path)
    try:
        if path.stat().st_size > MAX_RULE_FILE_BYTES:
            raise RuleSetError(f"larger than {MAX_RULE_FILE_BYTES} bytes", file=name)
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RuleSetError("file missing from the ruleset directory", file=name) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleSetError(f"cannot read ({exc.__class__.__name__})", file=name) from None
    try:
        return yaml_text.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleSetError(f"not valid YAML ({str(exc).splitlines()[0]})", file=name) from None


@dataclass(frozen=True, slots=True, eq=False)
class Ruleset:
    """One complete, validated set of rules. Immutable; compare by identity (one per directory)."""

    directory: Path
    lexicon: Lexicon
    criteria: CriteriaText
    payers: Mapping[str, PayerProfile]
    billing: BillingTables
    """Fees, GPCIs, fee schedules, MUE, NCCI pairs, timed codes and billing rule texts of this directory."""
    payer_matchers: tuple[tuple[str, tuple[re.Pattern[str], ...]], ...] = ()
    """(payer id, its ``match`` patterns) by priority then id, compiled once at load (``match_payer``)."""

    @property
    def version(self) -> str:
        """``lexicon <v>; criteria <v>``, reported with every evaluation."""
        return f"lexicon {self.lexicon.version}; criteria {self.criteria.version}"

    @property
    def is_packaged(self) -> bool:
        return self.directory == packaged_dir()

    def payer(self, payer_id: str) -> PayerProfile:
        """The payer profile with this id; ``UnknownPayerError`` (a RuleSetError and KeyError) when none."""
        from plugin.billing.payers import UnknownPayerError

        key = (payer_id or "").strip().lower()
        try:
            return self.payers[key]
        except KeyError:
            raise UnknownPayerError(
                f"unknown payer profile {payer_id!r}; known: {', '.join(sorted(self.payers))} "
                f"(add {'plugin/data' if self.is_packaged else self.directory}/payers/<id>.yaml for a new payer)"
            ) from None


_LOCK = threading.Lock()
_CACHE: dict[Path, Ruleset] = {}
_BY_ARGUMENT: dict[object, Ruleset] = {}  # absolute paths as given: no filesystem call on the hot path


def load_ruleset(path: str | Path | None = None) -> Ruleset:
    """The ruleset in ``path`` (default: the packaged ``plugin/data``), loaded once per directory.

    The directory holds ``lexicon.yaml`` (+ ``lexicon.examples.yaml``), ``criteria.yaml``, ``time.yaml``,
    ``payers/*.yaml`` and the billing tables (``fees.yaml``, ``gpci.yaml``, ``fee_schedules.yaml``,
    ``mue.yaml``, ``ncci_pairs.yaml``, ``timed_codes.yaml``, ``modifier_rules.yaml``); copy
    ``plugin/data`` to start a new one.
    """
    fast = _BY_ARGUMENT.get(path)
    if fast is not None:
        return fast
    directory = packaged_dir() if path is None else Path(path).expanduser().resolve()
    cached = _CACHE.get(directory)
    if cached is None:
        with _LOCK:
            cached = _CACHE.get(directory)
            if cached is None:
                cached = _CACHE[directory] = _read(directory)
    if path is None or Path(path).is_absolute():
        _BY_ARGUMENT[path] = cached  # a relative path is resolved again each time (the cwd may change)
    return cached


def reload_ruleset(path: str | Path | None = None) -> Ruleset:
    """Read ``path`` again (after an edit), replacing the cached value for that directory."""
    directory = packaged_dir() if path is None else Path(path).expanduser().resolve()
    fresh = _read(directory, fresh=True)
    with _LOCK:
        _CACHE[directory] = fresh
        for key in [k for k, v in _BY_ARGUMENT.items() if v.directory == directory]:
            _BY_ARGUMENT[key] = fresh
    return fresh


def _read(directory: Path, *, fresh: bool = False) -> Ruleset:
    if not directory.is_dir():
        raise RuleSetError("not a directory", file=str(directory))
    from plugin.billing.payers import read_payers
    from plugin.billing.tables import packaged_tables, read_tables
    from plugin.criteria import read_criteria
    from plugin.lexicon import read_lexicon_dir

    lexicon = read_lexicon_dir(directory)
    criteria = read_criteria(directory, lexicon.sources)
    payers = read_payers(directory)
    billing = packaged_tables() if directory == packaged_dir() and not fresh else read_tables(directory)
    _check_payer_tables(payers, billing)
    ordered = sorted(payers.values(), key=lambda p: (p.priority, p.id))
    matchers = tuple((p.id, tuple(re.compile(m, re.IGNORECASE) for m in p.match)) for p in ordered)
    return Ruleset(directory=directory, lexicon=lexicon, criteria=criteria, payers=MappingProxyType(payers),
                   billing=billing, payer_matchers=matchers)


def _check_payer_tables(payers: Mapping[str, PayerProfile], billing: BillingTables) -> None:
    """Every payer's ``fee_schedule`` is defined in ``fee_schedules.yaml`` and its ``locality`` is in
    ``gpci.yaml`` (a typo would otherwise price the payer nationally without a word)."""
    known = {loc for year in billing.gpci_years.values() for loc in year}
    for pid, profile in sorted(payers.items()):
        file = f"payers/{pid}.yaml"
        if profile.fee_schedule is not None and profile.fee_schedule not in billing.schedules.schedules:
            raise RuleSetError(f"fee schedule {profile.fee_schedule!r} is not defined in fee_schedules.yaml "
                               f"(defined: {', '.join(sorted(billing.schedules.schedules))}; null = no estimate)",
                               file=file, path="fee_schedule")
        if profile.locality is not None and profile.locality not in known:
            raise RuleSetError(f"locality {profile.locality!r} is not in gpci.yaml", file=file, path="locality")
