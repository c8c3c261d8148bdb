"""The billing lead's report (the I/O edge): one self-contained HTML file, opens offline.

Charts are inline SVG (``audit.charts``), styles and the small sort/expand script are inline, nothing is
fetched. Jinja2 autoescapes every value. The report holds identifiers, codes, verdicts and money, never
note text (the rows it is built from have none).
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from audit import charts


@lru_cache(maxsize=1)
def criteria_titles() -> dict[str, str]:
    """Titles of the five criteria from the plugin's own wording file (falls back to the ids)."""
    try:
        data = yaml.safe_load(resources.files("plugin").joinpath("data", "criteria.yaml").read_text(encoding="utf-8"))
        return {k: str(v.get("title") or k) for k, v in (data.get("criteria") or {}).items()}
    except (OSError, ValueError, AttributeError, yaml.YAMLError):
        return {}


def _env() -> Environment:
    env = Environment(loader=PackageLoader("audit", "templates"), autoescape=select_autoescape(["html"]))
    env.filters["money"] = charts.money
    return env


def chart_set(data: dict[str, Any]) -> dict[str, Markup]:
    titles = criteria_titles()

    def rows(table: list[dict[str, Any]], limit: int = 15) -> list[tuple[str, float, str]]:
        return [(d["name"], d["dollars"], f"{d['lines']:,} lines flagged") for d in table[:limit]]

    verdict_order = ["supported", "needs-documentation", "recode"]
    verdicts = data["verdicts"]
    mix = [(v, verdicts.get(v, 0)) for v in verdict_order] + [(k, n) for k, n in verdicts.items() if k not in verdict_order]
    return {
        "payer": Markup(charts.hbars(rows(data["by_payer"]), title="Dollars at risk by payer")),
        "clinician": Markup(charts.hbars(rows(data["by_clinician"]), title="Dollars at risk by clinician (top 15)")),
        "month": Markup(charts.vbars([(d["name"], d["dollars"], f"{d['lines']:,} lines") for d in data["by_month"][-24:]],
                                     title="Dollars at risk by month of service")),
        "verdicts": Markup(charts.stacked(mix, title="Verdict mix of the billed lines")),
        "missed": Markup(charts.hbars([(titles.get(k, k), n, k) for k, n in data["missed"]], title="Most-missed criteria (97530 lines)",
                                      fmt=lambda v: f"{int(v):,}", color="#c62828")),
        "recodes": Markup(charts.hbars([(d["name"].replace("->", " → "), d["dollars"], f"{d['lines']:,} lines")
                                        for d in data["recodes"][:15]],
                                       title="Recode flows (billed → documented code)", color="#ef6c00")),
        "over": Markup(charts.hbars([(k, n, "") for k, n in data["over_units_by_clinician"][:15]],
                                    title="Over-billed units by clinician", fmt=lambda v: f"{int(v):,} units", color="#6a1b9a")),
        "over_code": Markup(charts.hbars([(k, n, "") for k, n in data["over_units_by_code"][:15]],
                                         title="Over-billed units by code", fmt=lambda v: f"{int(v):,} units", color="#6a1b9a")),
    }


def render_report(data: dict[str, Any]) -> str:
    template = _env().get_template("report.html")
    return template.render(d=data, charts=chart_set(data), titles=criteria_titles())


def write_report(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(render_report(data), encoding="utf-8")
    return path
