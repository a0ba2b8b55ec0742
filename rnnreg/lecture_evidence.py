"""The lecture's step 4, "Evidence", as data: valid / test perplexity per configuration.

Finished reference runs (or your own) grouped by preset, placement, rates and other settings,
averaged over seeds with their spread and any Monte-Carlo test, beside the published numbers
(PUBLISHED) they are read against.  No torch, no Streamlit, no figures (rnnreg.lecture_plots
draws them); the steps' texts are in rnnreg.lecture.
"""

from __future__ import annotations

from typing import Iterable

import pandas as pd

from rnnreg import config as cfg
from rnnreg.placements import PLACEMENTS

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
    """Finished language-model runs without problems that reached a validation and a test figure
    (the reference runs only, unless `include_own`): each configuration's valid, test and seed
    count then come from the same runs."""
    tested = table["test_ppl"].notna() if "test_ppl" in table else True
    rows = table[(table["state"] == "finished") & (table["problems"] == "") & table["best_valid_ppl"].notna()
                 & tested]
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
        sites = list(spec.primary_sites) if spec else []
        values = [row.get(f"rate {name}") for name in sites]
        if sites and not any(pd.notna(v) for v in values):  # a table without the per-site columns
            values = [row.get("dropout")]
        out.append("/".join(f"{v:g}" for v in sorted({float(v) for v in values if pd.notna(v) and v > 0},
                                                      reverse=True)))
    return out


def category(presets: Iterable[str], placements: Iterable[str]) -> list[str]:
    return [f"{preset} · {placement}" for preset, placement in zip(presets, placements)]
