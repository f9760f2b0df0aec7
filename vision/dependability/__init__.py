"""Dependability concerns: OOD detection and its evaluation sets, corruption robustness, calibration,
explanation, the gate's verdict and its report."""
