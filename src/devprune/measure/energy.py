"""Compute-only energy model: ``E = E_MAC * MACs + E_AC * ACs`` (per sample).

The defaults are the 45 nm, 32-bit float figures of Horowitz (ISSCC 2014) used throughout the
SNN-pruning literature and by SpikingJelly's energy helper: 4.6 pJ per multiply-accumulate,
0.9 pJ per accumulate. Data movement is not modelled (see docs/MEASUREMENT.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from devprune.errors import ConfigError


@dataclass(frozen=True)
class EnergyModel:
    """Energy per operation in picojoules."""

    mac_pj: float = 4.6
    ac_pj: float = 0.9

    def __post_init__(self) -> None:
        if self.mac_pj < 0 or self.ac_pj < 0:
            raise ConfigError(
                f"energy per operation must be >= 0 pJ; got mac_pj={self.mac_pj}, "
                f"ac_pj={self.ac_pj}"
            )

    def energy_pj(self, macs: float, acs: float) -> float:
        return self.mac_pj * macs + self.ac_pj * acs

    def as_dict(self) -> dict[str, float]:
        return asdict(self)
