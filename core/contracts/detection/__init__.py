"""Contracts of the stages a detection project runs in its own form."""
