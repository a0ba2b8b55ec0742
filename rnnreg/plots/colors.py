"""Colours: a run keeps its colour on every page; labels sort by the numbers in them."""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable, Mapping

import plotly.colors

# Okabe-Ito (colour-blind safe) first, then Plotly's defaults for larger comparisons.
PALETTE: tuple[str, ...] = (
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
    "#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880",
)

VIRIDIS = plotly.colors.get_colorscale("Viridis")  # as a list: plotly.py and plotly.js name scales differently

# line dashes for configs that share a colour (more configs than PALETTE has colours)
DASHES: tuple[str, ...] = ("solid", "dash", "dot", "dashdot")

# marker shapes for runs that share a colour, where the dash already says train or valid
SYMBOLS: tuple[str, ...] = ("circle", "square", "diamond", "triangle-up", "x", "star", "cross", "triangle-down")
GLYPHS: dict[str, str] = dict(zip(SYMBOLS, "●■◆▲✕★✚▼"))  # the same shapes in text (the sidebar's list)


def natural_key(text: object) -> tuple:
    """Sort key that orders the numbers inside labels by value: "none · T=2" before "none · T=10"."""
    return tuple((0, float(part), "") if re.fullmatch(r"\d+(\.\d+)?", part) else (1, 0.0, part)
                 for part in re.split(r"(\d+(?:\.\d+)?)", str(text)) if part)


def assign_colors(run_ids: Iterable[str], previous: Mapping[str, str] | None = None) -> dict[str, str]:
    """A colour for every run in `run_ids`, keeping each run's `previous` colour.

    New runs take the first palette colour no kept run uses, so picking or unpicking one run
    never recolours the others.  Runs not in `run_ids` are kept too (so a run picked again
    later gets its old colour back when it is still free).
    """
    colors = dict(previous or {})
    wanted = list(dict.fromkeys(run_ids))
    uses = Counter(colors[r] for r in wanted if r in colors)
    for run in wanted:
        if run in colors:
            continue
        # a free colour first; past the palette, the least used one (figures tell sharers apart:
        # `marker_symbols` on the perplexity charts, dashes on the sweeps' curves)
        color = min(PALETTE, key=lambda c: uses[c])
        colors[run] = color
        uses[color] += 1
    return colors


def color_of(colors: Mapping[str, str], run: str) -> str:
    return colors.get(run) or PALETTE[sum(map(ord, run)) % len(PALETTE)]


def marker_symbols(colors: Mapping[str, str], runs: Iterable[str]) -> dict[str, str]:
    """A marker shape for each of `runs`: a circle for the first run of a colour, then a square, a
    diamond, ... for the runs that share it (past PALETTE's 16 colours), so that no two lines in
    one figure look alike.  "First" is the order the runs got their colours in, the same on every page."""
    shown = list(dict.fromkeys(runs))
    order = {run: i for i, run in enumerate(colors)}
    shown.sort(key=lambda run: order.get(run, len(order)))
    seen: Counter = Counter()
    symbols = {}
    for run in shown:
        color = color_of(colors, run)
        symbols[run] = SYMBOLS[seen[color] % len(SYMBOLS)]
        seen[color] += 1
    return symbols
