"""Contracts of the stages a multi-label project runs in its own form."""
