"""Physical compaction of pruned models, the architecture record, save/load and export.

``compact(model, masks, example_input)`` removes dead filters/neurons and every tensor coupled
to them; ``architecture_record`` / ``rebuild`` and ``save_compacted`` / ``load_compacted``
store and restore the result; ``sparsify_linears`` swaps very sparse linears for CSR ones.
See docs/COMPACT.md.
"""

from devprune.compact.files import load_compacted, read_compacted, save_compacted
from devprune.compact.record import architecture_record, rebuild
from devprune.compact.sparse import CSR_MIN_SPARSITY, CSRLinear, sparsify_linears
from devprune.compact.summary import compaction_summary, format_summary
from devprune.compact.surgery import (
    apply_hard_masks,
    check_equal_outputs,
    compact,
    compacted_masks,
    masked_copy,
)

__all__ = [
    "CSR_MIN_SPARSITY",
    "CSRLinear",
    "apply_hard_masks",
    "architecture_record",
    "check_equal_outputs",
    "compact",
    "compacted_masks",
    "compaction_summary",
    "format_summary",
    "load_compacted",
    "masked_copy",
    "read_compacted",
    "rebuild",
    "save_compacted",
    "sparsify_linears",
]
