"""devprune: developmental, activity-driven pruning (DPAP, SD-SNN) for SNNs and ANNs."""

__version__ = "0.1.0"
