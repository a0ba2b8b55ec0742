"""The run store: the on-disk contract between the trainer and the dashboard (stdlib only).

One run is one directory, either directly under the runs root or one group level down
(the shipped reference runs live in `<root>/reference/<id>/` and are read-only):

    <root>/<run_id>/
      config.json           {"format": 1, "id", "created_at", "request_id", "sweep",
                             "config": rnnreg.config.to_dict(...), "environment": {...}}
      status.json           {"state", "pid", "host", "created_at", "started_at", "updated_at",
                             "ended_at", "epoch", "epochs_total", "message", ...}; also
                             "pid_start" (the pid's start time, against pid reuse) and
                             "cancel_requested_at" (set by launch.cancel)
      metrics.jsonl         one JSON object per line, each with a "kind" (step, epoch, test, ...)
      probes.jsonl          one JSON object per line (gates, grad_through_time, ...)
      checkpoint.safetensors + checkpoint.json, vocab.json, train.log

Writers (`RunWriter`, one per training process) replace JSON documents atomically (temp
file in the same directory, fsync, rename, fsync the directory) and append one whole line
per record.  Readers never trust the files: a missing file, a torn line, a wrong type, a
huge line or a symlink out of the root gives a run listed with its problems, never a crash.

The package, a module an idea (each imported here, so `from rnnreg import runs; runs.X` reaches all):
  layout     the runs root, run ids, a run directory's files, paths kept inside the root
  files      atomic JSON writes, whole-line appends, tolerant JSON / JSONL reading
  liveness   whether a run's process is alive; the state a run shows when it died unannounced, and why
  writer     RunWriter, the one writer of a run directory
  summary    RunSummary and list_runs: one row per run, the listing's cache keys; find_run_arg (RUN
             as a command takes it: id, name or path); corpus_of / corpus_dir
  loading    Run, load_run and open_run: one run opened in full for the charts
  mutations  rename_run, delete_run, resume_refusal (whether a run may be resumed)
  table      format_table (`rnnreg list`)
"""

from __future__ import annotations

from rnnreg.runs.layout import (
    FORMAT, RUN_STATES, ACTIVE_STATES, TERMINAL_STATES, RESUMABLE_STATES, CUT_SHORT_STATES, UNKNOWN_STATE,
    CORRUPT_STATE, RUNS_DIR_ENV, REFERENCE_GROUP,
    CONFIG_FILE, STATUS_FILE, METRICS_FILE, PROBES_FILE, LOG_FILE, CHECKPOINT_FILE, CHECKPOINT_STATE_FILE,
    VOCAB_FILE, LOCK_FILE, RUN_FILES, RUN_MARKERS, MAX_JSON_BYTES, MAX_LINE_BYTES, MAX_RUN_ID, RunStoreError, NoSuchRun,
    runs_root, new_run_id, validate_run_id, find_run_dir, is_read_only,
)
from rnnreg.runs.files import (
    utc_now, atomic_write_bytes, atomic_write_json, read_json, read_json_value, read_log_tail, JsonlReport, scan_jsonl,
    read_jsonl,
    open_in_run, strict_json, finite_number, count_or_none,
)
from rnnreg.runs.liveness import (
    process_start_time, pid_alive, effective_state, last_words, ERROR_PREFIX,
)
from rnnreg.runs.writer import (
    RunWriter,
)
from rnnreg.runs.summary import (
    RunSummary, summarize_run, penn_treebank_checksums, corpus_of, corpus_dir, list_runs, unlisted_folders,
    find_run_arg, run_signature, root_signature, mc_protocol, mc_passes_text,
)
from rnnreg.runs.loading import (
    Run, load_run, open_run,
)
from rnnreg.runs.mutations import (
    rename_run, delete_run, resume_refusal,
)
from rnnreg.runs.table import (
    format_table, ppl_text,
)

__all__ = [
    "FORMAT", "RUN_STATES", "ACTIVE_STATES", "TERMINAL_STATES", "RESUMABLE_STATES", "UNKNOWN_STATE", "CORRUPT_STATE",
    "CUT_SHORT_STATES", "RUNS_DIR_ENV", "REFERENCE_GROUP", "CONFIG_FILE", "STATUS_FILE", "METRICS_FILE",
    "PROBES_FILE", "LOG_FILE", "CHECKPOINT_FILE", "CHECKPOINT_STATE_FILE", "VOCAB_FILE", "LOCK_FILE", "RUN_FILES",
    "RUN_MARKERS", "MAX_JSON_BYTES", "MAX_LINE_BYTES", "MAX_RUN_ID", "RunStoreError", "NoSuchRun", "runs_root",
    "new_run_id", "validate_run_id", "find_run_dir", "find_run_arg", "is_read_only", "utc_now", "atomic_write_bytes",
    "atomic_write_json", "read_json", "read_json_value", "read_log_tail", "JsonlReport", "scan_jsonl", "read_jsonl",
    "open_in_run", "strict_json", "finite_number", "count_or_none", "process_start_time", "pid_alive",
    "effective_state", "last_words", "ERROR_PREFIX", "RunWriter", "RunSummary", "summarize_run",
    "penn_treebank_checksums", "corpus_of", "corpus_dir", "list_runs", "unlisted_folders", "run_signature",
    "root_signature",
    "mc_protocol", "mc_passes_text", "Run", "load_run", "open_run", "rename_run", "delete_run", "resume_refusal", "format_table",
    "ppl_text",
]
