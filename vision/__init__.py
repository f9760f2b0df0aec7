"""The project's vision library: code shared by the pipeline's stages and the model server.

Modules here import nothing heavy at package level, so the predictor image (no torch) can ship the parts it
needs.
"""
