"""The lecture's step 3, "Memory", as data: how far back the gradient reaches, per placement.

Which language-model runs the step compares (one per placement, one size, its own settings),
each run's gradient-through-time profile against k beside (1-p)^k, the memory-task runs'
recall against the delay, and why a placement draws no line.  No torch, no Streamlit, no
figures (rnnreg.lecture_plots draws them); the steps' texts are in rnnreg.lecture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import pandas as pd

from rnnreg import config as cfg
from rnnreg.placements import PER_STEP, PLACEMENTS

# Sites on the path that carries memory from step to step (h_{t-1} -> h_t and c_{t-1} -> c_t):
# a per-step mask here is multiplied k times over k steps.  The cell update g_t is masked
# before it is added (memory is never erased) and zoneout keeps, rather than zeroes, units.
CARRIED_SITES = ("hidden", "cell")


MEMORY_CHANCE = 1.0 / cfg.MemoryTaskConfig().keys  # recall accuracy of guessing among the keys


def survival(p: float, ks: Iterable[int]) -> list[float]:
    """(1-p)^k: the share of units that survive k independent masks of rate p."""
    return [(1.0 - p) ** k for k in ks]


def per_step_carried_rates(placement: str, rates: Mapping[str, float]) -> dict[str, float]:
    """site -> p for the placement's per-step masks on the carried path (empty for zaremba, variational...)."""
    spec = PLACEMENTS.get(placement)
    if spec is None:
        return {}
    out = {}
    for site in spec.sites:
        p = float(rates.get(site.name, 0.0) or 0.0)
        if site.name in CARRIED_SITES and site.sampling == PER_STEP and p > 0:
            out[site.name] = p
    return out


# Step 3's lines, in this order: no dropout, Zaremba's placement, the naive per-step masks on h,
# Gal's one mask per sequence and the per-step mask on c (the (1-p)^k case), then the others
# as rnnreg.placements lists them.  A placement of the first five without a run is named on the page.
MEMORY_ORDER = ("none", "zaremba", "recurrent", "variational", "recurrent-cell")
MEMORY_LINES = 6  # runs on step 3's log chart: more than this is a tangle on a projector


@dataclass(frozen=True)
class MemoryPick:
    """The runs step 3 compares: one language-model preset, one run per placement."""

    preset: str | None  # one size, schedule and epoch count for all (None: no runs)
    runs: tuple[str, ...]  # in MEMORY_ORDER, then rnnreg.placements order
    left_out: tuple[str, ...]  # one sentence per reason a placement is not drawn
    other_settings: tuple[str, ...] = ()  # one sentence per drawn run not at the preset's own settings


def memory_order() -> list[str]:
    return list(MEMORY_ORDER) + [name for name in PLACEMENTS if name not in MEMORY_ORDER]


def _column(rows: pd.DataFrame, name: str, default) -> pd.Series:
    return rows[name].fillna(default) if name in rows else pd.Series(default, index=rows.index)


def _at_other_settings(rows: pd.DataFrame) -> pd.Series:
    """True for runs not at their preset's own settings: a variant (`--epochs 5`, main.lua's
    schedule) or a sweep's point."""
    return (_column(rows, "variant", "") != "") | (_column(rows, "sweep", "") != "")


def _by_configuration(rows: pd.DataFrame) -> pd.DataFrame:
    """Runs at their preset's own settings first (no variant, not in a sweep), then finished before
    unfinished, shipped before your own, the lowest seed, the oldest."""
    keys = pd.DataFrame({
        "variant": _at_other_settings(rows),
        "unfinished": rows["state"] != "finished",
        "own": ~_column(rows, "read_only", False).astype(bool),
        "seed": _column(rows, "seed", 0),
        "created_at": _column(rows, "created_at", ""),
    }, index=rows.index)
    return rows.loc[keys.sort_values(list(keys.columns), kind="stable").index]


def memory_runs(table: pd.DataFrame, limit: int = MEMORY_LINES) -> MemoryPick:
    """Step 3's runs, chosen by configuration, not by the table's order.

    Language-model runs of one preset (the one with runs of the most placements; runs of other
    sizes train for other epochs and are not compared), one run per placement in `memory_order()`,
    at the preset's own settings and the lowest seed where there is one (`_by_configuration`),
    at most `limit`.  `left_out` says which placements are not drawn and why.
    """
    rows = table[(table["epochs_done"] > 0) & (table["problems"] == "")] if not table.empty else table
    if "task" in rows:  # a memory-task run has no language-model gradient profile to compare
        memory_task = set(rows.loc[rows["task"] == "memory", "placement"])
        rows = rows[rows["task"].fillna("lm") == "lm"]
    else:
        memory_task = set()
    if rows.empty:
        return MemoryPick(None, (), ())
    order = memory_order()
    coverage = rows.groupby("preset")["placement"].nunique()
    preset_rank = {name: i for i, name in enumerate(cfg.PRESET_NAMES)}
    preset = min(coverage.index, key=lambda name: (-coverage[name], preset_rank.get(name, len(preset_rank)), name))
    ranked = _by_configuration(rows[rows["preset"] == preset]).drop_duplicates("placement")
    by_placement = dict(zip(ranked["placement"], ranked["run"]))
    present = [name for name in order if name in by_placement] + sorted(set(by_placement) - set(order))
    drawn, beyond = present[:limit], present[limit:]
    left_out = []
    for name in MEMORY_ORDER:
        if name not in by_placement:
            where = ("its memory-task runs are in the recall chart below" if name in memory_task
                     else "none in this run store")
            left_out.append(f"{name}: no {preset} language-model run ({where}).")
    if beyond:
        left_out.append(f"{', '.join(beyond)}: {limit} lines at most (the Gradients page draws any run).")
    other = ranked[_at_other_settings(ranked) & ranked["placement"].isin(drawn)]
    labels = _column(other, "label", "")
    other_settings = tuple(  # drawn all the same: a line at other settings is better than none
        f"{name}: {label or run} ({cfg.variant_label(preset, variant) or 'a sweep point'}), no run at the preset's own."
        for name, label, run, variant in zip(other["placement"], labels, other["run"], _column(other, "variant", "")))
    return MemoryPick(preset, tuple(by_placement[name] for name in drawn), tuple(left_out), other_settings)


def recall_frame(table: pd.DataFrame) -> pd.DataFrame:
    """Test recall accuracy of finished memory-task runs against their delay T, for step 3.

    One row per (placement, rate, delay): your own runs win over the shipped ones (run live,
    they replace the reference point), the newest first.
    Columns: placement, rate, delay, accuracy, run, label, source.
    """
    columns = ["placement", "rate", "delay", "accuracy", "run", "label", "source"]
    needed = {"task", "delay", "test_accuracy"}
    if table.empty or not needed <= set(table.columns):
        return pd.DataFrame(columns=columns)
    rows = table[(table["task"] == "memory") & (table["state"] == "finished") & (table["problems"] == "")
                 & table["test_accuracy"].notna() & table["delay"].notna()]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    rows = pd.concat([rows[~rows["read_only"]], rows[rows["read_only"]]])
    out = pd.DataFrame({
        "placement": rows["placement"], "rate": rows["dropout"].astype(float), "delay": rows["delay"].astype(int),
        "accuracy": rows["test_accuracy"].astype(float), "run": rows["run"], "label": rows["label"],
        "source": ["reference run" if ro else "own run" for ro in rows["read_only"]],
    }).drop_duplicates(["placement", "rate", "delay"])
    order = {name: i for i, name in enumerate(PLACEMENTS)}
    out["_order"] = out["placement"].map(order)
    return out.sort_values(["_order", "rate", "delay"]).drop(columns="_order").reset_index(drop=True)[columns]


def live_memory_configs(delays: Sequence[int] = (2, 5, 10, 20), rate: float = 0.25) -> list[tuple[str, dict]]:
    """(name, config) of the memory-task runs step 3 launches live: the per-step cell mask that
    erases memory beside zaremba's, which does not, at each delay (about 10-30 s each on a CPU)."""
    return [(f"lecture memory, {placement} {rate:g}, delay {delay}",
             cfg.to_dict(cfg.build_run_config("memory", placement=placement, dropout=rate, delay=delay,
                                              device="cpu")))
            for placement in ("recurrent-cell", "zaremba") for delay in delays]


def run_rates(table: pd.DataFrame, run: str) -> dict[str, float]:
    """site -> rate of one run, from the run table's `rate <site>` columns."""
    row = table.set_index("run").loc[run]
    return {c[len("rate "):]: float(row[c]) for c in row.index if c.startswith("rate ") and pd.notna(row[c])}


def _k0(rows: pd.DataFrame, measure: str) -> float:
    """What a profile is read against: `norm` at k = 0 (the state at the loss's own step); `nonzero`
    is a share already (1), unless nothing at k = 0 reaches the loss at all (0)."""
    at_zero = rows.loc[rows["k"] == 0, measure]
    if at_zero.empty:  # no k = 0 row (dropped as not finite): nothing to read the profile against
        return math.nan
    first = float(at_zero.iloc[0])
    return first if measure == "norm" or first == 0 or not math.isfinite(first) else 1.0


def _at_epoch(part: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """run -> its rows at the latest epoch every run has (runs at the same stage of training), else at its own last."""
    epochs = [set(rows["epoch"]) for _run, rows in part.groupby("run", sort=False)]
    common = set.intersection(*epochs) if epochs else set()
    return {run: rows[rows["epoch"] == (max(common) if common else rows["epoch"].max())].sort_values("k")
            for run, rows in part.groupby("run", sort=False)}


def memory_frame(gtt: pd.DataFrame, table: pd.DataFrame, *, layer: int = 0, wrt: str = "c",
                 measure: str = "norm") -> pd.DataFrame:
    """Each run's profile of `measure` against k, at one epoch, for step 3.

    The epoch is the latest one every run has (runs compared at the same stage of training),
    else each run's last.  `norm` is divided by its k = 0 value (runs of different sizes
    line up at 1); `nonzero` is already a share of units and is kept as it is.  A run whose
    k = 0 value is 0 or not finite has nothing to be read against and is left out
    (`memory_gaps` says why).
    Columns: run, label, placement, epoch, k, value, carried_p (the largest per-step rate on
    the carried path of the run's placement, 0 if none).
    """
    columns = ["run", "label", "placement", "epoch", "k", "value", "carried_p"]
    if gtt is None or gtt.empty or measure not in gtt.columns:
        return pd.DataFrame(columns=columns)
    part = gtt[(gtt["layer"] == layer) & (gtt["wrt"] == wrt)].dropna(subset=["epoch", "k", measure])
    placements = table.set_index("run")["placement"]
    frames = []
    for run, rows in _at_epoch(part).items():
        base = _k0(rows, measure)
        if not base or not math.isfinite(base):
            continue
        placement = str(placements.get(run, "?"))
        carried = per_step_carried_rates(placement, run_rates(table, run)) if run in placements.index else {}
        frames.append(pd.DataFrame({
            "run": run, "label": rows["label"].iloc[0] if "label" in rows else run, "placement": placement,
            "epoch": rows["epoch"], "k": rows["k"], "value": rows[measure] / base,
            "carried_p": max(carried.values(), default=0.0),
        }))
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def survival_rates(memory: pd.DataFrame) -> dict[float, list[str]]:
    """p -> the placements drawn in `memory` whose per-step masks on the carried path have rate p:
    the (1-p)^k lines step 3 draws beside them (empty where no run has such a mask)."""
    carried = memory[memory["carried_p"] > 0].drop_duplicates("placement")
    return {float(p): list(rows["placement"]) for p, rows in carried.groupby("carried_p")}


def memory_gaps(gtt: pd.DataFrame | None, runs: Sequence[str], table: pd.DataFrame, *, layer: int = 0,
                wrt: str = "c", measure: str = "norm") -> list[str]:
    """One sentence per run of `runs` that `memory_frame` draws no line for, saying why."""
    placements = table.set_index("run")["placement"] if not table.empty else pd.Series(dtype=str)
    part = (gtt[(gtt["layer"] == layer) & (gtt["wrt"] == wrt)].dropna(subset=["epoch", "k", measure])
            if gtt is not None and not gtt.empty and measure in gtt.columns else pd.DataFrame(columns=["run"]))
    profiles = _at_epoch(part) if not part.empty else {}
    gaps = []
    for run in runs:
        placement = str(placements.get(run, run))
        if gtt is None or gtt.empty or run not in set(gtt["run"]):
            gaps.append(f"{placement}: its run recorded no gradient-through-time probe.")
        elif run not in profiles:
            gaps.append(f"{placement}: no probe of layer {layer + 1} ({wrt}) in its run.")
        elif not math.isfinite(base := _k0(profiles[run], measure)):
            gaps.append(f"{placement}: its gradient at k = 0 is not a finite number (or was not recorded): "
                        "nothing to read the steps back against.")
        elif not base:
            why = ""
            if wrt == "c" and "zoneout_c" in PLACEMENTS.get(placement, PLACEMENTS["none"]).site_names:
                why = (" (zoneout computes h_t from the cell before it is zoned out, so the loss at step t does "
                       "not depend on the zoned c_t)")
            gaps.append(f"{placement}: its gradient at k = 0 is 0{why}: nothing to read the steps back against.")
    return gaps
