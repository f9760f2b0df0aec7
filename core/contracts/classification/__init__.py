"""Contracts of the stages a classification project runs in its own form."""
