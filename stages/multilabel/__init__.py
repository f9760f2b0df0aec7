"""The stages a multi-label project runs in its own form; the others are shared with classification."""
