"""Running variants: stage specs over one cached-stage helper, one variant end to end, executors, whole pipelines, DDP launch."""
