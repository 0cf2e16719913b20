"""`seqgan sweep`: run the comparison sweep (comparison/dvc.yaml) with progress, optionally
widened first (`--methods all --seeds 5`, the switch to every method over five seeds).

The widening rewrites only the `comparison:` section of params.yaml (comments kept),
validated before anything is written; DVC then re-runs only the new cells and the report.
"""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from seqgan_core.methods import METHODS as METHOD_TABLE

from .config import PARAMS_FILE, ParamsError, load_params, parse_params, _read_yaml

_STAGE_LINE = re.compile(r"^(Running stage|Stage) '([^']+)'")


def parse_methods(text: str, generator_kind: str) -> list[str]:
    """"all" = every method that trains ``generator_kind`` (the params' generator.kind); or a list."""
    if text == "all":
        return [name for name, cls in METHOD_TABLE.items() if generator_kind in cls.generator_kinds]
    return [m.strip() for m in text.split(",") if m.strip()]


def parse_seeds(text: str) -> list[int]:
    """"5" = seeds 0-4; "0,3,7" = those seeds."""
    try:
        return list(range(int(text))) if "," not in text else [int(s) for s in text.split(",")]
    except ValueError:
        raise ParamsError(f"--seeds {text!r}: give a count (5) or a list of seeds (0,3,7)") from None


def widen_from_args(methods: str | None, seeds: str | None, path: Path = PARAMS_FILE) -> None:
    """`widen` from the command line's --methods / --seeds texts (`seqgan sweep`, the
    cluster's sweep); "all" reads params' generator.kind."""
    if methods or seeds:
        widen(parse_methods(methods, load_params(path).generator.kind) if methods else None,
              parse_seeds(seeds) if seeds else None, path)


def widen(methods: list[str] | None, seeds: list[int] | None, path: Path = PARAMS_FILE) -> None:
    """Set `comparison.methods` / `comparison.seeds` in params.yaml (MLE added if missing:
    every method is read against it)."""
    text = path.read_text(encoding="utf-8")
    start = text.index("\ncomparison:")
    section = text[start:]
    if methods is not None:
        methods = methods if "mle" in methods else ["mle", *methods]
        section = re.sub(r"\n  methods: [^\n]*", f"\n  methods: [{', '.join(methods)}]", section, count=1)
    if seeds is not None:
        section = re.sub(r"\n  seeds: [^\n]*", f"\n  seeds: [{', '.join(map(str, seeds))}]", section, count=1)
    new = text[:start] + section
    comparison = parse_params(_read_yaml(new, str(path)), f"{path} with the sweep's settings").comparison
    for key, wanted, got in (("methods", methods, comparison.methods), ("seeds", seeds, comparison.seeds)):
        if wanted is not None and got != wanted:  # the line was not found: e.g. a block-style list
            raise ParamsError(f"could not set comparison.{key} in {path}: write it on one line as a flow list, "
                              f"e.g. `  {key}: [{', '.join(map(str, wanted))}]`")
    path.write_text(new, encoding="utf-8")


def run(dvc: str) -> int:
    """`dvc repro comparison/dvc.yaml`, its output passed through, with a progress line for
    every stage DVC reaches (ran or unchanged), the elapsed time and a rough remaining time."""
    from .stage_graph import load_stage_graph

    total = len(load_stage_graph(pipeline="comparison"))
    done, ran, start = 0, 0, time.monotonic()
    proc = subprocess.Popen([dvc, "repro", "comparison/dvc.yaml"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    for line in proc.stdout:
        sys.stdout.write(line)
        found = _STAGE_LINE.match(line)
        if found:
            done += 1
            ran += found.group(1) == "Running stage"
            elapsed = time.monotonic() - start
            eta = f", about {elapsed / ran * (total - done) / 60:.0f} min left" if ran and done < total else ""
            print(f"[sweep {done}/{total}] {found.group(2)} ({'running' if found.group(1) == 'Running stage' else 'unchanged'}); "
                  f"{elapsed / 60:.1f} min so far{eta}", flush=True)
    return proc.wait()
