"""A local cluster for sweeps that outgrow one machine: PostgreSQL, the MLflow tracking
server, a Prefect server with a work pool of K process workers, and a DVC remote, all on
127.0.0.1 (`local.py`); `python -m pipelines.cluster up|down|sweep|demo` (`__main__.py`),
`make cluster-up|cluster-down|cluster-demo`. The sweep itself is `pipelines.sweep_flows`.
"""
