"""The run store as the dashboard's DataFrames: a thin adapter over `rnnreg.runs` (no Streamlit).

`rnnreg.runs` reads run directories tolerantly (a broken run comes back with `problems`, never
an exception); this module turns its summaries and records into the long frames that
`rnnreg.plots` draws, so that `pages.shared.common` can cache them by file modification time.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rnnreg import runs
from rnnreg.placements import rates_text

TABLE_COLUMNS = ["run", "label", "name", "preset", "placement", "rates", "variant", "state", "epochs_done",
                 "epochs_total", "best_valid_ppl", "last_valid_ppl", "test_ppl", "wall_seconds", "device", "created_at",
                 "read_only", "problems", "message", "why_stopped", "sweep"]


def run_ids(root: Path) -> dict[str, Path]:
    """run id -> directory, for every run under `root` (reference runs included)."""
    return {s.id: Path(s.path) for s in runs.list_runs(root)} if root.is_dir() else {}


def signatures(root: Path) -> tuple:
    """A cheap key that changes whenever any run's files change (stat calls only)."""
    return runs.root_signature(root)


def settled_states(table: pd.DataFrame) -> tuple[tuple[str, str], ...]:
    """(run, state now) for each run `table` shows queued or running that has ended since.

    A run's files alone do not say that it is over: a trainer killed outright (SIGKILL, out
    of memory) leaves `running` in its status.json, and only its dead process tells.  So a
    table cached by file signatures is re-checked here, one small status file per active run.
    """
    active = table[table["state"].isin(runs.ACTIVE_STATES)]
    if active.empty:  # (an empty store's table has no path column)
        return ()
    settled = []
    for run_id, path, shown in zip(active["run"], active["path"], active["state"]):
        status, _problem = runs.read_json(Path(path) / runs.STATUS_FILE)
        if status is not None and (now := runs.effective_state(status)) != shown:
            settled.append((run_id, now))
    return tuple(settled)


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def summary_row(s: runs.RunSummary, config: dict) -> dict[str, Any]:
    """One row of the runs table, with the settings the parallel-coordinates view needs."""
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    train = config.get("train") if isinstance(config.get("train"), dict) else {}
    row = {
        "run": s.id, "name": s.name or "", "preset": s.preset or "?", "placement": s.placement or "?",
        "rates": rates_text(s.rates), "dropout": max(s.rates.values(), default=0.0), "variant": s.variant or "",
        "corpus": s.corpus or "",
        "state": s.state, "epochs_done": s.epochs_done, "epochs_total": s.epochs_total,
        "best_valid_ppl": _nan(s.best_valid_ppl), "last_valid_ppl": _nan(s.last_valid_ppl),
        "test_ppl": _nan(s.test_ppl), "wall_seconds": _nan(s.wall_seconds), "device": s.device or "",
        "created_at": s.created_at or "", "read_only": s.read_only, "problems": "; ".join(s.problems),
        "message": s.message or "", "why_stopped": s.why_stopped or "",
        "layers": model.get("layers"), "hidden": model.get("hidden"),
        "max_train_tokens": train.get("max_train_tokens"), "seed": train.get("seed"), "clip": train.get("clip"),
        "path": s.path, "sweep": s.sweep or "",
        "task": s.task or "lm", "delay": s.delay, "test_accuracy": _nan(s.test_accuracy),
        "mc_test_ppl": _nan(s.mc_test_ppl), "mc_protocol": s.mc_protocol or "", "mc_samples": s.mc_samples,
        # without a readable config.json its placement and rates are unknown, not "no dropout"
        "settings_known": bool(config) and s.placement is not None,
    }
    for site, p in s.rates.items():
        row[f"rate {site}"] = float(p)
    return row


def mc_text(samples: Any, protocol: str) -> str | None:
    """'N=20, masks per window' for a table row's latest MC evaluation (samples may be NaN);
    None (a table's placeholder) for a run without one."""
    return runs.mc_passes_text(int(samples) if pd.notna(samples) else None, protocol)


def run_table(root: Path) -> pd.DataFrame:
    """One row per run, newest first (reference runs last); `label` is the name, made unique, or the id."""
    rows = []
    for s in runs.list_runs(root):
        config = {}
        if s.state != runs.CORRUPT_STATE:
            doc, _problem = runs.read_json(Path(s.path) / runs.CONFIG_FILE)
            config = (doc or {}).get("config") if isinstance((doc or {}).get("config"), dict) else {}
        rows.append(summary_row(s, config))
    if not rows:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    df = pd.DataFrame(rows)
    df["epochs_total"] = df["epochs_total"].astype("Int64")  # whole numbers, <NA> when unknown
    df = df.sort_values("read_only", kind="stable").reset_index(drop=True)
    labels = df["name"].where(df["name"] != "", df["run"])
    dupes = labels.duplicated(keep=False)
    labels = labels.where(~dupes, labels + " (" + df["run"].str[-6:] + ")")
    # ids made by hand or copied can share their last characters too: then the whole id, which is unique
    df["label"] = labels.where(~labels.duplicated(keep=False), df["name"] + " (" + df["run"] + ")")
    return df


def run_frames(root: Path, run_id: str) -> dict[str, Any]:
    """Everything the chart pages draw for one run; empty frames where the run has nothing (yet)."""
    try:
        run = runs.load_run(root, run_id)
    except runs.RunStoreError as err:
        return {"problems": [str(err)], "config": {}, "environment": {}, "status": {}}
    frames = run.frames()  # each record file read once
    for kind in ("epochs", "steps"):
        frames[kind]["wall_s"] = frames[kind]["time"]  # the trainer's `time`: seconds since training started
    frames["layers"] = frames["layers"].rename(columns={"grad_norm": "norm"})
    return {**frames, "config": run.config, "environment": run.environment, "status": run.status or {},
            "problems": list(run.summary.problems)}


def csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A metrics frame as a spreadsheet wants it: each layer's gradient norm in a column of its own
    (not a dict's repr), without `wall_s` (the charts' copy of `time`)."""
    frame = frame.drop(columns=["wall_s"], errors="ignore").reset_index(drop=True)
    if "layer_grad_norms" not in frame:
        return frame
    norms = pd.DataFrame([n if isinstance(n, dict) else {} for n in frame["layer_grad_norms"]], index=frame.index)
    norms.columns = [f"grad_norm {layer}" for layer in norms.columns]
    return pd.concat([frame.drop(columns="layer_grad_norms"), norms], axis=1)


def epochs_text(done: int, total: object) -> str:
    """'3 / 8', or '3 / ?' when the total is unknown."""
    return f"{done} / {'?' if total is None or pd.isna(total) else int(total)}"


def identical_curves(epochs: pd.DataFrame) -> list[list[str]]:
    """Groups (2 or more, by label) of runs whose per-epoch train and valid perplexities are equal to
    the last digit: drawn on top of each other, one seems missing (a live demo run and the shipped
    one it reproduces, trained on the same settings and seed)."""
    if epochs is None or epochs.empty or not {"label", "epoch", "train_ppl", "valid_ppl"} <= set(epochs.columns):
        return []
    curves: dict[tuple, list[str]] = {}
    for label, rows in epochs.sort_values("epoch").groupby("label", sort=False):
        key = tuple(map(tuple, rows[["epoch", "train_ppl", "valid_ppl"]].itertuples(index=False)))
        curves.setdefault(key, []).append(str(label))
    return [labels for labels in curves.values() if len(labels) > 1]


RECENT_EPOCHS = 3  # the pace an ETA trusts: a resume on other threads or a busy stretch changes it


def eta_seconds(epochs: pd.DataFrame, epochs_total: float | None, *, steps: pd.DataFrame | None = None,
                batches_per_epoch: object = None) -> float:
    """Seconds left for a running run (NaN if unknown): the mean time of its last few epochs times
    the epochs still to go, less the time already spent in the current one; during its first epoch,
    the time its step records took for their share of all batches."""
    if epochs_total is None or pd.isna(epochs_total):
        return math.nan
    if epochs is not None and not epochs.empty:
        recent = epochs["seconds"].dropna().tail(RECENT_EPOCHS) if "seconds" in epochs else pd.Series(dtype=float)
        if recent.empty:
            return math.nan
        to_go = max(int(epochs_total) - len(epochs), 0)
        with np.errstate(over="ignore", invalid="ignore"):  # said below, not warned
            left = float(max(recent.mean() * to_go - _into_current_epoch(epochs, steps), 0.0))
        return left if math.isfinite(left) else math.nan  # epoch times of 1e308 in a hand-edited file
    if steps is None or steps.empty or not isinstance(batches_per_epoch, int) or batches_per_epoch <= 0:
        return math.nan
    last = steps.iloc[-1]  # `step` counts minibatches from the start, `time` the seconds they took
    done = last["step"] / (batches_per_epoch * int(epochs_total))
    if not 0 < done < 1 or not last["time"] > 0:
        return math.nan
    return float(last["time"] * (1 - done) / done)  # (validation and test passes not counted)


def _into_current_epoch(epochs: pd.DataFrame, steps: pd.DataFrame | None) -> float:
    """Seconds the run has trained since its last epoch record, from its step records (0 if unknown).
    Both records' `time` count training seconds from the start, across resumes."""
    if steps is None or steps.empty or "time" not in epochs or "time" not in steps:
        return 0.0
    last_epoch, last_step = epochs.iloc[-1], steps.iloc[-1]
    if "epoch" in steps and last_step["epoch"] <= last_epoch["epoch"]:
        return 0.0  # no step of the next epoch recorded yet
    since = last_step["time"] - last_epoch["time"]
    return float(since) if since > 0 else 0.0


def duration_text(seconds: float) -> str:
    """90 -> '1 min 30 s'; NaN or infinite (a hand-edited record's 1e999) -> '—'."""
    if not math.isfinite(seconds):
        return "—"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def shipped_walls(table: pd.DataFrame, preset: str) -> str | None:
    """'52 s to 2 min 21 s on NVIDIA H200 (8 runs); 42 min 49 s to 1 h 43 min on a CPU (19 runs)':
    how long the shipped, finished runs of `preset` at its own settings took, per device (their
    recorded wall); None where none is shipped.  What a launch of it will cost, before it starts."""
    if table.empty:
        return None
    rows = table[(table["preset"] == preset) & table["read_only"].astype(bool) & (table["state"] == "finished")
                 & (table["variant"].fillna("") == "") & table["wall_seconds"].notna()]
    parts = []
    for device, group in rows.groupby("device", sort=True):
        low, high = duration_text(group["wall_seconds"].min()), duration_text(group["wall_seconds"].max())
        where = "a CPU" if device == "cpu" else (device or "an unrecorded device")
        runs_text = f"{len(group)} run{'s' if len(group) > 1 else ''}"
        parts.append(f"{low if low == high else f'{low} to {high}'} on {where} ({runs_text})")
    return "; ".join(parts) or None
