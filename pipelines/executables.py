"""The project's command-line tools (dvc, mlflow), from this Python's environment first: a
flow, a worker or `seqgan` run without activating the venv still calls the venv's tools."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path


def executable(name: str) -> str:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else (shutil.which(name) or name)
