"""Contracts of a cascade project's stages: each reads its detector's and classifier's outputs by name."""
