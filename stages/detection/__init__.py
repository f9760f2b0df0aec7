"""The stages a detection project runs in its own form (core.registry.DETECTION_STAGES); the others are shared
with classification."""
