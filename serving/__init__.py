"""The model server: the deployable ONNX artifact behind KServe's V1 and Open Inference Protocol v2 REST APIs.

Light on purpose (ONNX Runtime, numpy, Pillow, kserve; no torch): it is what the
predictor image runs.
"""
