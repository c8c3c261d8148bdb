"""The packaged billing data files, validated on first read and cached.

Why a schema per file: a billing lead edits these YAML files by hand, so a typo must fail
loudly (``RuleSetError`` naming the file and the path inside it) instead of silently
dropping a rule. Every model forbids unknown keys. Nothing here knows billing logic;
``plugin.billing.units``/``fees``/``rules`` read the validated objects.
"""
from __future__ import annotations

import re
import string
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from plugin import yaml_text
from plugin.errors import RuleSetError

if TYPE_CHECKING:  # tables.py imports this module
    from plugin.billing.tables import BillingTables

DATA_PACKAGE = "plugin"
DATA_DIR = "data"

Confidence = Annotated[str, StringConstraints(pattern=r"^(P|S|U)(-[A-Za-z]+)?$")]
"""Tags of billing-97530.md: P primary, S secondary, U unverified (P-MAC, P-copy, P-payer allowed)."""
IsoDate = Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}$")]
Code = Annotated[str, StringConstraints(pattern=r"^[0-9A-Z]{5}$")]
LOCALITY = re.compile(r"\d{5}-\d{2}")
"""A Medicare payment locality as CMS prints it: MAC (carrier) number, dash, locality number."""

MESSAGE_FIELDS = frozenset(
    {
        "code", "other", "modifier", "expected", "billed", "supported", "mue", "minutes",
        "assistant_minutes", "role", "payer", "total_stated", "total_sum", "amount", "year", "money",
    }
)
"""Placeholders a rule message or fix may use; anything else is a data error."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class SourceModel(_Strict):
    citation: str = Field(min_length=3)
    as_of: IsoDate
    confidence: Confidence
    url: str | None = None
    notes: str = ""


# ---------------------------------------------------------------- payers


class PayerModel(_Strict):
    id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]*$")]
    label: str = Field(min_length=1)
    unit_method: Literal["cms-total-time", "ama-per-code"]
    priority: int = 50
    match: tuple[str, ...] = ()
    assistant_modifiers_required: bool
    discipline_modifiers_required: bool = True
    ncci_applies: bool
    mue_applies: bool
    fee_schedule: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]*$")] | None
    """A schedule id of ``fee_schedules.yaml`` whose published data prices this payer; ``null`` when the
    project holds none for it (then: "no estimate for this payer", and no figure is computed)."""
    locality: str | None = None
    """The payer's Medicare locality (``"<MAC>-<locality>"`` as in ``gpci.yaml``, e.g. ``01112-05``) when
    every visit it pays is in one locality (a clinic's own copy of the profile). A Coverage that
    names a locality overrides it; neither = national (GPCI = 1)."""
    source: SourceModel

    @model_validator(mode="after")
    def _patterns_compile(self) -> PayerModel:
        for i, pattern in enumerate(self.match):
            try:
                re.compile(pattern, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"match[{i}] is not a valid regular expression: {exc}") from None
        if self.locality is not None and not LOCALITY.fullmatch(self.locality):
            raise ValueError(f"locality {self.locality!r} is not '<5-digit MAC>-<2-digit locality>' (e.g. 01112-05)")
        return self


# ---------------------------------------------------------------- fees


class RvuModel(_Strict):
    work: float | None = Field(default=None, ge=0)
    pe: float | None = Field(default=None, ge=0)
    mp: float | None = Field(default=None, ge=0)
    total: float | None = Field(default=None, gt=0)
    confidence: Confidence
    inferred: tuple[Literal["work", "pe", "mp"], ...] = ()
    notes: str = ""

    @model_validator(mode="after")
    def _complete(self) -> RvuModel:
        if self.work is not None and self.pe is not None and self.mp is not None:
            summed = round(self.work + self.pe + self.mp, 4)
            if self.total is not None and abs(summed - self.total) > 0.005:
                raise ValueError(f"work + pe + mp = {summed} but total = {self.total}")
        elif self.total is None:
            raise ValueError("give work, pe and mp, or at least total")
        return self

    @property
    def total_rvu(self) -> float:
        if self.work is not None and self.pe is not None and self.mp is not None:
            return round(self.work + self.pe + self.mp, 4)
        assert self.total is not None
        return self.total

    @property
    def has_components(self) -> bool:
        return self.work is not None and self.pe is not None and self.mp is not None


class FeeYearModel(_Strict):
    year: int = Field(ge=2000, le=2100)
    conversion_factor: float = Field(gt=0)
    label: str
    source: SourceModel
    codes: dict[Code, RvuModel]


class FeesModel(_Strict):
    source: SourceModel
    mppr_pe_fraction: float = Field(gt=0, le=1)
    assistant_rate: float = Field(gt=0, le=1)
    assistant_modifiers: tuple[str, ...]
    years: tuple[FeeYearModel, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_years(self) -> FeesModel:
        years = [y.year for y in self.years]
        if len(set(years)) != len(years):
            raise ValueError(f"duplicate years: {years}")
        return self


# ---------------------------------------------------------------- localities (GPCI) and fee schedules


class GpciModel(_Strict):
    state: str
    name: str
    pw: float = Field(gt=0)
    pe: float = Field(gt=0)
    mp: float = Field(gt=0)


class GpciYearModel(_Strict):
    year: int = Field(ge=2000, le=2100)
    localities: dict[Annotated[str, StringConstraints(pattern=r"^\d{5}-\d{2}$")], GpciModel]


class GpciFileModel(_Strict):
    source: SourceModel
    years: tuple[GpciYearModel, ...]


class ScheduleModel(_Strict):
    label: str = Field(min_length=1)
    localities: bool = False  # priced per Medicare locality (GPCIs) when one is known


class SchedulesModel(_Strict):
    source: SourceModel
    schedules: dict[Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]*$")], ScheduleModel]


# ---------------------------------------------------------------- MUE, NCCI, timed codes


class MueEdit(_Strict):
    code: Code
    units: int = Field(ge=0)
    confidence: Confidence
    source: str
    mai: Literal[1, 2, 3] | None = None


class MueModel(_Strict):
    source: SourceModel
    edits: tuple[MueEdit, ...]

    @model_validator(mode="after")
    def _unique(self) -> MueModel:
        codes = [e.code for e in self.edits]
        dupes = sorted({c for c in codes if codes.count(c) > 1})
        if dupes:
            raise ValueError(f"duplicate MUE codes: {dupes}")
        return self


class NcciPair(_Strict):
    column1: Code
    column2: Code
    indicator: Literal[0, 1, 9]
    confidence: Confidence
    source: str
    active: bool = True
    effective: IsoDate | None = None
    deleted: IsoDate | None = None


class NcciModel(_Strict):
    source: SourceModel
    pairs: tuple[NcciPair, ...]


class TimedCode(_Strict):
    code: Code
    label: str
    confidence: Confidence | None = None


class UntimedCode(_Strict):
    code: Code
    label: str
    kind: Literal["group", "evaluation", "supervised-modality", "other"]
    discipline: Literal["PT", "OT"] | None = None
    confidence: Confidence | None = None


class TimedCodesModel(_Strict):
    source: SourceModel
    timed: tuple[TimedCode, ...]
    untimed: tuple[UntimedCode, ...]

    @model_validator(mode="after")
    def _disjoint(self) -> TimedCodesModel:
        both = {c.code for c in self.timed} & {c.code for c in self.untimed}
        if both:
            raise ValueError(f"codes listed as timed and untimed: {sorted(both)}")
        return self


# ---------------------------------------------------------------- rule texts


class RuleModel(_Strict):
    id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]*$")]
    severity: Literal["error", "warning", "info"]
    message: str = Field(min_length=3)
    fix: str = ""
    source: str = Field(min_length=3)
    confidence: Confidence

    @model_validator(mode="after")
    def _placeholders(self) -> RuleModel:
        for name in ("message", "fix"):
            text = getattr(self, name)
            try:
                fields = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
            unknown = fields - MESSAGE_FIELDS
            if unknown:
                raise ValueError(f"{name} uses unknown placeholders {sorted(unknown)}")
        return self


class RulesModel(_Strict):
    source: SourceModel
    rules: tuple[RuleModel, ...]

    @model_validator(mode="after")
    def _unique(self) -> RulesModel:
        ids = [r.id for r in self.rules]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate rule ids: {dupes}")
        return self


# ---------------------------------------------------------------- reading

M = TypeVar("M", bound=BaseModel)

DATA_FILES: dict[str, type[BaseModel]] = {
    "fees.yaml": FeesModel,
    "gpci.yaml": GpciFileModel,
    "fee_schedules.yaml": SchedulesModel,
    "mue.yaml": MueModel,
    "ncci_pairs.yaml": NcciModel,
    "timed_codes.yaml": TimedCodesModel,
    "modifier_rules.yaml": RulesModel,
}
"""Billing data files under ``plugin/data/`` (payer profiles live in ``plugin/data/payers/``)."""


@cache
def _data_root() -> Traversable:
    """``plugin/data`` as a resource container.

    ``plugin.data`` (a namespace folder) is tried first: an editable install made before
    ``plugin/__init__.py`` existed maps ``plugin`` as a namespace whose path includes a
    non-directory hook entry, which ``files("plugin")`` rejects.
    """
    try:
        return files(f"{DATA_PACKAGE}.{DATA_DIR}")
    except (ModuleNotFoundError, NotADirectoryError, TypeError, ValueError):
        return files(DATA_PACKAGE).joinpath(DATA_DIR)


def validate_document(model: type[M], data: Any, file: str) -> M:
    """Validate parsed YAML against ``model``; errors name ``file`` and the dotted path."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"])
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise RuleSetError(f"{first['msg']}{more}", file=file, path=path) from None


def parse_document(model: type[M], text: str, file: str) -> M:
    """Parse YAML text and validate it (used by the loaders and by tests of edited files)."""
    try:
        data = yaml_text.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleSetError(f"not valid YAML: {exc}", file=file) from None
    if not isinstance(data, dict):
        raise RuleSetError("the file must hold a mapping", file=file)
    return validate_document(model, data, file)


def _read(relative: str) -> str:
    node = _data_root()
    for part in relative.split("/"):
        node = node.joinpath(part)
    try:
        return node.read_text(encoding="utf-8")
    except (FileNotFoundError, OSError) as exc:
        raise RuleSetError(f"cannot read packaged data file: {exc.__class__.__name__}", file=f"plugin/data/{relative}") from None


def _packaged() -> BillingTables:
    from plugin.billing.tables import packaged_tables

    return packaged_tables()


def fees_data() -> FeesModel:
    """The packaged ``fees.yaml`` (a ruleset's own is ``Ruleset.billing.fees``)."""
    return _packaged().fees


def mue_data() -> MueModel:
    return _packaged().mue


def ncci_data() -> NcciModel:
    return _packaged().ncci


def timed_codes_data() -> TimedCodesModel:
    return _packaged().timed_codes


def rules_data() -> RulesModel:
    return _packaged().rules


@cache
def payer_files() -> tuple[str, ...]:
    """File stems of ``plugin/data/payers/*.yaml``, sorted."""
    folder = _data_root().joinpath("payers")
    return tuple(sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml")))


@cache
def payer_data(stem: str) -> PayerModel:
    return parse_payer(stem, _read(f"payers/{stem}.yaml"), f"plugin/data/payers/{stem}.yaml")


def parse_payer(stem: str, text: str, file: str) -> PayerModel:
    """One payer profile file; its ``id`` must equal the file name."""
    model = parse_document(PayerModel, text, file)
    if model.id != stem:
        raise RuleSetError(f"id {model.id!r} differs from the file name {stem!r}", file=file, path="id")
    return model


def payer_models_in(directory: Path) -> dict[str, PayerModel]:
    """Every ``payers/*.yaml`` of a ruleset directory, validated (the ruleset caches the result)."""
    folder = directory / "payers"
    if not folder.is_dir():
        raise RuleSetError("the ruleset has no payers/ directory", file=str(folder))
    out: dict[str, PayerModel] = {}
    for path in sorted(folder.glob("*.yaml")):
        stem = path.name[: -len(".yaml")]
        file = f"payers/{path.name}"
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RuleSetError(f"cannot read ({exc.__class__.__name__})", file=file) from None
        out[stem] = parse_payer(stem, text, file)
    if not out:
        raise RuleSetError("no payer profiles", file=str(folder))
    return out


def data_sources() -> tuple[tuple[str, SourceModel], ...]:
    """(file, source block) of every billing data file, for reports and the docs."""
    tables = _packaged()
    sources = {"fees.yaml": tables.fees.source, "gpci.yaml": tables.gpci.source, "fee_schedules.yaml": tables.schedules.source,
               "mue.yaml": tables.mue.source, "ncci_pairs.yaml": tables.ncci.source, "timed_codes.yaml": tables.timed_codes.source,
               "modifier_rules.yaml": tables.rules.source}
    out: list[tuple[str, SourceModel]] = [(f"plugin/data/{name}", sources[name]) for name in DATA_FILES]
    out.extend((f"plugin/data/payers/{stem}.yaml", payer_data(stem).source) for stem in payer_files())
    return tuple(out)
