"""`rnnreg list`: the run table as text."""

from __future__ import annotations

from typing import Iterable

from rnnreg.runs.summary import RunSummary, mc_passes_text


def ppl_text(value: float | None, decimals: int = 2) -> str:
    """A perplexity as text: 112.72; one that blew up (a finite loss of hundreds of nats gives
    e^700) as 1.01e+304, not as 300 digits."""
    if value is None:
        return "-"
    return f"{value:.{decimals}f}" if abs(value) < 1e7 else f"{value:.3g}"



def _printable(text: str | None) -> str:
    """`text` for a terminal: a control character (a newline, an escape sequence planted in a
    config.json) shows as '?' instead of breaking the table or recolouring the screen."""
    return "".join(c if c.isprintable() else "?" for c in text or "")


def _mc_note(s: RunSummary) -> str:
    """' (N=1000, masks per stream)': how many passes, and how each drew its masks."""
    text = mc_passes_text(s.mc_samples, s.mc_protocol)
    return f" ({text})" if text else ""


def format_table(summaries: Iterable[RunSummary]) -> str:
    """An aligned text table of runs for `rnnreg list`."""
    summaries = list(summaries)
    # a column only where some run has it
    with_mc = any(s.mc_test_ppl is not None for s in summaries)
    with_recall = any(s.test_accuracy is not None for s in summaries)  # memory-task runs
    with_variant = any(s.variant for s in summaries)  # settings other than the preset's
    with_delay = any(s.delay is not None for s in summaries)  # memory-task runs: the gap they recall over
    header = ("ID", "NAME", "PRESET", "DROPOUT") + (("DELAY",) if with_delay else ()) \
        + (("OTHER SETTINGS",) if with_variant else ()) \
        + ("STATE", "EPOCHS", "BEST VALID", "TEST") \
        + (("MC TEST",) if with_mc else ()) + (("TEST RECALL",) if with_recall else ())
    rows = [
        (
            s.id, _printable(s.name) or "-", _printable(s.preset) or "-", _printable(s.dropout_label),
        ) + ((str(s.delay) if s.delay is not None else "-",) if with_delay else ()) \
        + ((_printable(s.variant) or "-",) if with_variant else ()) + (
            s.state + (" (reference)" if s.read_only else "") + (" !" if s.problems else ""),  # as the Runs page
            f"{s.epochs_done}/{s.epochs_total if s.epochs_total is not None else '?'}",
            ppl_text(s.best_valid_ppl), ppl_text(s.test_ppl),
        ) + ((ppl_text(s.mc_test_ppl) + _mc_note(s),) if with_mc else ())
        + ((f"{s.test_accuracy:.1%}" if s.test_accuracy is not None else "-",) if with_recall else ())
        for s in summaries
    ]
    if not rows:
        return "no runs"
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    # numbers align right; the MC figure's notes read left to right under their own header
    right = set(range(header.index("EPOCHS"), len(header))) - ({header.index("MC TEST")} if with_mc else set())
    lines = [
        "  ".join(cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths))).rstrip()
        for r in [header, *rows]
    ]
    # why a run ended early (diverged, failed, cancelled, died), under the table: the column would be too wide
    stopped = [f"  {s.id} ({s.state}): {_printable(s.why_stopped)}" for s in summaries if s.why_stopped]
    if stopped:
        lines += ["", "why these stopped early:", *stopped]
    return "\n".join(lines)
