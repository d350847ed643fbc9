"""An on-disk cache of frozen encodings for generation: each prompt's text-encoder states and each
conditioning image's VAE latents, keyed by a hash of the content and a hash of the encoder's weights,
so they are reused across calls and processes and a changed encoder never hits.

    pipe.enable_encoding_cache("~/.cache/ltx-train/encodings", max_gib=2)   # or ltx-generate encoding_cache=<dir>
    clips = pipe(prompts)            # encodes and stores; the next call with the same prompts reads them
    pipe.encoding_cache.stats()      # {"hits": ..., "misses": ..., "files": ..., "bytes": ...}

Entries are safetensors files written atomically. Past ``max_bytes`` the least recently used entries are
deleted (a hit refreshes an entry's time). An encoder's weight hash is computed once per loaded module.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from ltx_train.pretrained import weights_sha256


def module_hash(module: nn.Module) -> str:
    """``pretrained.weights_sha256`` of a module, computed once per module."""
    cached = getattr(module, "_ltx_weights_hash", None)
    if cached is None:
        cached = weights_sha256(module)
        object.__setattr__(module, "_ltx_weights_hash", cached)
    return cached


def tensor_digest(t: torch.Tensor) -> bytes:
    t = t.detach().cpu().contiguous()
    return f"{t.dtype}|{tuple(t.shape)}|".encode() + t.view(torch.uint8).numpy().tobytes()


class EncodingCache:
    def __init__(self, directory: str | Path, max_bytes: int = 2**30):
        if max_bytes <= 0:
            raise ValueError(f"encoding cache: max_bytes must be > 0, got {max_bytes}")
        self.dir = Path(directory).expanduser()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = int(max_bytes)
        self.hits = self.misses = 0

    @staticmethod
    def key(kind: str, model_hash: str, content: bytes) -> str:
        return hashlib.sha256(kind.encode() + b"\0" + model_hash.encode() + b"\0" + content).hexdigest()

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.safetensors"

    def get(self, key: str) -> dict[str, torch.Tensor] | None:
        path = self._path(key)
        try:
            tensors = load_file(str(path))
        except (FileNotFoundError, OSError, ValueError):   # absent, or cut short / foreign: a miss
            self.misses += 1
            return None
        os.utime(path)                                       # least recently used goes first
        self.hits += 1
        return tensors

    def put(self, key: str, tensors: dict[str, torch.Tensor]) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
        tmp.replace(path)
        self._evict(keep=path)

    def _entries(self) -> list[tuple[float, int, Path]]:
        out = []
        for p in self.dir.glob("*/*.safetensors"):
            try:
                st = p.stat()
            except FileNotFoundError:    # evicted by another process meanwhile
                continue
            out.append((st.st_mtime_ns, st.st_size, p))
        return out

    def _evict(self, keep: Path | None = None) -> None:
        """Delete the least recently used entries until the total fits (never ``keep``, the one just written)."""
        entries = sorted(self._entries(), key=lambda e: e[0])
        total = sum(size for _, size, _ in entries)
        for _, size, p in entries:
            if total <= self.max_bytes:
                break
            if p == keep:
                continue
            p.unlink(missing_ok=True)
            total -= size

    def stats(self) -> dict:
        entries = self._entries()
        return {"hits": self.hits, "misses": self.misses, "files": len(entries),
                "bytes": sum(size for _, size, _ in entries), "max_bytes": self.max_bytes, "dir": str(self.dir)}
