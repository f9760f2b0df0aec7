"""The small core that the compiler and the stages both build on: the spec language, the stage contract and
registry, hardware profiles, content addresses and atomic file writes. No ML imports, and nothing from
`compiler/`, `stages/` or `ops/`."""
