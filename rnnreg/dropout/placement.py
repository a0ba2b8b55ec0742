"""A placement (rnnreg.placements) instantiated with rates: which mechanism sits at each site.

The LSTM and the language model only ask "is there dropout at site X, and with what?";
they never branch on a placement's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from rnnreg.dropout.masks import SiteDropout
from rnnreg.dropout.zoneout import Zoneout
from rnnreg.placements import PER_SEQUENCE, PLACEMENTS, RECURRENT_SITES


@dataclass(frozen=True)
class Placement:
    name: str
    input: SiteDropout | None = None  # layer inputs, embedding output included
    output: SiteDropout | None = None  # softmax input
    hidden: SiteDropout | None = None  # h_{t-1} entering the recurrence
    cell_update: SiteDropout | None = None  # g_t
    cell: SiteDropout | None = None  # c_t
    weight: float = 0.0  # DropConnect rate on W_hh, one mask per forward pass
    embedding: float = 0.0  # word-type dropout rate on the embedding matrix ...
    embedding_per_sequence: bool = False  # ... one mask per batch column and window, not one for the batch
    zoneout_c: Zoneout | None = None
    zoneout_h: Zoneout | None = None

    @property
    def touches_recurrence(self) -> bool:
        """True if the explicit LSTM is needed: an active site inside the recurrence, or input masks
        per gate (cuDNN projects one input for all four gates)."""
        return any(_active(getattr(self, site)) for site in RECURRENT_SITES) or (
            self.input is not None and self.input.gates > 1)

    @property
    def changes_evaluation(self) -> bool:
        """True if evaluation differs from a plain LSTM (zoneout mixes in expectation)."""
        return self.zoneout_c is not None or self.zoneout_h is not None


def _active(mechanism: object) -> bool:
    return mechanism is not None and mechanism != 0.0


def build_placement(name: str, rates: Mapping[str, float]) -> Placement:
    """Instantiate placement `name` with `rates` (site -> p, as resolved by rnnreg.config)."""
    spec = PLACEMENTS[name]
    fields: dict[str, object] = {}
    for site in spec.sites:
        p = float(rates.get(site.name, site.default_rate))
        if p == 0.0:
            continue  # a site at rate 0 is no site: it costs nothing and touches nothing
        if site.name in ("weight", "embedding"):
            fields[site.name] = p
            if site.name == "embedding":
                fields["embedding_per_sequence"] = site.sampling == PER_SEQUENCE
        elif site.name.startswith("zoneout_"):
            fields[site.name] = Zoneout(p)
        else:
            fields[site.name] = SiteDropout(p, site.sampling, 4 if site.per_gate else 1)
    return Placement(name=name, **fields)
