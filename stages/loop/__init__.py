"""The data loop's stages for classification: the ensemble and select."""
