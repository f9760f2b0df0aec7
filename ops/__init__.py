"""Operational commands the CLI runs beside the pipeline: publishing promoted bundles, pull-request reports,
serving a project locally."""
