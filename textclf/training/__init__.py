"""Training a classifier: the trainer loop, optimiser and schedule, checkpoints, devices, data-parallel collectives."""
