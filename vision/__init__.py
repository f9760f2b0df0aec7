"""The project's vision library, grouped by concern: data, training, compression, dependability.

Used by the pipeline's stages and the model server. Modules here import nothing heavy at package level, so
the predictor image (no torch) can ship the parts it needs.
"""

import os

# The library runs offline and must not phone home: albumentations asks PyPI for a newer version on import
# and great-expectations sends usage statistics unless told not to.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
