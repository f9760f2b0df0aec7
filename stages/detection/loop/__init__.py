"""The data loop's stages for detection: the ensemble of detectors, and select (shared with classification)."""
