"""The lecture "Why recurrent dropout hurts" as data: no torch, no Streamlit, no figures.

Four steps, each a figure (rnnreg.lecture_plots) and one sentence:

    1 overfitting  the demo preset without and with dropout: train vs valid perplexity
    2 masks        an unrolled 2-layer LSTM with the connections a placement masks
    3 memory       how far back the gradient reaches, per placement, beside (1-p)^k
    4 evidence     valid / test perplexity of the final model per placement beside the published numbers

Everything here is derived from rnnreg.placements (sites and their sampling) and from the run
table of the dashboard (pages.shared.store.run_table), so a new placement or run shows up by itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pandas as pd

from rnnreg import config as cfg
from rnnreg.placements import PER_FORWARD, PER_SEQUENCE, PER_STEP, PLACEMENTS, RECURRENT_SITES, resolve_rates


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    takeaway: str


STEPS: tuple[Step, ...] = (
    Step("overfitting", "1 · Overfitting",
         "Without dropout the training perplexity keeps falling while the validation perplexity turns up; "
         "dropout on the non-recurrent connections narrows that gap."),
    Step("masks", "2 · Where the masks go",
         "Zaremba et al. mask only the vertical (non-recurrent) connections, so the memory that runs "
         "left to right is never cut."),
    Step("memory", "3 · Memory",
         "A fresh mask at every step on the cell c, which carries the memory, lets only a (1-p)^k share of what "
         "happened k steps ago through: recall collapses as the gap grows. Masks off that path (zaremba) keep "
         "recall at every gap, and a per-step mask on h alone is routed around through c. One mask per sequence "
         "(variational) adds no such decay, yet at gaps of 10 and 20 it had not learned the task within 30 "
         "epochs: slow learning, not forgetting."),
    Step("evidence", "4 · Evidence",
         "On Penn Treebank, dropout on the non-recurrent connections (or one mask per sequence) is what lets "
         "larger models win: the paper's medium and large reach 82.7 and 78.4 test, where its best model without "
         "dropout, the small one, stays at 114.5. At the small size and its 13-epoch schedule, 0.5 dropout on "
         "the layer inputs only underfits, while mild regularisers of the recurrent path (per-step dropout on h, "
         "zoneout, weight drop, dropout on the cell update) help; a mask on the memory c itself, one per window, "
         "scores worst with dropout off at test, yet ahead of no dropout when tested with its masks on (train and "
         "test see different memories); at the medium size, per-step dropout on h alone lets the model overfit, "
         "but added to zaremba's sites it tests better than they do alone (a mask on h never touches the memory "
         "in c): this project's reference runs show all three."),
)
# The evidence step's last words, and what it says instead where its chart has no reference runs.
OWN_RUNS_CLAIM = "this project's reference runs show all three."
NO_RUNS_CLAIM = "this project's reference runs (`runs/reference/`, not in this run store) show all three."

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


# --------------------------------------------------------------------------- step 2: the schematic

CONNECTIONS = {
    "input": "layer input",  # vertical: word / layer below -> layer
    "output": "softmax input",  # vertical: top layer -> softmax
    "hidden": "recurrent h",  # horizontal: h_{t-1} -> step t
    "weight": "recurrent h",  # DropConnect on W_hh: the same connection, its weights masked
    "zoneout_h": "recurrent h",
    "cell": "cell c",  # horizontal: c_t -> step t+1
    "zoneout_c": "cell c",
    "cell_update": "cell update",  # inside the cell: g_t before it is added to c
    "embedding": "word embedding",  # whole word types
}


def _draw(site: str, sampling: str, layer: int, t: int) -> str:
    """An id that is the same for two elements exactly when they share one mask draw."""
    if sampling == PER_STEP:
        return f"{site}/layer{layer}/step{t}"
    if sampling == PER_SEQUENCE:
        return f"{site}/layer{layer}"
    return f"{site}/layer{layer}/forward" if layer >= 0 else f"{site}/forward"


def schematic(placement: str, *, layers: int = 2, steps: int = 4) -> pd.DataFrame:
    """The elements of an unrolled LSTM and what `placement` (at its default rates) does to each.

    One row per element: `element` (edge or node), `connection` (layer input, softmax input,
    recurrent h, cell c, cell update, word embedding, or lstm / word / softmax for plain nodes),
    `layer` (0-based; -1 words, `layers` softmax), `step`, coordinates x0, y0, x1, y1 (nodes
    have x1 = x0), and for masked elements `site`, `sampling`, `rate`, `draw` (elements with
    the same draw share one mask) and `optional` (a site whose default rate is 0).
    """
    spec = PLACEMENTS[placement]
    rates = resolve_rates(placement)
    rows: list[dict] = []

    def add(element, connection, layer, t, x0, y0, x1, y1):
        rows.append({"element": element, "connection": connection, "layer": layer, "step": t,
                     "x0": x0, "y0": y0, "x1": x1, "y1": y1})

    lane = 0.17  # h runs above the node centre, c below
    for t in range(steps):
        add("node", "word", -1, t, t, 0.0, t, 0.0)
        for layer in range(layers):
            add("node", "lstm", layer, t, t, layer + 1.0, t, layer + 1.0)
            add("edge", "layer input", layer, t, t, float(layer), t, layer + 1.0)
            if t > 0:
                add("edge", "recurrent h", layer, t, t - 1, layer + 1 + lane, t, layer + 1 + lane)
                add("edge", "cell c", layer, t, t - 1, layer + 1 - lane, t, layer + 1 - lane)
            add("node", "cell update", layer, t, t, layer + 1.0, t, layer + 1.0)
        add("edge", "softmax input", layers, t, t, float(layers), t, layers + 1.0)
        add("node", "softmax", layers, t, t, layers + 1.0, t, layers + 1.0)
        add("node", "word embedding", -1, t, t, 0.0, t, 0.0)
    frame = pd.DataFrame(rows)
    frame["site"], frame["sampling"], frame["draw"] = "", "", ""
    frame["rate"], frame["optional"] = 0.0, False

    masked_parts = []
    for site in spec.sites:
        connection = CONNECTIONS[site.name]
        part = frame[frame["connection"] == connection].copy()
        # a recurrent edge into step t carries the mask drawn for step t
        part["site"], part["sampling"], part["rate"] = site.name, site.sampling, float(rates.get(site.name, 0.0))
        part["optional"] = part["rate"] == 0.0
        # the cell mask of step t-1 is on c_{t-1} as it enters step t
        shift = 1 if site.name == "cell" else 0
        part["draw"] = [_draw(site.name, site.sampling, int(layer), int(t) - shift)
                        for layer, t in zip(part["layer"], part["step"])]
        masked_parts.append(part)
    # an element with no site keeps one plain row; a masked element gets one row per site
    touched = {CONNECTIONS[s.name] for s in spec.sites}
    plain = frame[~frame["connection"].isin(touched)]
    out = pd.concat([plain, *masked_parts], ignore_index=True)
    # nodes only drawn when a site masks them
    return out[~((out["connection"].isin(("cell update", "word embedding"))) & (out["site"] == ""))].reset_index(
        drop=True)


def sampling_text(sampling: str) -> str:
    return {PER_STEP: "a fresh mask at every step", PER_SEQUENCE: "one mask for the whole sequence",
            PER_FORWARD: "one mask per forward pass (shared by the batch)"}.get(sampling, sampling)


def placement_caption(placement: str) -> str:
    """One sentence per site: what it masks and how often its mask changes."""
    spec = PLACEMENTS[placement]
    if not spec.sites:
        return f"**{placement}**: {spec.summary}."
    rates = resolve_rates(placement)
    parts = []
    for site in spec.sites:
        rate = rates.get(site.name, 0.0)
        where = "on the recurrent path" if site.name in RECURRENT_SITES else "off the recurrent path"
        extra = " (optional: rate 0 unless set)" if rate == 0 else f", p = {rate:g}"
        gates = " for each of the four gates" if site.per_gate else ""
        parts.append(f"`{site.name}` {where}: {sampling_text(site.sampling)}{gates}{extra}")
    return f"**{placement}** ({spec.source}): " + "; ".join(parts) + "."


# What a mask at a site off the vertical connections does to the memory that runs left to right,
# by (site, sampling): step 2's takeaway for the placement shown.
MEMORY_EFFECTS = {
    ("hidden", PER_STEP): "a fresh mask on h at every step cuts the recurrent h connection anew at each step, "
                          "though the cell c carries the memory past it",
    ("hidden", PER_SEQUENCE): "one mask on h for the whole sequence cuts the same units at every step, so reaching "
                              "further back cuts nothing new",
    ("cell", PER_STEP): "a fresh mask on the cell c at every step lets only a (1-p)^k share of what happened k steps "
                        "ago through",
    ("cell", PER_SEQUENCE): "one mask on the cell c for the whole sequence: the dropped units hold no memory, the "
                            "others are never cut",
    ("cell_update", PER_STEP): "only the new content g_t is masked before it is added, so what the cell carries is "
                               "never erased",
    ("weight", PER_FORWARD): "the same recurrent weights W_hh are dropped at every step of a pass: no new cut per step",
    ("zoneout_c", PER_STEP): "units keep their previous value instead of being zeroed: memory is held, not cut",
    ("zoneout_h", PER_STEP): "units keep their previous value instead of being zeroed: memory is held, not cut",
}
VERTICAL_SITES = ("input", "output", "embedding")  # off the recurrent path: nothing carried is masked


def masks_takeaway(placement: str) -> str:
    """Step 2's takeaway for the placement on screen: what its masks do to the memory through time
    (its sites at their default rates; an optional site at rate 0 masks nothing)."""
    spec = PLACEMENTS[placement]
    rates = resolve_rates(placement)
    active = [site for site in spec.sites if rates.get(site.name, 0.0) > 0]
    if not active:
        return ("Without dropout nothing is masked, and nothing keeps the network from memorising its training "
                "text (step 1).")
    recurrent = [site for site in active if site.name not in VERTICAL_SITES]
    if not recurrent:
        return STEPS[1].takeaway if placement == "zaremba" else (
            f"{placement} masks only the vertical (non-recurrent) connections, so the memory that runs left to "
            "right is never cut.")
    effects = list(dict.fromkeys(MEMORY_EFFECTS[(site.name, site.sampling)] for site in recurrent))
    lead = "besides the vertical connections, " if len(recurrent) < len(active) else ""
    return f"**{placement}**: {lead}" + "; ".join(effects) + "."


# --------------------------------------------------------------------------- picking runs


def _finished_first(table: pd.DataFrame) -> pd.DataFrame:
    """Finished runs before unfinished ones; within each, reference runs first, then the others
    newest first (the table's order).  Only runs with at least one epoch."""
    if table.empty:
        return table
    ok = table[(table["epochs_done"] > 0) & (table["problems"] == "")]
    rank = (ok["state"] != "finished").astype(int) * 2 + (~ok["read_only"].astype(bool)).astype(int)
    return ok.iloc[rank.argsort(kind="stable")]


def at_own_settings(table: pd.DataFrame, preset: str) -> pd.DataFrame:
    """The run table's runs of `preset` at its own settings (no other variant, e.g. not main.lua's
    schedule), outside sweeps, the lowest seed first, then the oldest: where a chart wants the
    paper's model of a size, or one seed of it (step 1, the Table 1 pick)."""
    rows = table[table["preset"] == preset]
    for column in ("variant", "sweep"):  # '' or missing: the preset's own, not part of a sweep
        if column in rows:
            rows = rows[rows[column].fillna("") == ""]
    order = [column for column in ("seed", "created_at") if column in rows]
    return rows.sort_values(order, kind="stable") if order else rows


# Step 1's model sizes: the demo (live on a CPU) and the paper's sizes where it trains with dropout.
# Not small: the paper trains it without dropout, and at its size and 13-epoch schedule zaremba 0.5
# costs validation perplexity (README, the small seeds table): no picture of overfitting cured.
OVERFITTING_PRESETS = ("demo", "medium", "large")


def overfitting_pair(table: pd.DataFrame, prefer: Sequence[str] = (),
                     preset: str = "demo") -> tuple[str | None, str | None]:
    """(run without dropout, run with dropout) of `preset` to show in step 1.

    `prefer` (runs this session launched live) wins, then shipped reference runs, then the
    newest runs in the store.  At the paper's sizes only its own settings count (not, say, a run
    on main.lua's schedule), the dropout side is zaremba's placement, and the lowest seed comes
    first.  Either side may be None.
    """
    if table.empty:
        return None, None
    if preset == "demo":  # the live demo pair departs from its preset (a 10k-word prefix): allowed there
        rows = table[table["preset"] == preset]
    else:
        rows = at_own_settings(table, preset)
        rows = rows[rows["placement"].isin(["none", "zaremba"])]
    rows = _finished_first(rows)
    preferred = rows[rows["run"].isin(list(prefer))]
    ordered = pd.concat([preferred, rows])
    without = ordered[(ordered["placement"] == "none") | (ordered["dropout"] == 0)]
    dropped = ordered[(ordered["placement"] != "none") & (ordered["dropout"] > 0)]
    # the story is Zaremba's placement: any other placement only if no zaremba run exists
    with_dropout = pd.concat([dropped[dropped["placement"] == "zaremba"], dropped])
    pick = lambda rows: str(rows["run"].iloc[0]) if not rows.empty else None  # noqa: E731
    return pick(without), pick(with_dropout)


def overfitting_presets(table: pd.DataFrame) -> list[str]:
    """The sizes step 1 can show: the demo always (its pair can be trained live), then each of the
    paper's sizes that has a run without dropout and one with zaremba's."""
    return ["demo"] + [preset for preset in OVERFITTING_PRESETS[1:]
                       if None not in overfitting_pair(table, preset=preset)]


def size_label(preset: str) -> str:
    """'medium · 2 × 650, 39 epochs' (the demo adds its training prefix): step 1's size choice."""
    config = cfg.PRESETS[preset]
    prefix = config.train.max_train_tokens
    return (f"{preset} · {config.model.layers} × {config.model.hidden}, {config.train.epochs} epochs"
            + (f" on {prefix:,} words" if prefix else ""))


def live_demo_configs(data_dir: str | None = None) -> list[tuple[str, dict]]:
    """Two short CPU runs for step 1, the demo model on 10k words (20-30 s each on 2 free cores).

    The demo preset's 2 x 200 model, but batch 5 (four times the updates per word) on a 10k-token
    prefix for 8 epochs: without dropout the validation perplexity turns up after epoch 3 while
    the training perplexity keeps falling (measured: valid 999 -> 1751, train 85); with zaremba
    dropout 0.5 it bottoms out lower (860) and stays there.
    """
    common = dict(epochs=8, max_train_tokens=10_000, max_eval_tokens=4_000, batch_size=5, device="cpu",
                  log_every=10, data_dir=data_dir)
    return [
        ("lecture demo, no dropout", cfg.to_dict(cfg.build_run_config("demo", placement="none", **common))),
        ("lecture demo, dropout 0.5",
         cfg.to_dict(cfg.build_run_config("demo", placement="zaremba", dropout=0.5, **common))),
    ]


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
        left_out.append(f"{', '.join(beyond)}: not drawn, {limit} lines at most (the Gradients page draws any run).")
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
    first = float(rows[measure].iloc[0])
    return first if measure == "norm" or first == 0 else 1.0


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
        elif not _k0(profiles[run], measure) or not math.isfinite(_k0(profiles[run], measure)):
            why = ""
            if wrt == "c" and "zoneout_c" in PLACEMENTS.get(placement, PLACEMENTS["none"]).site_names:
                why = (" (zoneout computes h_t from the cell before it is zoned out, so the loss at step t does "
                       "not depend on the zoned c_t)")
            gaps.append(f"{placement}: its gradient at k = 0 is 0{why}: nothing to read the steps back against.")
    return gaps


# --------------------------------------------------------------------------- step 4: evidence

# Published single-model word-level PTB perplexities (../shared/REFERENCE.md sections 1-2).
# rate: the paper's dropout rate ('' where there is none, or none published for that size).
PUBLISHED = pd.DataFrame([
    {"source": "Zaremba et al. 2014", "preset": "small", "placement": "none", "rate": "", "valid": 120.7,
     "test": 114.5},
    {"source": "Zaremba et al. 2014", "preset": "medium", "placement": "zaremba", "rate": "0.5", "valid": 86.2,
     "test": 82.7},
    {"source": "Zaremba et al. 2014", "preset": "large", "placement": "zaremba", "rate": "0.65", "valid": 82.2,
     "test": 78.4},
    {"source": "Gal & Ghahramani 2016", "preset": "medium", "placement": "variational", "rate": "", "valid": 81.9,
     "test": 79.7},
])


def evidence_frame(table: pd.DataFrame, *, include_own: bool = False) -> pd.DataFrame:
    """Valid and test perplexity per configuration over its finished runs' seeds.

    A configuration is a preset, a placement, its rates and any other settings that depart from
    the preset's (the table's `variant`); its category reads "medium · zaremba", with the other
    settings and then the rates in brackets where one preset and placement has several.
    valid is the validation perplexity of the model that was tested (the last epoch's, as the
    paper's Table 1 reports it: a best epoch picked on validation would sit beside a test
    perplexity of another model - 118.6 beside 157.6 for a medium run that overfits) and test its
    test perplexity; best_valid is the lowest validation perplexity of any epoch.  Each is averaged
    over the runs (seeds) of that configuration; *_sd is their standard deviation (0 for one run),
    so a lucky seed is never shown as the result.  Reference runs only, unless `include_own`.
    Where runs were also tested with their dropout on (`rnnreg evaluate`, Monte-Carlo), mc_test is
    the mean of that over those runs, mc_seeds their number, mc_off_test the same runs' test with
    dropout off (the like-for-like comparison), mc_protocol how their masks were drawn and
    mc_samples how many passes each averaged.
    variant is '' for the preset's own settings, else which differ ('decay_after=7'); rate the dropout
    rate of the placement's primary sites ('0.5'; '' for none or where the table does not say), which
    a chart adds to the category where it names the row (`evidence_row_labels`).
    Columns: preset, placement, variant, category, rate, valid, test, best_valid, valid_sd, test_sd, seeds,
    run, source, mc_test, mc_seeds, mc_off_test, mc_protocol, mc_samples.
    """
    columns = ["preset", "placement", "variant", "category", "rate", "valid", "test", "best_valid", "valid_sd",
               "test_sd", "seeds", "run", "source", *MC_COLUMNS]
    if table.empty:
        return pd.DataFrame(columns=columns)
    rows = _candidates(table, include_own)
    if "corpus" in rows:  # a run on another corpus is no Penn Treebank evidence (unrecorded: given the benefit)
        rows = rows[rows["corpus"].fillna("") != "other"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    rows = rows.assign(**{key: rows[key].fillna("") if key in rows else "" for key in ("rates", "variant")})
    # a finished run has a last epoch; the best stands in only where the table lacks it
    final_valid = rows["last_valid_ppl"] if "last_valid_ppl" in rows else rows["best_valid_ppl"]
    rows = rows.assign(final_valid_ppl=final_valid.fillna(rows["best_valid_ppl"]), rate=primary_rates(rows))
    grouped = rows.groupby(["preset", "placement", "rates", "variant"], sort=False)
    out = grouped.agg(valid=("final_valid_ppl", "mean"), test=("test_ppl", "mean"),
                      best_valid=("best_valid_ppl", "mean"),
                      valid_sd=("final_valid_ppl", "std"), test_sd=("test_ppl", "std"),
                      seeds=("run", "size"), run=("run", "first"), own=("read_only", "min"),
                      rate=("rate", "first")).reset_index()
    out[["valid_sd", "test_sd"]] = out[["valid_sd", "test_sd"]].fillna(0.0)  # one run: no spread
    out["source"] = ["reference run" if reference else "own run" for reference in out.pop("own")]
    out["category"] = _configuration_labels(out)
    out = out.join(_masks_on(rows, grouped.keys), on=grouped.keys)
    out["mc_seeds"] = out["mc_seeds"].fillna(0).astype(int)  # 0: no run of it tested with dropout on
    return out.sort_values(["preset", "valid"]).reset_index(drop=True)[columns]


MC_COLUMNS = ("mc_test", "mc_seeds", "mc_off_test", "mc_protocol", "mc_samples")


def _masks_on(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per configuration with any run tested by Monte-Carlo dropout (`rnnreg evaluate`): the mean
    of those runs' MC test, their number, the same runs' test with dropout off and how they drew
    their masks; indexed by `keys`."""
    if "mc_test_ppl" not in rows:
        return pd.DataFrame(columns=list(MC_COLUMNS), index=pd.MultiIndex.from_tuples([], names=keys))
    tested = rows[rows["mc_test_ppl"].notna()]
    tested = tested.assign(**{key: tested[key] if key in tested else "" for key in ("mc_protocol", "mc_samples")})
    return tested.groupby(keys, sort=False).agg(
        mc_test=("mc_test_ppl", "mean"), mc_seeds=("run", "size"), mc_off_test=("test_ppl", "mean"),
        mc_protocol=("mc_protocol", _distinct), mc_samples=("mc_samples", _distinct))


def _distinct(values: pd.Series) -> str:
    """'window' or '20, 1000': the different values of a column among a configuration's runs."""
    present = [v for v in values if pd.notna(v) and v != ""]
    return ", ".join(sorted({f"{v:g}" if isinstance(v, float) else str(v) for v in present}))


def _candidates(table: pd.DataFrame, include_own: bool) -> pd.DataFrame:
    """Finished language-model runs without problems (the reference runs only, unless `include_own`)."""
    rows = table[(table["state"] == "finished") & (table["problems"] == "") & table["best_valid_ppl"].notna()]
    if "task" in rows:  # perplexities of the synthetic memory task are not Penn Treebank evidence
        rows = rows[rows["task"].fillna("lm") == "lm"]
    return rows if include_own else rows[rows["read_only"]]


def off_corpus(table: pd.DataFrame, *, include_own: bool = False) -> int:
    """How many runs `evidence_frame` leaves out because they trained on another corpus than the vendored PTB."""
    if table.empty or "corpus" not in table:
        return 0
    return int((_candidates(table, include_own)["corpus"] == "other").sum())


def evidence_row_labels(runs: pd.DataFrame, published: pd.DataFrame = PUBLISHED) -> dict[str, str]:
    """category -> how the evidence chart names its row: with the dropout rate after the placement
    ('small · recurrent 0.5', 'medium · recurrent 0.25 (clip=2.5)'), the runs' where there are any,
    else the paper's; where a published number shares a row with runs at another rate, the paper's
    too ('medium · zaremba 0.3 (paper: 0.5)')."""
    def with_rate(cat: str, preset: str, placement: str, rate: str) -> str:
        head = category([preset], [placement])[0]
        return f"{head} {rate}{cat[len(head):]}" if rate and cat.startswith(head) else cat

    paper = {}
    for preset, placement, rate in zip(published["preset"], published["placement"],
                                       published["rate"] if "rate" in published else [""] * len(published)):
        paper[category([preset], [placement])[0]] = rate
    labels = {cat: with_rate(cat, *cat.split(" · "), rate) for cat, rate in paper.items()}
    if runs.empty:
        return labels
    rates = runs["rate"] if "rate" in runs else pd.Series("", index=runs.index)
    for cat, preset, placement, rate in zip(runs["category"], runs["preset"], runs["placement"], rates):
        differs = paper.get(cat, "") not in ("", rate) and rate != ""
        labels[cat] = with_rate(cat, preset, placement, rate) + (f" (paper: {paper[cat]})" if differs else "")
    return labels


PAPER_PRESETS = ("small", "medium", "large")


def at_paper_sizes(evidence: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The configurations of the paper's presets, and how many others (CPU demo runs) were left out.

    A demo's perplexities (hundreds, on a 30,000-token subset) would squash the differences of a
    few points the paper is about into one bar height; where no run of the paper's sizes exists
    (a fresh install's own demo runs), they are all there is and stay.
    """
    paper = evidence["preset"].isin(PAPER_PRESETS)
    if not paper.any():
        return evidence, 0
    return evidence[paper].reset_index(drop=True), int((~paper).sum())


def _configuration_labels(groups: pd.DataFrame) -> list[str]:
    """'medium · zaremba' where that says which; where one preset and placement has several
    configurations, their other settings in brackets, as `config.variant_label` names them
    ('medium · zaremba (main.lua's schedule)', 'medium · zaremba (clip=2.5)'), then their rates
    where those still tell them apart ('... [hidden 0.3, embedding 0.3]')."""
    labels = pd.Series(category(groups["preset"], groups["placement"]), index=groups.index)
    several = labels.duplicated(keep=False)
    pairs = zip(groups["preset"], groups["variant"])
    named = pd.Series([cfg.variant_label(preset, variant) for preset, variant in pairs], index=groups.index)
    labels = labels.where(~several | (named == ""), labels + " (" + named + ")")
    several = labels.duplicated(keep=False)
    return list(labels.where(~several, labels + " [" + groups["rates"] + "]"))


def primary_rates(rows: pd.DataFrame) -> list[str]:
    """Per run, the rate of its placement's primary sites from the table's `rate <site>` columns
    ('0.5', '0.5/0.3' where they differ), else its `dropout`; '' for none or where neither says."""
    out = []
    for _, row in rows.iterrows():
        spec = PLACEMENTS.get(row["placement"])
        sites = [site.name for site in spec.sites if site.primary] if spec else []
        values = [row.get(f"rate {name}") for name in sites]
        if sites and not any(pd.notna(v) for v in values):  # a table without the per-site columns
            values = [row.get("dropout")]
        out.append("/".join(f"{v:g}" for v in sorted({float(v) for v in values if pd.notna(v) and v > 0},
                                                      reverse=True)))
    return out


def category(presets: Iterable[str], placements: Iterable[str]) -> list[str]:
    return [f"{preset} · {placement}" for preset, placement in zip(presets, placements)]


# --------------------------------------------------------------------------- the poke page

CHECKPOINT_FILES = ("config.json", "vocab.json", "checkpoint.safetensors")  # what rnnreg.inspect_model loads


def checkpoint_runs(table: pd.DataFrame) -> list[str]:
    """Runs that have a checkpoint to poke, best first: finished before unfinished, language
    models before memory-task runs (an English sentence means nothing to those), your runs
    before shipped ones, the paper's larger models first; otherwise newest first (the table's order)."""
    if table.empty:
        return []
    has = table["path"].map(lambda p: all((Path(p) / name).is_file() for name in CHECKPOINT_FILES))
    rows = table[has & (table["problems"] == "")]
    task = rows["task"] if "task" in rows else pd.Series("lm", index=rows.index)
    read_only = rows["read_only"].astype(bool) if "read_only" in rows else pd.Series(False, index=rows.index)
    order = pd.DataFrame({
        "unfinished": rows["state"] != "finished", "memory": task == "memory",
        "browsing": [cfg.browsing_rank(preset, shipped) for preset, shipped in zip(rows["preset"], read_only)],
    }, index=rows.index)
    return list(rows.loc[order.sort_values(list(order.columns), kind="stable").index, "run"])
