"""Export of pruned, compacted SNNs to other runtimes.

``to_nir(model, masks, example_input)`` gives a ``nir.NIRGraph`` (the neuromorphic
intermediate representation read by snnTorch, SpikingJelly, Norse, Sinabs, Rockpool, Lava-DL
and SpiNNaker2); ``compare_spikes`` runs it back (nirtorch, snnTorch's importer) against the
devprune model. ``nir`` and ``nirtorch`` are optional (``pip install 'devprune[export]'``) and
imported only when called. See docs/EXPORT.md.
"""

from devprune.export.nir_graph import DEFAULT_DT, build_nir_graph, neuron_parameters, to_nir
from devprune.export.nir_run import Comparison, EulerNeuron, compare_spikes, nirtorch_module

__all__ = [
    "DEFAULT_DT",
    "Comparison",
    "EulerNeuron",
    "build_nir_graph",
    "compare_spikes",
    "neuron_parameters",
    "nirtorch_module",
    "to_nir",
]
