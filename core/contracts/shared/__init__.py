"""Contracts of the stages every task runs as they are: they see images, not labels (a detection image's
manifest `label` is its stratum)."""
