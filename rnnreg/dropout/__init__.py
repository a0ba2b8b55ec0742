"""Dropout mechanisms, one file each, and `Placement`: a named placement instantiated with rates."""

from rnnreg.dropout.placement import Placement, build_placement

__all__ = ["Placement", "build_placement"]
