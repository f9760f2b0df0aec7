"""Pipeline stages: one module per stage, each a pure core function plus a thin CLI.

Importing this package (or `stages.registry`) must stay cheap: the compiler
reads the registry, and the compiler never imports torch.
"""

import os

# Stages run offline and must not phone home: albumentations asks PyPI for a newer version on import and
# great-expectations sends usage statistics unless told not to.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
