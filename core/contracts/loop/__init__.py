"""Contracts of the data loop's stages (ensemble, select); a task extends them with what its own loop reads."""
