"""Bar charts as plain SVG geometry, drawn by the templates (no JavaScript charting)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Bar:
    """One bar: where it is drawn and what it says."""

    x: float
    y: float
    width: float
    height: float
    value: int
    label: str


@dataclass(frozen=True)
class BarChart:
    """A day-by-day bar chart sized in SVG user units."""

    title: str
    width: int
    height: int
    bars: tuple[Bar, ...]
    peak: int
    first: str
    last: str

    @property
    def total(self) -> int:
        """Return the sum of the bars."""
        return sum(b.value for b in self.bars)


def bar_chart(title: str, days: list[date], values: list[int], *, width: int = 600, height: int = 120) -> BarChart:
    """Lay out one bar per day, scaled to the largest value (an empty series draws no bars)."""
    peak = max(values, default=0)
    slot = width / max(len(values), 1)
    gap = min(2.0, slot / 4)
    bars = []
    for i, (day, value) in enumerate(zip(days, values, strict=True)):
        h = 0.0 if peak == 0 else round((height - 14) * value / peak, 2)
        bars.append(
            Bar(round(i * slot + gap / 2, 2), round(height - h, 2), round(slot - gap, 2), h, value, day.isoformat())
        )
    return BarChart(
        title,
        width,
        height,
        tuple(bars),
        peak,
        days[0].isoformat() if days else "",
        days[-1].isoformat() if days else "",
    )
