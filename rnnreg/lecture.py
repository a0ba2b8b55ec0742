"""The lecture "Why recurrent dropout hurts" as data: no torch, no Streamlit, no figures.

Four steps, each a figure (rnnreg.lecture_plots), one sentence for the projector and what else it shows:

    1 overfitting  the demo preset (or, where the store has them, medium / large) without and with
                   dropout: train vs valid perplexity
    2 masks        an unrolled 2-layer LSTM with the connections a placement masks
    3 memory       how far back the gradient reaches, per placement, beside (1-p)^k (rnnreg.lecture_memory)
    4 evidence     valid / test perplexity of the final model per configuration (preset, placement,
                   rates, other settings; mean ± sd over seeds) beside the published numbers
                   (rnnreg.lecture_evidence)

This module holds the steps' titles and takeaways, steps 1 and 2, and the poke page's choice of
runs.  Everything here is derived from rnnreg.placements (sites and their sampling) and from the run
table of the dashboard (pages.shared.store.run_table), so a new placement or run shows up by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from rnnreg import config as cfg
from rnnreg.placements import (PER_FORWARD, PER_SEQUENCE, PER_STEP, PLACEMENTS, RECURRENT_SITES, rates_text,
                               resolve_rates)


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    takeaway: str  # one sentence, for the projector
    detail: str = ""  # what else the figure shows, under it where there is room (not in presentation mode)


STEPS: tuple[Step, ...] = (
    Step("overfitting", "1 · Overfitting",
         "Without dropout the training perplexity keeps falling while the validation perplexity turns up; "
         "dropout on the non-recurrent connections narrows that gap."),
    Step("masks", "2 · Where the masks go",
         "Zaremba et al. mask only the vertical (non-recurrent) connections, so the memory that runs "
         "left to right is never cut."),
    Step("memory", "3 · Memory",
         "A fresh mask at every step on the cell c, which carries the memory, lets only a (1-p)^k share of what "
         "happened k steps ago through: recall collapses as the gap grows, while masks off that path (zaremba) keep "
         "recall at every gap.",
         "A per-step mask on h alone is routed around through c. One mask per sequence (variational) adds no such "
         "decay, yet at gaps of 10 and 20 it had not learned the task within 30 epochs: slow learning, not "
         "forgetting."),
    Step("evidence", "4 · Evidence",
         "Dropout on the non-recurrent connections (or one mask per sequence) is what lets larger models win: the "
         "paper's medium and large reach 82.7 and 78.4 test, where its best model without dropout, the small one, "
         "stays at 114.5; at the medium size, per-step dropout on h alone, or zoneout alone, lets the model overfit.",
         "At the small size and its 13-epoch schedule, 0.5 dropout on the layer inputs only underfits, while mild "
         "regularisers of the recurrent path (per-step dropout on h, zoneout, weight drop, dropout on the cell "
         "update) help; a mask on the memory c itself, one per window, scores worst with dropout off at test, yet "
         "ahead of no dropout when tested with its masks on (train and test see different memories). At the medium "
         "size, added to zaremba's sites the dropout on h tests better than they do alone (a mask on h never "
         "touches the memory in c). This project's reference runs show all of it."),
)
# The evidence step's last words, and what it says instead where its chart has no reference runs.
OWN_RUNS_CLAIM = "This project's reference runs show all of it."
NO_RUNS_CLAIM = "This project's reference runs (`runs/reference/`, not in this run store) show all of it."

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

    `prefer` (runs this session launched live) wins, from the moment it is queued, so that the
    chart follows it as it trains instead of a finished pair; then shipped reference runs, then
    the newest runs in the store.  At the paper's sizes only its own settings count (not, say, a
    run on main.lua's schedule), the dropout side is zaremba's placement, and the lowest seed
    comes first.  Either side may be None.
    """
    if table.empty:
        return None, None
    live = table[table["run"].isin(list(prefer)) & (table["preset"] == preset) & (table["problems"] == "")]
    # training or with an epoch to show: a pair that failed or was cancelled before its first is no picture
    live = live[live["state"].isin(["queued", "running"]) | (live["epochs_done"] > 0)]
    if not live.empty:  # the pair launched live, before its first epoch too: never half shipped, half live
        without = live[(live["placement"] == "none") | (live["dropout"] == 0)]
        dropped = live[(live["placement"] != "none") & (live["dropout"] > 0)]
        return (str(without["run"].iloc[0]) if not without.empty else None,
                str(dropped["run"].iloc[0]) if not dropped.empty else None)
    if preset == "demo":  # the live demo pair departs from its preset (a 10k-word prefix): allowed there
        rows = table[table["preset"] == preset]
    else:  # without dropout, and zaremba at the preset's own rates (medium 0.5, large 0.65), not another
        rows = at_own_settings(table, preset)
        own = rows["rates"] == rates_text(cfg.PRESETS[preset].dropout.rates) if "rates" in rows else True
        rows = rows[(rows["placement"] == "none") | ((rows["placement"] == "zaremba") & own)]
    rows = _finished_first(rows)
    without = rows[(rows["placement"] == "none") | (rows["dropout"] == 0)]
    dropped = rows[(rows["placement"] != "none") & (rows["dropout"] > 0)]
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
    """Two short CPU runs for step 1, the demo model on 10k words (about 36 s for both at once on 2 free cores).

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


def live_pair_text() -> str:
    """What the live pair is, for its chart: it departs from the demo preset the size control names."""
    _name, config = live_demo_configs()[0]
    model, train = config["model"], config["train"]
    return (f"trained live: the demo model ({model['layers']} × {model['hidden']}) on a {train['max_train_tokens']:,}-"
            f"word prefix, {train['epochs']} epochs at batch size {train['batch_size']}")


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
