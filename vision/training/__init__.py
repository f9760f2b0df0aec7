"""Training concerns: model building, pretrained weights, the fit engine, augmentations, the hyperparameter
search, training reports and metrics."""
