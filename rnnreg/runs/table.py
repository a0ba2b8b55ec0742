"""`rnnreg list`: the run table as text."""

from __future__ import annotations

import textwrap
from typing import Iterable, Mapping

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


def place_text(place: int) -> str:
    """A queued run's place in the queue's line (`rnnreg.line.places`): '1st in line', '23rd in line'."""
    suffix = "th" if 10 <= place % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(place % 10, "th")
    return f"{place}{suffix} in line"


def state_in_line(state: str, run_id: str, places: Mapping[str, int]) -> str:
    """A run's state, with a queued run's place in line where it has one: 'queued (2nd in line)'
    (`rnnreg list`, the Runs and Launch pages)."""
    return f"{state} ({place_text(places[run_id])})" if state == "queued" and run_id in places else state


def _mc_note(s: RunSummary) -> str:
    """' (N=1000, masks per stream)': how many passes, and how each drew its masks."""
    text = mc_passes_text(s.mc_samples, s.mc_protocol)
    return f" ({text})" if text else ""


def format_table(summaries: Iterable[RunSummary], width: int | None = None,
                 places: Mapping[str, int] | None = None) -> str:
    """An aligned text table of runs for `rnnreg list`.

    `width`: a terminal's columns.  Where the whole table is wider, a short one fits it as well as
    it can: a table per task; a run by its name where no other run has that name (any command takes
    one); the dropout as its placement and rates ('zaremba 0.5'); an MC figure without its notes;
    a shipped run's state without '(reference)' (they are listed after yours); then, while still
    too wide, columns left out in `_NARROWER`'s order, said under each table.  A number is never
    cut; where even that is too wide, the footer says so.  Why a run stopped is wrapped, not cut.
    `places`: a queued run's place in the queue's line (`rnnreg.line.places`), beside its state."""
    summaries = list(summaries)
    if not summaries:
        return "no runs"
    lines, _ = _table_lines(summaries, [s.id for s in summaries], short=False, places=places)
    if width is None or max(len(line) for line in lines) <= width:
        return "\n".join(lines + _stopped_lines(summaries, [s.id for s in summaries]))
    handles = run_handles(summaries)
    # a table per task, each with its own columns: a memory run's delay and recall beside a language
    # model's MC test would widen both for nothing
    tasks = {"language models": [i for i, s in enumerate(summaries) if s.task != "memory"],
             "memory-task runs (recall after a delay)": [i for i, s in enumerate(summaries) if s.task == "memory"]}
    lines: list[str] = []
    for title, rows in tasks.items():
        if not rows:
            continue
        if len(rows) < len(summaries):  # both kinds: say which table is which
            lines += ([""] if lines else []) + [title]
        table, dropped = _table_lines([summaries[i] for i in rows], [handles[i] for i in rows], short=True,
                                      width=width, narrower=_NARROWER[title], places=places)
        lines += table + ([f"(left out here: {', '.join(dropped)})"] if dropped else [])
    widest = max(len(line) for line in lines)
    fit = (f"short for {width} columns" if widest <= width
           else f"as short as it gets, {widest} columns, for a {width}-column terminal")
    footer = [""] + textwrap.wrap(f"({fit}; runs by name where it is theirs alone: rnnreg list --wide for the whole "
                                  "table, --json for every field)", width)
    stopped = [wrapped for line in _stopped_lines(summaries, handles)
               for wrapped in (textwrap.wrap(line, width, initial_indent="", subsequent_indent="      ") or [""])]
    return "\n".join(lines + footer + stopped)


def run_handles(summaries: list[RunSummary]) -> list[str]:
    """What to call each run on a narrow screen: its name, where no other run listed has it, else its id."""
    counts: dict[str, int] = {}
    for s in summaries:
        counts[s.name or ""] = counts.get(s.name or "", 0) + 1
    return [_printable(s.name) if s.name and counts[s.name] == 1 else s.id for s in summaries]


# How a short table gets narrower, step by step while it is wider than the terminal: a column cut
# (with '…') to a number of characters, or left out (None).  A language model's dropout rates matter
# more than its MC figure; a memory run's result is its recall, not its perplexities.
_NARROWER = {
    "language models": (("SETTINGS", 8), ("SETTINGS", None), ("MC TEST", None), ("PRESET", None), ("EPOCHS", None)),
    "memory-task runs (recall after a delay)": (("PRESET", None), ("SETTINGS", None), ("BEST VALID", None),
                                                ("TEST", None), ("EPOCHS", None)),
}


def _table_lines(summaries: list[RunSummary], handles: list[str], *, short: bool, width: int | None = None,
                 narrower: tuple[tuple[str, int | None], ...] = (),
                 places: Mapping[str, int] | None = None) -> tuple[list[str], list[str]]:
    """The table's lines, and the columns left out to fit `width` (short: for a terminal) by the
    steps of `narrower`."""
    columns: dict[str, list[str]] = {}  # header -> cells, in order
    if short:
        columns["RUN"] = handles
    else:
        columns["ID"], columns["NAME"] = handles, [_printable(s.name) or "-" for s in summaries]
    columns["PRESET"] = [_printable(s.preset) or "-" for s in summaries]
    columns["DROPOUT"] = [_printable(s.dropout_short if short else s.dropout_label) for s in summaries]
    # a column only where some run has it
    if any(s.delay is not None for s in summaries):  # memory-task runs: the gap they recall over
        columns["DELAY"] = [str(s.delay) if s.delay is not None else "-" for s in summaries]
    if any(s.variant for s in summaries):  # settings other than the preset's
        columns["SETTINGS" if short else "OTHER SETTINGS"] = [_printable(s.variant) or "-" for s in summaries]
    columns["STATE"] = [state_in_line(s.state, s.id, places or {})
                        + (" (reference)" if s.read_only and not short else "")  # as the Runs page
                        + (" !" if s.problems else "") for s in summaries]
    columns["EPOCHS"] = [f"{s.epochs_done}/{s.epochs_total if s.epochs_total is not None else '?'}" for s in summaries]
    columns["BEST VALID"] = [ppl_text(s.best_valid_ppl) for s in summaries]
    columns["TEST"] = [ppl_text(s.test_ppl) for s in summaries]
    if any(s.mc_test_ppl is not None for s in summaries):
        columns["MC TEST"] = [ppl_text(s.mc_test_ppl) + ("" if short else _mc_note(s)) for s in summaries]
    if any(s.test_accuracy is not None for s in summaries):  # memory-task runs
        columns["RECALL" if short else "TEST RECALL"] = [
            f"{s.test_accuracy:.1%}" if s.test_accuracy is not None else "-" for s in summaries]
    widths = {h: max(len(h), *map(len, cells)) for h, cells in columns.items()}
    left_out = []
    for header, keep in narrower:
        over = sum(widths.values()) + 2 * (len(widths) - 1) - (width or 0)
        if width is None or over <= 0:
            break
        if header not in widths:
            continue
        if keep is None:
            del columns[header], widths[header]
            left_out.append(header)
        else:
            widths[header] = max(keep, len(header), widths[header] - over)
    # numbers align right; the MC figure's notes read left to right under their own header
    right = {"EPOCHS", "BEST VALID", "TEST", "TEST RECALL", "RECALL"} | ({"MC TEST"} if short else set())
    lines = ["  ".join((h.rjust if h in right else h.ljust)(widths[h]) for h in columns).rstrip()]
    for i in range(len(summaries)):
        lines.append("  ".join((_cut(cells[i], widths[h]).rjust if h in right else _cut(cells[i], widths[h]).ljust)
                               (widths[h]) for h, cells in columns.items()).rstrip())
    return lines, left_out


def _cut(cell: str, width: int) -> str:
    return cell if len(cell) <= width else cell[:width - 1] + "…"


def _stopped_lines(summaries: list[RunSummary], handles: list[str]) -> list[str]:
    """Why a run ended early (diverged, failed, cancelled, died), under the table: the column would be too wide."""
    stopped = [f"  {handle} ({s.state}): {_printable(s.why_stopped)}"
               for s, handle in zip(summaries, handles) if s.why_stopped]
    return ["", "why these stopped early:", *stopped] if stopped else []
