"""A cascade project's stages: evaluate the released detector and classifier together, gate, promote the pair."""
