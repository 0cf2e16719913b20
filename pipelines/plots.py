"""Training curves as CSV (for `dvc plots`) and PNG (DVC's HTML needs a CDN; PNG does not)."""
from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from .files import atomic_write, require, write_text


def write_csv(path: Path, rows: Sequence[Mapping[str, float | int | str]]) -> None:
    fields = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def read_csv(path: Path) -> list[dict[str, float]]:
    """Rows of a curve written by `write_csv`, as numbers; empty cells (a metric not
    evaluated at that step) are left out of the row."""
    with require(path).open() as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def plot_curves(
    path: Path,
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    hlines: Mapping[str, float] = {},
    vlines: Mapping[str, float] = {},
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, marker=".", label=label)
    for label, y in hlines.items():
        ax.axhline(y, linestyle="--", color="gray", linewidth=1)
        ax.annotate(f"{label} {y:.3f}", (0.01, y), xycoords=("axes fraction", "data"), va="bottom", fontsize=8)
    for label, x in vlines.items():
        ax.axvline(x, linestyle=":", color="black", linewidth=1)
        ax.annotate(label, (x, 0.98), xycoords=("data", "axes fraction"), va="top", ha="right", rotation=90, fontsize=8)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
