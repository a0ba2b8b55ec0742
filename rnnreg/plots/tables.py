"""Tables of numbers (config differences, results as Markdown and LaTeX): pure, like the figures."""

from __future__ import annotations

import math
import re
from typing import Mapping

import pandas as pd

from rnnreg.runs import mc_passes_text


def flatten_config(config: Mapping, prefix: str = "") -> dict[str, object]:
    """{"model": {"layers": 2}} -> {"model.layers": 2}; lists and scalars are kept as leaves."""
    out: dict[str, object] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten_config(value, name + "."))
        else:
            out[name] = value
    return out


def config_diff(a: Mapping, b: Mapping, *, names: tuple[str, str] = ("A", "B")) -> pd.DataFrame:
    """The settings where two run configs differ (flattened keys), as a table with one row per key."""
    fa, fb = flatten_config(a), flatten_config(b)
    # An empty section ("dropout.rates": {}) whose entries the other run lists one by one is
    # left out: those rows already say "—" against each value.
    fa, fb = _without_empty_sections(fa, fb), _without_empty_sections(fb, fa)
    rows = []
    for key in sorted(set(fa) | set(fb)):
        va, vb = fa.get(key, "—"), fb.get(key, "—")
        if va != vb:
            rows.append({"setting": key, names[0]: _cell(va), names[1]: _cell(vb)})
    return pd.DataFrame(rows, columns=["setting", *names])


def _without_empty_sections(flat: Mapping[str, object], other: Mapping[str, object]) -> dict[str, object]:
    return {key: value for key, value in flat.items()
            if not (value == {} and any(k.startswith(key + ".") for k in other))}


def _cell(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, Mapping) and not value:
        return "{}"
    return str(value)


# "best valid" is the lowest over the epochs; "final valid" and "test" are of the model after the
# last epoch (the paper's figures): a run that overfits has them far apart
RESULT_COLUMNS = (("label", "run"), ("preset", "preset"), ("placement", "placement"), ("rates", "dropout"),
                  ("epochs_done", "epochs"), ("best_valid_ppl", "best valid"), ("last_valid_ppl", "final valid"),
                  ("test_ppl", "test"))
# after "test", where some run has one: its test with dropout on (`rnnreg evaluate`), a memory run's recall
EXTRA_RESULT_COLUMNS = (("mc_test_ppl", "MC test"), ("test_accuracy", "test recall"))


def _result_columns(runs: pd.DataFrame) -> tuple[tuple[str, str], ...]:
    """RESULT_COLUMNS, the settings that differ from the preset's where some run has any, and the
    extra results where some run has one."""
    columns = RESULT_COLUMNS
    if "variant" in runs and runs["variant"].fillna("").astype(bool).any():
        columns = columns[:4] + (("variant", "other settings"),) + columns[4:]
    return columns + tuple(c for c in EXTRA_RESULT_COLUMNS if c[0] in runs and runs[c[0]].notna().any())


def _numbers(columns: tuple[tuple[str, str], ...]) -> int:
    """How many of the last columns hold numbers (right-aligned): from "epochs" on."""
    return len(columns) - [key for key, _ in columns].index("epochs_done")


def _fmt(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.2f}"  # as the README's tables: 83.35 is not rounded to 83.3 here and 83.4 there
    return str(value)


def _result_cell(row: pd.Series, column: str) -> str:
    """One cell's text, on one line: a name from a hand-edited config.json may hold a line break,
    which would end a Markdown table row (or a LaTeX one) in the middle."""
    value = row.get(column)
    if column == "variant":
        text = value or "—"  # '': the preset's own
    elif column == "test_accuracy" and isinstance(value, float) and not math.isnan(value):
        text = f"{100 * value:.1f}%"
    elif column == "mc_test_ppl" and isinstance(value, float) and not math.isnan(value):
        samples = row.get("mc_samples")  # how many passes, and how each drew its masks: as the Runs page
        count = int(samples) if isinstance(samples, (int, float)) and samples == samples else None
        how = mc_passes_text(count, row.get("mc_protocol") or None)
        text = _fmt(value) + (f" ({how})" if how else "")
    else:
        text = _fmt(value)
    return re.sub(r"[\x00-\x1f\x7f]+", " ", str(text))


def results_markdown(runs: pd.DataFrame) -> str:
    """A Markdown table of the runs' results (one row per run), ready to paste into notes."""
    columns = _result_columns(runs)
    header = [title for _, title in columns]
    align = ["---"] * (len(columns) - _numbers(columns)) + ["---:"] * _numbers(columns)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for _, row in runs.iterrows():
        # a backslash first: a name's own `\|` must not turn the escape of its `|` into `\\` + a new column
        cells = [_result_cell(row, col).replace("\\", "\\\\").replace("|", "\\|") for col, _ in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}


def _latex_escape(text: str) -> str:
    return re.sub(r"[\\&%$#_{}~^]", lambda m: _LATEX_SPECIAL[m.group()], text)


def results_latex(runs: pd.DataFrame) -> str:
    """A LaTeX `tabular` (booktabs) of the runs' results."""
    columns = _result_columns(runs)
    spec = "l" * (len(columns) - _numbers(columns)) + "r" * _numbers(columns)
    lines = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(title for _, title in columns) + r" \\", r"\midrule"]
    for _, row in runs.iterrows():
        lines.append(" & ".join(_latex_escape(_result_cell(row, col)) for col, _ in columns) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"
