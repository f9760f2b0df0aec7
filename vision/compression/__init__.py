"""Compression concerns: structured pruning and distillation, ONNX export, quantization and latency."""
