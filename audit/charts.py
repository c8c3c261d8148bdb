"""Inline SVG charts for the report: pure functions, strings out, no JavaScript, no CDN.

Why SVG drawn here rather than a chart library: the report must open offline, years later, from an
e-mail attachment or an audit binder; a few bar charts do not justify shipping a JS library inline.
Every label is escaped; every chart has a text alternative (``aria-label`` and a ``<title>``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

PALETTE = {"supported": "#2e7d32", "needs-documentation": "#c62828", "recode": "#ef6c00"}
BAR = "#1565c0"


def money(value: float) -> str:
    return f"${value:,.0f}" if abs(value) >= 100 else f"${value:,.2f}"


def hbars(items: Sequence[tuple[str, float, str]], *, title: str, fmt: Callable[[float], str] = money,
          width: int = 620, row: int = 24, label_width: int = 220, color: str = BAR) -> str:
    """Horizontal bars: (label, value, note) in the order given."""
    if not items:
        return f'<p class="empty">{escape(title)}: nothing to show.</p>'
    top = max((v for _, v, _ in items), default=0) or 1
    plot = width - label_width - 190
    height = row * len(items) + 8
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    for i, (label, value, note) in enumerate(items):
        y = 4 + i * row
        w = max(1.0, plot * value / top) if value > 0 else 0
        short = label if len(label) <= 32 else label[:31] + "…"
        parts.append(
            f'<g class="bar"><text x="{label_width - 6}" y="{y + row * 0.65:.1f}" text-anchor="end">{escape(short)}</text>'
            f'<rect x="{label_width}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" fill="{color}">'
            f'<title>{escape(label)}: {escape(fmt(value))} {escape(note)}</title></rect>'
            f'<text x="{label_width + w + 6:.1f}" y="{y + row * 0.65:.1f}">'
            f'{escape(fmt(value))}{(" · " + escape(note)) if note else ""}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def vbars(items: Sequence[tuple[str, float, str]], *, title: str, fmt: Callable[[float], str] = money,
          width: int = 620, height: int = 220, color: str = BAR) -> str:
    """Vertical bars (months along the x axis)."""
    if not items:
        return f'<p class="empty">{escape(title)}: nothing to show.</p>'
    top = max((v for _, v, _ in items), default=0) or 1
    slot = (width - 20) / len(items)
    plot = height - 50
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    for i, (label, value, note) in enumerate(items):
        h = plot * value / top if value > 0 else 0
        x = 10 + i * slot
        parts.append(
            f'<g class="bar"><rect x="{x + slot * 0.15:.1f}" y="{20 + plot - h:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
            f'fill="{color}">'
            f'<title>{escape(label)}: {escape(fmt(value))} {escape(note)}</title></rect>'
            f'<text x="{x + slot / 2:.1f}" y="{14 + plot - h:.1f}" text-anchor="middle" class="small">{escape(fmt(value))}</text>'
            f'<text x="{x + slot / 2:.1f}" y="{height - 14}" text-anchor="middle">{escape(label)}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def stacked(parts_in: Sequence[tuple[str, float]], *, title: str, width: int = 620, colors: dict[str, str] = PALETTE) -> str:
    """One 100% bar with a legend (the verdict mix)."""
    total = sum(v for _, v in parts_in)
    if not total:
        return f'<p class="empty">{escape(title)}: nothing to show.</p>'
    height = 34 + 22 * len(parts_in)
    out = [f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    x = 0.0
    for name, value in parts_in:
        w = (width - 2) * value / total
        out.append(f'<rect class="bar" x="{x + 1:.1f}" y="2" width="{w:.1f}" height="24" fill="{colors.get(name, BAR)}">'
                   f'<title>{escape(name)}: {int(value):,} ({value / total:.0%})</title></rect>')
        x += w
    for i, (name, value) in enumerate(parts_in):
        y = 34 + 22 * i
        out.append(f'<rect x="2" y="{y}" width="14" height="14" fill="{colors.get(name, BAR)}"/>'
                   f'<text x="22" y="{y + 12}">{escape(name)}: {int(value):,} lines ({value / total:.0%})</text>')
    out.append("</svg>")
    return "".join(out)
