"""The `autodl` command: one entry point over the compiler (compile, impact, schema) and the operations beside
the pipeline (publish, report, doctor, captures)."""
