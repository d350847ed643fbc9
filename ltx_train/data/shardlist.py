"""Turn a shard spec into a checked list of shard URLs, and count samples per shard.

A spec is any of
- a brace pattern ``data/shards/synthetic/train-{000000..000003}.tar`` (every expanded file must exist),
- a glob ``data/shards/synthetic/train-*.tar`` (must match at least one file),
- a dataset directory (``data/shards/synthetic``) plus a split name, resolved through its
  ``manifest.json`` or, without one, the glob ``<split>-*.tar``,
- a remote URL or ``pipe:`` command WebDataset can open (brace-expanded, not checked),
- a list of the above.
A spec that resolves to nothing raises ``FileNotFoundError`` naming the spec, at construction time.
``check_shard`` says, reading two blocks, why a local shard cannot be read in full (missing, not a
tar, truncated); counting samples without a manifest names a shard it cannot read.
"""
from __future__ import annotations

import glob
import json
import tarfile
from pathlib import Path

from webdataset.shardlists import expand_urls
from webdataset.tariterators import base_plus_ext

_GLOB_CHARS = set("*?[")


def is_remote(url: str) -> bool:
    return url.startswith("pipe:") or ("://" in url and not url.startswith("file://"))


def _manifest_entries(directory: Path, split: str) -> list[tuple[str, int | None]] | None:
    """[(shard path, sample count or None)] of ``split`` in ``directory/manifest.json``, or None."""
    path = directory / "manifest.json"
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text())
    entries = manifest.get(split)
    for section in ("splits", "shards"):
        if entries is None and isinstance(manifest.get(section), dict):
            entries = manifest[section].get(split)
    if isinstance(entries, dict):  # {"shards": [...]} per split
        entries = entries.get("shards", entries.get("files"))
    if not isinstance(entries, list):
        return None
    out = []
    for e in entries:
        if isinstance(e, str):
            name, count = e, None
        else:
            name = next(e[k] for k in ("file", "path", "name", "url", "shard") if k in e)
            count = next((int(e[k]) for k in ("count", "samples", "num_samples", "n") if k in e), None)
        p = Path(name)
        out.append((str(p if p.is_absolute() else directory / p), count))
    return out


def resolve_shards(spec: str | list[str], split: str) -> list[str]:
    """Shard spec -> non-empty list of URLs (local ones checked to exist); see the module docstring."""
    if not isinstance(spec, str):
        specs = list(spec)
        if not specs:
            raise FileNotFoundError(f"empty shard list for split {split!r}")
        return [u for s in specs for u in resolve_shards(str(s), split)]
    if is_remote(spec):
        return expand_urls(spec)
    path = Path(spec.removeprefix("file://")).expanduser()
    if path.is_dir():
        entries = _manifest_entries(path, split)
        urls = [p for p, _ in entries] if entries is not None else sorted(glob.glob(str(path / f"{split}-*.tar")))
        if not urls:
            raise FileNotFoundError(f"shard directory {spec!r} has no {split!r} shards "
                                    f"(no manifest.json entry and no {split}-*.tar)")
        missing = [u for u in urls if not Path(u).is_file()]
    else:
        urls, missing = [], []
        for u in expand_urls(str(path)):
            if _GLOB_CHARS & set(u):
                urls += sorted(glob.glob(u))
            elif Path(u).is_file():
                urls.append(u)
            else:
                missing.append(u)
        if not urls:
            raise FileNotFoundError(f"shard pattern {spec!r} matches no files")
    if missing:
        raise FileNotFoundError(f"shard pattern {spec!r}: {len(missing)} shard(s) missing, e.g. {missing[:3]}")
    return urls


_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ")  # gzip, bzip2, xz: only a full read can check these


def check_shard(url: str) -> str | None:
    """Why the local shard ``url`` cannot be read in full, or None if it looks whole.

    Cheap enough for every shard at setup: the first 512-byte header must be a tar header (its checksum),
    and a whole tar is a number of 512-byte blocks ending in the zero blocks of the end-of-archive marker.
    """
    path = Path(url.removeprefix("file://"))
    if not path.is_file():
        return "missing file" if not path.exists() else "not a regular file"
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(tarfile.BLOCKSIZE)
        if any(head.startswith(m) for m in _COMPRESSED):
            return None
        if size == 0:
            return "empty file (not a tar)"
        if head.strip(b"\0"):  # an all-zero first block is an empty archive, nothing to check
            try:
                tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
            except tarfile.HeaderError as e:
                return f"not a tar file (first block: {e})"
        if size % tarfile.BLOCKSIZE:
            return f"truncated tar ({size} bytes is not a whole number of 512-byte blocks)"
        f.seek(max(size - 2 * tarfile.BLOCKSIZE, 0))
        if f.read().strip(b"\0"):
            return "truncated tar (no end-of-archive marker)"
    return None


def _count_tar(url: str) -> int:
    """Samples (distinct keys) in a local tar from its headers; a damaged tar counts up to the damage."""
    keys: set = set()
    try:
        with tarfile.open(url) as tar:  # headers only: the reader seeks over member data
            for member in tar:
                keys.add(base_plus_ext(member.name)[0])
    except (tarfile.TarError, OSError, EOFError) as e:
        with open(url, "rb") as f:
            empty_archive = not f.read(tarfile.BLOCKSIZE).strip(b"\0")  # tarfile refuses it; it holds 0
        if not keys and not empty_archive:
            raise ValueError(f"shard {url} is not a readable tar file: {e}") from e
    return len(keys - {None})


def _manifest_counts(directory: Path) -> dict[str, int]:
    """{resolved shard path: sample count} for every split listed in ``directory/manifest.json``."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    splits = manifest.get("splits", manifest) if isinstance(manifest, dict) else {}
    return {str(Path(p).resolve()): c for split in (splits if isinstance(splits, dict) else [])
            for p, c in (_manifest_entries(directory, split) or []) if c is not None}


def count_samples(urls: list[str]) -> int | None:
    """Total samples in local shards (manifest counts where listed, else tar headers); None if remote."""
    if any(is_remote(u) for u in urls):
        return None
    known: dict[str, int] = {}
    for d in {Path(u).resolve().parent for u in urls}:
        known.update(_manifest_counts(d))
    total = 0
    for u in urls:
        r = str(Path(u).resolve())
        if r not in known:
            known[r] = _count_tar(u)
        total += known[r]
    return total
