"""Few-shot abstract reasoning (ARC): grids, invertible augmentations and the self-edit tool call."""
