"""Physical compaction of pruned models, the architecture record, save/load and export.

``compact(model, masks, example_input)`` removes dead filters/neurons and every tensor coupled
to them; see docs/COMPACT.md.
"""

from devprune.compact.surgery import apply_hard_masks, check_equal_outputs, compact, masked_copy

__all__ = ["apply_hard_masks", "check_equal_outputs", "compact", "masked_copy"]
