"""Data concerns: decoding images safely and the same way everywhere."""
