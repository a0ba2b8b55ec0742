"""A run opened in full for viewing (Run): its documents, summary and readers for its records."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from rnnreg.runs.layout import CONFIG_FILE, LOG_FILE, METRICS_FILE, PROBES_FILE, STATUS_FILE, find_run_dir, is_read_only
from rnnreg.runs.files import read_json, read_jsonl, _Unreadable, _dict, _open_regular
from rnnreg.runs.summary import RunSummary, run_signature, summarize_run


@dataclass(frozen=True)
class Run:
    """A run opened for viewing: its documents, its summary and readers for its records.

    `metrics()` / `probes()` re-read the files on every call (they grow while training).
    """

    dir: Path
    config_doc: dict | None
    status: dict | None
    summary: RunSummary

    @property
    def id(self) -> str:
        return self.dir.name

    @property
    def config(self) -> dict:
        """The `config` part of config.json ({} if unreadable)."""
        return _dict((self.config_doc or {}).get("config"))

    @property
    def environment(self) -> dict:
        return _dict((self.config_doc or {}).get("environment"))

    def metrics(self, kind: str | Iterable[str] | None = None) -> list[dict]:
        return read_jsonl(self.dir / METRICS_FILE, kind)

    def probes(self, kind: str | Iterable[str] | None = None) -> list[dict]:
        return read_jsonl(self.dir / PROBES_FILE, kind)

    def signature(self) -> tuple[tuple[str, int, int], ...]:
        return run_signature(self.dir)

    def log_tail(self, max_bytes: int = 20_000) -> str:
        """The end of train.log ('' if missing)."""
        try:
            with _open_regular(self.dir / LOG_FILE) as handle:
                size = os.fstat(handle.fileno()).st_size
                handle.seek(max(size - max_bytes, 0))
                return handle.read().decode("utf-8", errors="replace")
        except (_Unreadable, OSError):
            return ""

    # DataFrames for the dashboard (pandas imported only when asked for) -------
    # Each takes the file's records when the caller has read them already (`frames()` reads
    # metrics.jsonl and probes.jsonl once for all of them); otherwise it reads its own.
    def frames(self) -> dict:
        """Every frame below, from one read of metrics.jsonl and one of probes.jsonl."""
        metrics, probes = self.metrics(("epoch", "step")), self.probes(("gates", "grad_through_time"))
        return {"epochs": self.epochs_frame(metrics), "steps": self.steps_frame(metrics),
                "layers": self.layer_grad_norms_frame(metrics), "gates": self.gates_frame(probes),
                "gtt": self.grad_through_time_frame(probes)}

    def _records(self, kind: str, records: list[dict] | None, reader) -> list[dict]:
        return reader(kind) if records is None else [r for r in records if r.get("kind") == kind]

    def epochs_frame(self, metrics: list[dict] | None = None):
        """One row per epoch (the last record wins if a resumed run repeated one)."""
        cols = ["epoch", "train_ppl", "valid_ppl", "lr", "seconds", "clipped_fraction", "words", "time"]
        frame = _frame(self._records("epoch", metrics, self.metrics), cols, numeric=cols, keys=["epoch"])
        if not frame.empty:
            frame = frame.drop_duplicates("epoch", keep="last").sort_values("epoch")
        return frame.reset_index(drop=True)

    def steps_frame(self, metrics: list[dict] | None = None):
        cols = ["step", "epoch", "loss", "grad_norm", "clipped", "lr", "words_per_s", "words", "time"]
        frame = _frame(self._records("step", metrics, self.metrics), cols, numeric=[c for c in cols if c != "clipped"],
                       keys=["step"])
        return frame.reset_index(drop=True)

    def layer_grad_norms_frame(self, metrics: list[dict] | None = None):
        """Long format: step, epoch, layer, grad_norm (from each step's layer_grad_norms)."""
        columns: dict[str, list] = {"step": [], "epoch": [], "layer": [], "grad_norm": []}
        for r in self._records("step", metrics, self.metrics):  # column lists: half the time of a dict per row
            norms = _dict(r.get("layer_grad_norms"))
            columns["step"] += [r.get("step")] * len(norms)
            columns["epoch"] += [r.get("epoch")] * len(norms)
            columns["layer"] += [str(name) for name in norms]
            columns["grad_norm"] += list(norms.values())
        return _frame(columns, list(columns), numeric=["step", "epoch", "grad_norm"])

    def gates_frame(self, probes: list[dict] | None = None):
        """One row per (epoch, layer, gate): mean, saturation(s), bin_edges, counts."""
        cols = ["epoch", "layer", "gate", "mean", "saturation", "saturation_low", "saturation_high",
                "bin_edges", "counts"]
        return _frame(self._records("gates", probes, self.probes), cols,
                      numeric=["epoch", "layer", "mean", "saturation", "saturation_low", "saturation_high"],
                      keys=["epoch", "layer"])

    def grad_through_time_frame(self, probes: list[dict] | None = None):
        """Long format: epoch, layer, wrt, k, norm, nonzero (one row per distance k).

        `nonzero` (the share of units the gradient reaches) is NaN for records without it.
        """
        rows = []
        for r in self._records("grad_through_time", probes, self.probes):
            ks, norms, nonzero = r.get("k"), r.get("norm"), r.get("nonzero")
            if isinstance(ks, list) and isinstance(norms, list):
                shares = nonzero if isinstance(nonzero, list) and len(nonzero) == len(ks) else [None] * len(ks)
                rows += [{"epoch": r.get("epoch"), "layer": r.get("layer"), "wrt": r.get("wrt"), "k": k, "norm": n,
                          "nonzero": z} for k, n, z in zip(ks, norms, shares)]
        columns = ["epoch", "layer", "wrt", "k", "norm", "nonzero"]
        return _frame(rows, columns, numeric=["epoch", "layer", "k", "norm", "nonzero"], keys=["epoch", "layer", "k"])


def _frame(records: list[dict] | dict[str, list], columns: list[str], *, numeric: Iterable[str] = (),
           keys: Iterable[str] = ()):
    """A DataFrame with at least `columns`; `numeric` ones coerced (bad values become NaN).

    `records`: one dict per row, or one list per column.  `keys` (numeric too) place a row (its
    epoch, layer, step): a row without a finite number in each is dropped, since the pages
    index and label by them (an `Infinity` or 1e999 is valid JSON, and int() of it raises).
    """
    import numpy as np
    import pandas as pd  # lazy: `rnnreg list` and the run store itself never need pandas

    if isinstance(records, dict):
        frame = pd.DataFrame(records) if any(records.values()) else pd.DataFrame()
    else:
        frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    for col in columns:
        if col not in frame.columns:
            frame[col] = pd.Series(dtype="float64" if col in numeric else "object", index=frame.index)
    for col in numeric:
        try:
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
        except OverflowError:  # a whole number beyond any float (JSON allows 10**400): coerce is not enough
            frame[col] = pd.to_numeric(frame[col].map(_float_or_none), errors="coerce")
    keys = list(keys)
    if keys and not frame.empty:
        frame = frame[np.isfinite(frame[keys]).all(axis=1)]
    return frame[columns + [c for c in frame.columns if c not in columns and c != "kind"]]


def _float_or_none(value: Any) -> float | None:
    try:
        return float(value)
    except (OverflowError, TypeError, ValueError):
        return None


def load_run(root: str | os.PathLike[str], run_id: str) -> Run:
    """Open `run_id` for viewing; RunStoreError if there is no such run (or it leaves the root)."""
    return open_run(find_run_dir(root, run_id), root)


def open_run(run_dir: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Run:
    """Open the run in `run_dir` for viewing, wherever it is (`rnnreg show path/to/run`); its
    group is the folder between it and `root` (`reference`), None outside a root."""
    run_dir = Path(run_dir)
    read_only = is_read_only(run_dir)
    group = None
    with contextlib.suppress(OSError, RuntimeError):  # compared resolved: `runs/x` and `/abs/runs/x` alike
        parent, top = run_dir.resolve().parent, Path(root).resolve() if root is not None else None
        if top is not None and parent != top and parent.parent == top:
            group = parent.name
    doc, _ = read_json(run_dir / CONFIG_FILE)
    status, _ = read_json(run_dir / STATUS_FILE)
    return Run(run_dir, doc, status, summarize_run(run_dir, read_only=read_only, group=group))
