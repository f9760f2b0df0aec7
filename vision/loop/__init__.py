"""The data loop: the unlabelled pool, uncertainty, batch selection, Label Studio formats and annotators."""
