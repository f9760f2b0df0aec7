"""A detect-then-classify cascade measured end to end: the deployable detector and classifier run through the
runtime's one cascade function (the server's), their answers scored as a detector of the fine classes."""
