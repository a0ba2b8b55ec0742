"""Where dropout goes in an LSTM: the named placements and their sites (no torch here).

A *placement* is a set of *sites* (places in the network where a mask is applied), each with
a *sampling* rule (a fresh mask every time step, one mask per sequence, or one per forward
pass) and a rate.  The torch mechanisms live in `rnnreg.dropout`; this module only
describes them, so the dashboard and the config validation can use it without torch.

Sites (l = layer, t = time step; see ../shared/REFERENCE.md section 2):

    input        x^l_t entering layer l (the embedding output for l = 0)
    output       h^L_t entering the softmax (decoder)
    hidden       h^l_{t-1} entering layer l's recurrence (W_hh h_{t-1}); the carried h is untouched
    embedding    whole word types of the embedding matrix (Gal & Ghahramani's word dropout)
    cell_update  the cell update g_t:  c_t = f * c_{t-1} + i * D(g_t)       (Semeniuta et al.)
    cell         the cell state:       c_t = M(f * c_{t-1} + i * g_t)       (Moon et al.)
                 M is a 0/1 mask, not inverted dropout: applied at every step, a 1/(1-p)
                 scale would compound; nothing at evaluation stands in for it
    weight       DropConnect on W_hh, one mask per forward pass            (Merity et al.)
    zoneout_c    units of c keep their previous value with probability p   (Krueger et al.)
    zoneout_h    units of h keep their previous value with probability p

`--dropout P` sets a placement's *primary* sites; every other site keeps its documented
default unless set with `--dropout-site SITE=P`.  A site marked *per gate* draws four masks,
one for each gate's copy of its value (i, f, g, o each see a differently masked x or h_{t-1};
Gal & Ghahramani's "untied weights"); otherwise one mask serves all four gates.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

# How often a site's mask is redrawn.
PER_STEP = "step"  # a fresh mask at every time step (and every sequence)
PER_SEQUENCE = "sequence"  # one mask per sequence (per BPTT window), the same at every step
PER_FORWARD = "forward"  # one mask per forward pass, shared by the whole batch (weights, word types)

SITE_DESCRIPTIONS: Mapping[str, str] = MappingProxyType(
    {
        "input": "layer inputs x^l_t, the embedding output included",
        "output": "the softmax input h^L_t",
        "hidden": "h_{t-1} entering the recurrence",
        "embedding": "whole word types of the embedding (word dropout)",
        "cell_update": "the cell update g_t",
        "cell": "the cell state c_t",
        "weight": "DropConnect on the hidden-to-hidden weights W_hh",
        "zoneout_c": "cell units keep their previous value",
        "zoneout_h": "hidden units keep their previous value",
    }
)

# Sites that sit on the recurrent path: a placement using any of them needs the explicit
# LSTM (cuDNN's fused kernel cannot mask inside the recurrence).
RECURRENT_SITES = frozenset({"hidden", "cell_update", "cell", "weight", "zoneout_c", "zoneout_h"})


@dataclass(frozen=True)
class Site:
    """One site of a placement: how its mask is sampled and its rate when not given."""

    name: str
    sampling: str
    primary: bool  # set by `--dropout P`
    default_rate: float  # used when neither --dropout (primary sites) nor --dropout-site sets it
    per_gate: bool = False  # a separate mask for each of the four gates' copy (Gal & Ghahramani's "untied")


@dataclass(frozen=True)
class PlacementSpec:
    name: str
    summary: str
    source: str
    sites: tuple[Site, ...]

    @property
    def site_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.sites)

    @property
    def primary_sites(self) -> tuple[str, ...]:
        """The sites `--dropout P` sets; () for a placement without any (none)."""
        return tuple(s.name for s in self.sites if s.primary)

    @property
    def touches_recurrence(self) -> bool:
        """True if the placement needs the explicit LSTM: a site inside the recurrence, or masks per gate."""
        return any(s.name in RECURRENT_SITES or s.per_gate for s in self.sites)


def _site(name: str, sampling: str, primary: bool, default_rate: float, per_gate: bool = False) -> Site:
    return Site(name, sampling, primary, default_rate, per_gate)


PLACEMENTS: Mapping[str, PlacementSpec] = MappingProxyType(
    {
        p.name: p
        for p in (
            PlacementSpec("none", "no dropout", "Zaremba et al. 2014, 'small' (no regularisation)", ()),
            PlacementSpec(
                "zaremba",
                "non-recurrent connections only: every layer input and the softmax input, fresh mask each step",
                "Zaremba, Sutskever & Vinyals 2014",
                (_site("input", PER_STEP, True, 0.5), _site("output", PER_STEP, True, 0.5)),
            ),
            PlacementSpec(
                "recurrent",
                "naive recurrent dropout: a fresh mask each step on h_{t-1} entering the recurrence, nothing else",
                "the ablation the paper argues against",
                (_site("hidden", PER_STEP, True, 0.25),),
            ),
            PlacementSpec(
                "both",
                "zaremba's sites plus a fresh per-step mask on h_{t-1}",
                "zaremba + naive recurrent",
                (
                    _site("input", PER_STEP, True, 0.5),
                    _site("output", PER_STEP, True, 0.5),
                    _site("hidden", PER_STEP, True, 0.5),
                ),
            ),
            PlacementSpec(
                "variational",
                "one mask per sequence on layer inputs, h_{t-1} and the softmax input, plus word-level embedding dropout",
                "Gal & Ghahramani 2016",
                (
                    _site("input", PER_SEQUENCE, True, 0.5),
                    _site("hidden", PER_SEQUENCE, True, 0.5),
                    _site("output", PER_SEQUENCE, True, 0.5),
                    _site("embedding", PER_FORWARD, False, 0.1),
                ),
            ),
            PlacementSpec(
                "variational-untied",
                "variational as Gal & Ghahramani's code draws it: a separate mask per sequence for each gate's copy of"
                " the layer input and of h_{t-1}, word dropout per sequence",
                "Gal & Ghahramani 2016, untied weights, as in their LM code",
                (
                    _site("input", PER_SEQUENCE, True, 0.5, per_gate=True),
                    _site("hidden", PER_SEQUENCE, True, 0.5, per_gate=True),
                    _site("output", PER_SEQUENCE, True, 0.5),
                    _site("embedding", PER_SEQUENCE, False, 0.1),  # per word type and column, as their code
                ),
            ),
            PlacementSpec(
                "semeniuta",
                "dropout on the cell update g_t only (memory is never erased), optionally with zaremba's sites",
                "Semeniuta, Severyn & Barth 2016",
                (
                    _site("cell_update", PER_STEP, True, 0.25),
                    _site("input", PER_STEP, False, 0.0),
                    _site("output", PER_STEP, False, 0.0),
                ),
            ),
            PlacementSpec(
                "moon",
                "dropout on the cell state c_t, one mask per sequence (RNNDrop), optionally with zaremba's sites",
                "Moon et al. 2015",
                (
                    _site("cell", PER_SEQUENCE, True, 0.25),
                    _site("input", PER_STEP, False, 0.0),
                    _site("output", PER_STEP, False, 0.0),
                ),
            ),
            PlacementSpec(
                "weight-drop",
                "DropConnect on W_hh, one mask per forward pass, optionally with zaremba's sites",
                "Merity, Keskar & Socher 2017 (AWD-LSTM)",
                (
                    _site("weight", PER_FORWARD, True, 0.5),
                    _site("input", PER_STEP, False, 0.0),
                    _site("output", PER_STEP, False, 0.0),
                ),
            ),
            PlacementSpec(
                "zoneout",
                "units keep their previous c / h value instead of updating, fresh choice each step",
                "Krueger et al. 2016",
                (
                    _site("zoneout_c", PER_STEP, True, 0.25),
                    _site("zoneout_h", PER_STEP, False, 0.025),
                    _site("input", PER_STEP, False, 0.0),
                    _site("output", PER_STEP, False, 0.0),
                ),
            ),
            PlacementSpec(
                "recurrent-cell",
                "naive recurrent dropout on the memory: a fresh mask each step on the cell state c_t, nothing else",
                "the (1-p)^k ablation: each step's mask must keep what the cell carries",
                (_site("cell", PER_STEP, True, 0.25),),
            ),
        )
    }
)

PLACEMENT_NAMES: tuple[str, ...] = tuple(PLACEMENTS)


def resolve_rates(
    placement: str, dropout: float | None = None, site_rates: Mapping[str, float] | None = None
) -> dict[str, float]:
    """The rate of every site of `placement`: site overrides > `dropout` (primary sites) > defaults.

    Raises ValueError with a one-line message naming the bad option and the allowed values.
    """
    if placement not in PLACEMENTS:
        raise ValueError(f"--placement: unknown placement {placement!r}; allowed: {', '.join(PLACEMENT_NAMES)}")
    spec = PLACEMENTS[placement]
    if dropout is not None:
        check_rate("--dropout", dropout)
    rates = {s.name: (dropout if (s.primary and dropout is not None) else s.default_rate) for s in spec.sites}
    for site, rate in (site_rates or {}).items():
        if site not in rates:
            allowed = ", ".join(spec.site_names) or "none (this placement has no sites)"
            raise ValueError(f"--dropout-site: placement {placement!r} has no site {site!r}; allowed: {allowed}")
        check_rate(f"--dropout-site {site}", rate)
        rates[site] = float(rate)
    return rates


def rates_text(rates: Mapping[str, float]) -> str:
    """A run's rates as the run table shows them: 'input 0.5, output 0.5' ('—' for none)."""
    return ", ".join(f"{site} {float(p):g}" for site, p in rates.items()) if rates else "—"


def check_rate(option: str, rate: object) -> None:
    """Every dropout rate must be a number with 0 <= p < 1 (p = 1 would drop everything)."""
    # (a whole number is compared as itself: float() of one past 1e308 would overflow)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not (0.0 <= rate < 1.0):
        raise ValueError(f"{option}: rate must be a number with 0 <= p < 1, got {short_repr(rate)}")


def short_repr(value: object) -> str:
    """`value` as an error quotes it: its repr, cut short (a hand-edited config can hold 400 digits)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
