"""pipelines: the plumbing around seqgan_core (DVC stages, validation, tracking, flows, CLI).

Dependencies point one way: pipelines -> seqgan_core. Heavy libraries (mlflow,
great_expectations, prefect) are imported inside the functions that use them, so
the CLI and the stages start fast.
"""


def _require_virtualenv() -> None:
    """Stop with the fix when run by a Python that lacks the project's packages.

    DVC runs each stage as `python -m pipelines.stages.<name>` with whatever `python` is
    first on PATH; outside the project's virtualenv that one usually has no torch, and the
    stage would die on a bare ModuleNotFoundError deep in an import.
    """
    import importlib.util
    import sys

    missing = [name for name in ("torch", "pydantic", "yaml") if importlib.util.find_spec(name) is None]
    if missing:
        raise SystemExit(
            f"error: {sys.executable} has no {', '.join(missing)}: it is not the project's virtualenv. "
            "Run `make run` (which puts .venv/bin first on PATH), or `source .venv/bin/activate` before "
            "calling `dvc repro` yourself; `make setup` builds .venv."
        )


_require_virtualenv()
