"""A comparison's charts as server-side SVG: style score per contender, style score per script
line, and the price of nesting (calls, tokens, latency per reply), all with 95% error bars.

The rules:
- **Plain SVG text, built here.** No JavaScript, no CDN: the page inlines it and the download
  is the same document.
- **Every piece of text is escaped** (`_esc`): labels carry model names and script lines, which
  are a person's input; nothing reaches the markup unescaped.
- **No style attributes** (the app's CSP forbids inline styles): colours are presentation
  attributes (`fill`, `stroke`), which a downloaded file keeps, plus classes the page's CSS can
  restyle.
- **One bar per contender** in each group, class "bar c<column index>", with a `<title>` that
  states the exact figure and interval; a contender with nothing to show gets no bar and says
  "no replies yet".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from personaweb.compare.results import ContenderResult, Results
from personaweb.compare.stats import Estimate

PALETTE = ("#3b6ea8", "#c2571a", "#4d8a4a", "#8a4d8a", "#8a7a2a", "#2a7a8a")
"""Bar colours by column index (the page's CSS uses the same through .c0, .c1, ...)."""
INK, MUTED, GRID = "#222222", "#6b6b6b", "#dddddd"
FONT = "system-ui, -apple-system, 'Segoe UI', sans-serif"
WIDTH = 620
CHARTS = ("score", "lines", "cost")
"""The charts a comparison has, by name (the download URLs use these)."""


def _esc(text: object) -> str:
    return escape(str(text), quote=True)


def _num(x: float) -> str:
    return f"{x:.1f}"


@dataclass
class Svg:
    """A small SVG document being written."""

    width: float
    height: float
    ident: str
    """Prefix for element ids (unique within a page that inlines several charts)."""
    title: str
    desc: str

    def __post_init__(self) -> None:
        self.parts: list[str] = []

    def rect(self, x: float, y: float, w: float, h: float, cls: str, fill: str, tip: str) -> None:
        self.parts.append(
            f'<rect class="{_esc(cls)}" x="{_num(x)}" y="{_num(y)}" width="{_num(max(w, 0))}" '
            f'height="{_num(max(h, 0))}" fill="{_esc(fill)}"><title>{_esc(tip)}</title></rect>'
        )

    def line(self, x1: float, y1: float, x2: float, y2: float, cls: str, stroke: str) -> None:
        self.parts.append(
            f'<line class="{_esc(cls)}" x1="{_num(x1)}" y1="{_num(y1)}" x2="{_num(x2)}" '
            f'y2="{_num(y2)}" stroke="{_esc(stroke)}" stroke-width="1.5"/>'
        )

    def text(
        self,
        x: float,
        y: float,
        text: str,
        *,
        anchor: str = "start",
        size: int = 12,
        fill: str = INK,
        cls: str = "label",
        tip: str = "",
    ) -> None:
        title = f"<title>{_esc(tip)}</title>" if tip else ""
        self.parts.append(
            f'<text class="{_esc(cls)}" x="{_num(x)}" y="{_num(y)}" text-anchor="{anchor}" '
            f'font-size="{size}" fill="{fill}">{title}{_esc(text)}</text>'
        )

    def error_bar(self, a: float, b: float, at: float, *, vertical: bool) -> None:
        cap = 4.0
        if vertical:
            self.line(at, a, at, b, "err", INK)
            self.line(at - cap, a, at + cap, a, "err", INK)
            self.line(at - cap, b, at + cap, b, "err", INK)
        else:
            self.line(a, at, b, at, "err", INK)
            self.line(a, at - cap, a, at + cap, "err", INK)
            self.line(b, at - cap, b, at + cap, "err", INK)

    def render(self) -> str:
        ident = _esc(self.ident)
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="cmp-chart" '
            f'width="{_num(self.width)}" height="{_num(self.height)}" '
            f'viewBox="0 0 {_num(self.width)} {_num(self.height)}" role="img" '
            f'aria-labelledby="{ident}-title {ident}-desc" font-family="{_esc(FONT)}">'
            f'<title id="{ident}-title">{_esc(self.title)}</title>'
            f'<desc id="{ident}-desc">{_esc(self.desc)}</desc>'
            f'<rect x="0" y="0" width="{_num(self.width)}" height="{_num(self.height)}" '
            f'fill="#ffffff"/>' + "".join(self.parts) + "</svg>"
        )


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def who(result: ContenderResult) -> str:
    return f"{result.letter} · {result.name}"


def describe(label: str, estimate: Estimate, unit: str = "", places: int = 2) -> str:
    """A bar's tooltip: the figure, its interval and what it rests on."""
    value = f"{estimate.value:.{places}f}{unit}"
    if estimate.has_interval:
        assert estimate.low is not None and estimate.high is not None
        interval = f"95% interval {estimate.low:.{places}f} to {estimate.high:.{places}f}{unit}"
    else:
        interval = "no interval from one reply"
    return f"{label}: {value} ({interval}; {estimate.samples} replies)"


def _ticks(top: float) -> list[float]:
    """Round gridline values from 0 to at least `top`, about four steps (1, 2, 2.5 or 5 x 10^n)."""
    if top <= 0:
        return [0.0, 1.0]
    base = 10.0 ** math.floor(math.log10(top / 4))
    step = next(m * base for m in (1, 2, 2.5, 5, 10) if m * base >= top / 4)
    return [round(i * step, 10) for i in range(math.ceil(top / step - 1e-9) + 1)]


def _fmt_tick(value: float) -> str:
    return f"{value:g}" if value >= 1 or value == 0 else f"{value:.2f}".rstrip("0")


def _hbars(
    svg: Svg,
    results: Sequence[ContenderResult],
    figure: str,
    *,
    left: float,
    top: float,
    width: float,
    scale_top: float,
    label: str,
    unit: str = "",
    places: int = 2,
    labels: bool = True,
) -> float:
    """Horizontal bars, one per contender, with error bars and a value axis. Returns the y
    below them."""
    row = 26.0
    ticks = _ticks(scale_top)
    scale = ticks[-1]
    height = row * len(results)
    for tick in ticks:
        x = left + width * tick / scale
        svg.line(x, top, x, top + height, "grid", GRID)
        svg.text(x, top + height + 14, _fmt_tick(tick), anchor="middle", size=10, fill=MUTED)
    for i, result in enumerate(results):
        y = top + i * row
        estimate: Estimate | None = getattr(result, figure)
        if labels:
            svg.text(
                left - 8, y + row / 2 + 4, who(result), anchor="end", tip=result.contender.label
            )
        if estimate is None:
            svg.text(left + 4, y + row / 2 + 4, "no replies yet", size=11, fill=MUTED)
            continue
        bar_width = width * estimate.value / scale
        svg.rect(
            left,
            y + 5,
            bar_width,
            row - 10,
            f"bar c{i}",
            colour(i),
            describe(f"{who(result)}, {label}", estimate, unit, places),
        )
        if estimate.has_interval:
            assert estimate.low is not None and estimate.high is not None
            svg.error_bar(
                left + width * estimate.low / scale,
                left + width * estimate.high / scale,
                y + row / 2,
                vertical=False,
            )
        end = left + width * max(estimate.value, estimate.high or 0.0) / scale
        svg.text(end + 6, y + row / 2 + 4, f"{estimate.value:.{places}f}{unit}", size=11)
    return top + height + 22


def score_chart(results: Results) -> str:
    """Style score per contender with its 95% interval."""
    contenders = results.contenders
    height = 56 + 26 * len(contenders) + 30
    svg = Svg(
        WIDTH,
        height,
        "chart-score",
        "Style score per contender",
        "Mean P(the character wrote it) over every reply, with 95% bootstrap intervals over "
        "lines and samples.",
    )
    svg.text(12, 22, "Style score per contender (mean, 95% interval)", size=14)
    svg.text(12, 40, f"{_sampling(results)}; 1 = unmistakably the character", size=11, fill=MUTED)
    _hbars(
        svg,
        contenders,
        "score",
        left=200,
        top=52,
        width=WIDTH - 290,
        scale_top=1.0,
        label="style score",
    )
    return svg.render()


def lines_chart(results: Results, script: Sequence[str]) -> str:
    """Style score per script line and contender, grouped by line."""
    contenders = results.contenders
    lines = max(len(script), 1)
    left, top, plot_h = 44.0, 56.0, 180.0
    legend_h = 20.0 * len(contenders)
    height = top + plot_h + 34 + legend_h + 10
    plot_w = WIDTH - left - 16
    group = plot_w / lines
    bar = min(28.0, group * 0.8 / max(len(contenders), 1))
    svg = Svg(
        WIDTH,
        height,
        "chart-lines",
        "Style score per script line",
        "For each line of the script, every contender's mean style score over its samples of "
        "that line, with 95% intervals.",
    )
    svg.text(12, 22, "Style score per script line (mean over samples, 95% interval)", size=14)
    svg.text(12, 40, _sampling(results), size=11, fill=MUTED)
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = top + plot_h * (1 - tick)
        svg.line(left, y, left + plot_w, y, "grid", GRID)
        svg.text(left - 6, y + 4, _fmt_tick(tick), anchor="end", size=10, fill=MUTED)
    for index in range(len(script)):
        x0 = left + index * group + (group - bar * len(contenders)) / 2
        line_text = script[index]
        svg.text(
            left + index * group + group / 2,
            top + plot_h + 16,
            f"line {index + 1}",
            anchor="middle",
            size=11,
            tip=line_text,
        )
        for i, result in enumerate(contenders):
            estimate = result.per_line[index] if index < len(result.per_line) else None
            if estimate is None:
                continue
            x = x0 + i * bar
            y = top + plot_h * (1 - estimate.value)
            tip = describe(f"{who(result)}, line {index + 1} ({line_text})", estimate)
            svg.rect(x + 1, y, bar - 2, top + plot_h - y, f"bar c{i}", colour(i), tip)
            if estimate.has_interval:
                assert estimate.low is not None and estimate.high is not None
                svg.error_bar(
                    top + plot_h * (1 - estimate.low),
                    top + plot_h * (1 - estimate.high),
                    x + bar / 2,
                    vertical=True,
                )
    legend_y = top + plot_h + 34
    for i, result in enumerate(contenders):
        y = legend_y + 20 * i
        svg.parts.append(
            f'<rect class="key c{i}" x="{_num(left)}" y="{_num(y - 10)}" width="12" height="12" '
            f'fill="{colour(i)}"/>'
        )
        svg.text(left + 18, y, who(result), size=11, tip=result.contender.label)
    return svg.render()


COSTS = (
    ("calls", "LLM calls per reply", "", 1),
    ("tokens", "tokens per reply", "", 0),
    ("latency_s", "latency per reply", " s", 2),
)


def cost_chart(results: Results) -> str:
    """The price of nesting: calls, tokens and latency per reply, one panel each."""
    contenders = results.contenders
    label_w = 150.0
    panel_w = (WIDTH - label_w - 20) / len(COSTS)
    height = 60 + 26 * len(contenders) + 36
    svg = Svg(
        WIDTH,
        height,
        "chart-cost",
        "The price of each strategy",
        "LLM calls, tokens and summed call latency per reply, means with 95% intervals.",
    )
    svg.text(12, 22, "The price: calls, tokens and latency per reply (mean, 95% interval)", size=14)
    svg.text(12, 40, _sampling(results), size=11, fill=MUTED)
    for i, result in enumerate(contenders):
        svg.text(
            label_w - 8, 64 + i * 26 + 17, who(result), anchor="end", tip=result.contender.label
        )
    for p, (figure, title, unit, places) in enumerate(COSTS):
        left = label_w + p * panel_w + 6
        highs = [
            e.high if e.high is not None else e.value
            for e in (getattr(r, figure) for r in contenders)
            if e is not None
        ]
        svg.text(left, 58, title, size=11, fill=MUTED)
        _hbars(
            svg,
            contenders,
            figure,
            left=left,
            top=64,
            width=panel_w - 46,
            scale_top=max(highs, default=1.0) or 1.0,
            label=title,
            unit=unit,
            places=places,
            labels=False,
        )
    return svg.render()


def _sampling(results: Results) -> str:
    lines = f"{results.lines} line{'s' if results.lines != 1 else ''}"
    samples = f"{results.samples} sample{'s' if results.samples != 1 else ''}"
    return f"over {lines} x {samples} per contender"


def chart(name: str, results: Results, script: Sequence[str]) -> str:
    """A chart by name (see CHARTS)."""
    if name == "score":
        return score_chart(results)
    if name == "lines":
        return lines_chart(results, script)
    if name == "cost":
        return cost_chart(results)
    raise KeyError(name)
