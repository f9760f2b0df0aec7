"""Pipeline stages: one module per stage, each a pure core function plus a thin CLI.

Importing this package (or `stages.registry`) must stay cheap: the compiler
reads the registry, and the compiler never imports torch.
"""
