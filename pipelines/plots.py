"""Training curves as CSV (for `dvc plots`) and PNG (DVC's HTML needs a CDN; PNG does not)."""
from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .files import atomic_write, reading, write_text


def write_csv(path: Path, rows: Sequence[Mapping[str, float | int | str]]) -> None:
    fields = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def _pyplot():
    """matplotlib's pyplot on the file-only backend (imported late: the CLI starts without it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(path: Path, fig, ax, *, title: str, xlabel: str, ylabel: str) -> None:
    """Label, grid and legend, then write the PNG atomically and free the figure."""
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    _pyplot().close(fig)


def read_csv(path: Path) -> list[dict[str, float]]:
    """Rows of a curve written by `write_csv`, as numbers; empty cells (a metric not
    evaluated at that step) are left out of the row."""
    with reading(path), path.open() as f:
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
    fig, ax = _pyplot().subplots(figsize=(7, 4.2), dpi=110)
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, marker=".", label=label)
    for label, y in hlines.items():
        ax.axhline(y, linestyle="--", color="gray", linewidth=1)
        ax.annotate(f"{label} {y:.3f}", (0.01, y), xycoords=("axes fraction", "data"), va="bottom", fontsize=8)
    for label, x in vlines.items():
        ax.axvline(x, linestyle=":", color="black", linewidth=1)
        ax.annotate(label, (x, 0.98), xycoords=("data", "axes fraction"), va="top", ha="right", rotation=90, fontsize=8)
    _finish(path, fig, ax, title=title, xlabel=xlabel, ylabel=ylabel)


@dataclass(frozen=True)
class FrontierCurve:
    """One method's temperature sweep, averaged over seeds: per temperature, the mean and
    sd of diversity (x) and quality (y)."""

    temperatures: Sequence[float]
    x: Sequence[float]
    y: Sequence[float]
    x_sd: Sequence[float]
    y_sd: Sequence[float]


def plot_frontier(path: Path, curves: Mapping[str, FrontierCurve], *, title: str, xlabel: str, ylabel: str,
                  star: tuple[float, float, str] | None = None) -> None:
    """Quality against diversity, one curve per method with its spread over seeds (error
    bars of one sd), temperature 1 circled, and the calibration point (the data scored
    the same way) as a star."""
    fig, ax = _pyplot().subplots(figsize=(7, 5), dpi=110)
    for label, c in curves.items():
        line = ax.errorbar(c.x, c.y, xerr=c.x_sd, yerr=c.y_sd, marker=".", capsize=2, label=label)
        at_one = [i for i, t in enumerate(c.temperatures) if t == 1.0]
        ax.scatter([c.x[i] for i in at_one], [c.y[i] for i in at_one], s=90, facecolors="none",
                   edgecolors=line[0].get_color(), linewidths=1.5)
        for i in (0, len(c.temperatures) - 1):
            ax.annotate(f"t={c.temperatures[i]:g}", (c.x[i], c.y[i]), fontsize=7, alpha=0.7)
    if star is not None:
        ax.scatter([star[0]], [star[1]], marker="*", s=220, color="black", zorder=5, label=star[2])
    ax.scatter([], [], s=90, facecolors="none", edgecolors="gray", label="temperature 1")
    _finish(path, fig, ax, title=title, xlabel=xlabel, ylabel=ylabel)
