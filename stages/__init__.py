"""Pipeline stages: one thin module per stage (a core function from the vision library plus a CLI), and the
runtime they share (stages.runtime). The contract each keeps is in core.registry."""
