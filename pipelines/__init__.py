"""pipelines: the plumbing around seqgan_core (DVC stages, validation, tracking, flows, CLI).

Dependencies point one way: pipelines -> seqgan_core. Heavy libraries (mlflow,
great_expectations, prefect) are imported inside the functions that use them, so
the CLI and the stages start fast.
"""
