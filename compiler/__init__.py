"""autodl compiler: project specs in, DVC pipelines and manifests out.

Pure and fast by design: nothing here imports torch, lightning or DVC, so
`autodl compile` runs in well under a second and can gate every pull request.
"""
