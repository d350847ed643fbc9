"""``ltx-shards cache``: run the frozen encoders once over a dataset and write latent shards.

    ltx-shards cache --shards data/shards/synthetic --pretrained assets/pretrained/ltx-mini-synth \\
        --out data/latents/synthetic --device cuda --workers 4
    ltx-shards cache --synthetic 4096 --val 32 --pretrained <dir> --out <dir>   # the world, rendered here

Training from the cache (``data=latents data.path=<out>``) loads no VAE and no text encoder: a DiT
step is the DiT's work alone. What a cache directory holds::

    manifest.json                 format, encoders (class, config, weights hash, where they came from),
                                  the shapes they give, the clip settings, splits -> shards, skipped counts
    empty_text.safetensors        the text encoder's states of "" (the unconditional caption of CFG)
    train-000000.safetensors      one file per source shard (or per block of rendered seeds)
    val-000000.safetensors

A shard file holds, for its N samples (float tensors in ``--dtype``, float16 by default)::

    video_params (N, 2*Cv, Tv, Hv, Wv)  the VAE posterior: mean and log-variance stacked on dim 1
    audio_params (N, 2*Ca, Ta)          the audio VAE posterior, likewise
    text_hidden  (sum L_i, layers, D)   every hidden state of the encoder (what the connector reads),
    text_offsets (N + 1,) int64         for the L_i real tokens of each caption, packed
    first_frame  (N, 3, H, W) uint8     each clip's first frame (image tokens of image-to-video training)
    fps audio_mask ann_mask gravity light centers velocities obj_mask contacts   (N, ...) labels
and, in its metadata, the keys, captions and source URLs as JSON. Clips are decoded centred (the
validation decode): the cache fixes one crop per clip, as precomputed-latent trainers do.

Bad samples are skipped, warned about and counted per kind (in the shard's metadata and the
manifest). A shard already written for the same source and encoders is not redone, so an
interrupted run continues where it stopped. Files are written under a temporary name and renamed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn as nn
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Dataset, default_collate

from ltx_train.audio.mel import LogMel, MelConfig
from ltx_train.config import ConfigError
from ltx_train.pretrained import weights_sha256

FORMAT = "ltx-latents/1"
MANIFEST = "manifest.json"
EMPTY_TEXT = "empty_text.safetensors"
LABELS = ("fps", "audio_mask", "ann_mask", "gravity", "light", "centers", "velocities", "obj_mask", "contacts")
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
log = logging.getLogger("ltx_train.data.latent_cache")


class LatentCacheError(ConfigError):
    """A latent cache that is missing, damaged or made by other encoders than the model's."""


# ---------------------------------------------------------------------------------------- encoders
@dataclasses.dataclass
class Encoders:
    """The frozen encoders of a cache and where they came from (recorded in the manifest)."""
    vae: nn.Module
    audio_vae: nn.Module
    text_encoder: nn.Module      # FrozenTextEncoder
    sources: dict                # {"vae": {"kind": "pretrained"|"checkpoint", "path": ...}, "audio_vae": ..., "text_encoder": ...}

    def to(self, device) -> "Encoders":
        for m in (self.vae, self.audio_vae, self.text_encoder):
            m.to(device).eval()
        return self

    def record(self) -> dict:
        from ltx_train.pretrained import config_of
        te = self.text_encoder
        rec = {name: {**self.sources[name], "class": type(m).__name__, "config": config_of(m),
                      "sha256": weights_sha256(m)}
               for name, m in (("vae", self.vae), ("audio_vae", self.audio_vae))}
        rec["text_encoder"] = {**self.sources["text_encoder"], "max_length": te.max_length,
                               "hidden_size": te.hidden_size, "num_hidden_states": te.num_hidden_states,
                               "sha256": weights_sha256(te.model)}
        return rec


def encoder_shapes(vae: nn.Module, audio_vae: nn.Module, hidden_size: int, layers: int, max_length: int) -> dict:
    """What the encoders fix in the model's architecture (compared when a model meets a cache)."""
    return {"video_channels": vae.config.latent_channels, "temporal_compression": vae.temporal_compression,
            "spatial_compression": vae.spatial_compression, "audio_channels": audio_vae.cfg.latent_channels,
            "audio_compression": audio_vae.cfg.time_compression, "n_mels": audio_vae.cfg.n_mels,
            "text_dim": hidden_size, "text_layers": layers, "max_length": max_length}


def load_encoders(pretrained: str | None = None, vae_checkpoint: str | None = None,
                  audio_vae_checkpoint: str | None = None, text_encoder: str | None = None,
                  max_length: int | None = None) -> Encoders:
    """The encoders from a pretrained directory, or from VAE / audio-VAE training checkpoints and a
    text-encoder folder (None: the packaged MiniLM). ``text_encoder`` overrides the directory's."""
    from ltx_train.models.text.encoder import FrozenTextEncoder
    from ltx_train.pretrained import component_from_checkpoint, load_component

    sources: dict = {}
    if pretrained:
        from ltx_train.pipeline import read_model_index, text_encoder_reference
        index = read_model_index(pretrained)
        vae = load_component(pretrained, "vae", expect="VideoVAE")
        audio_vae = load_component(pretrained, "audio_vae", expect="AudioVAE")
        te_path, te_len = text_encoder_reference(pretrained, index)
        sources = {k: {"kind": "pretrained", "path": str(Path(pretrained).resolve())} for k in ("vae", "audio_vae")}
    elif vae_checkpoint and audio_vae_checkpoint:
        vae = component_from_checkpoint(vae_checkpoint, "vae")
        audio_vae = component_from_checkpoint(audio_vae_checkpoint, "audio_vae")
        te_path, te_len = None, 64
        sources = {"vae": {"kind": "checkpoint", "path": str(Path(vae_checkpoint).resolve())},
                   "audio_vae": {"kind": "checkpoint", "path": str(Path(audio_vae_checkpoint).resolve())}}
    else:
        raise ConfigError("give --pretrained <dir>, or --vae-checkpoint and --audio-vae-checkpoint")
    te_path = text_encoder or te_path
    te = FrozenTextEncoder(path=te_path, max_length=max_length or te_len, cache_size=0)
    sources["text_encoder"] = {"path": te_path}
    return Encoders(vae.eval(), audio_vae.eval(), te, sources)


def encoders_from_record(record: dict, check_hash: bool = True) -> tuple[nn.Module, nn.Module]:
    """The video and audio VAE a manifest (or a checkpoint's ``latent_cache``) names, re-loaded from
    where they came from; their weights are checked against the recorded hashes."""
    from ltx_train.pretrained import component_from_checkpoint, load_component
    out = []
    for name in ("vae", "audio_vae"):
        rec = record[name]
        path = rec["path"]
        if not Path(path).exists():
            raise LatentCacheError(f"the latent cache's {name} came from {path}, which does not exist here")
        m = (load_component(path, name) if rec["kind"] == "pretrained" else component_from_checkpoint(path, name))
        if check_hash and weights_sha256(m) != rec["sha256"]:
            raise LatentCacheError(f"{name} at {path} is not the one the latent cache was made with "
                                   f"(weights hash {weights_sha256(m)[:12]} != {rec['sha256'][:12]})")
        out.append(m.eval())
    return out[0], out[1]


# ---------------------------------------------------------------------------------------- sources
class _Units(Dataset):
    """Work units of one split (a source shard, or a block of rendered seeds): item u -> its clips."""

    def __init__(self, split: str, units: list, clip: dict, synth=None):
        self.split, self.units, self.clip, self.synth = split, units, clip, synth

    def __len__(self) -> int:
        return len(self.units)

    def name(self, u: int) -> str:
        unit = self.units[u]
        return unit if isinstance(unit, str) else f"synthetic seeds {unit[0]}..{unit[1] - 1}"

    def __getitem__(self, u: int) -> tuple[dict | None, list[dict]]:
        """(the unit's decoded clips collated into one batch, or None; skipped: [{"kind", "key", "error"}]).
        Collated, a unit crosses from a worker as a few large tensors (not thousands of small ones,
        each of which would hold a file descriptor)."""
        samples, skipped = self._samples(u)
        return (default_collate(samples) if samples else None), skipped

    def _samples(self, u: int) -> tuple[list[dict], list[dict]]:
        torch.set_num_threads(1)
        mel = LogMel(MelConfig(**self.clip["mel"]))
        unit = self.units[u]
        if not isinstance(unit, str):
            from ltx_train.data.live_stream import render_sample
            return [render_sample(s, self.synth, mel, self.clip["max_objects"], f"live://synthetic/{self.split}")
                    for s in range(*unit)], []
        import webdataset as wds
        from ltx_train.data.badsamples import classify
        from ltx_train.data.decode import DECODE_ERRORS, ClipConfig, decode_sample
        cfg = ClipConfig(self.clip["num_frames"], self.clip["fps"], self.clip["height"], self.clip["width"],
                         self.clip["mel"]["sample_rate"], self.clip["max_objects"], 1)
        samples, skipped = [], []
        try:
            for raw in wds.DataPipeline(lambda: iter([dict(url=unit)]), wds.tarfile_to_samples()):
                try:
                    samples.append(decode_sample(raw, cfg, mel, None))
                except DECODE_ERRORS as exn:
                    skipped.append({"kind": classify(exn), "key": raw.get("__key__"), "error": f"{type(exn).__name__}: {exn}"})
        except Exception as exn:  # a truncated tar: keep what was read, count the shard
            skipped.append({"kind": "unreadable_shard", "key": None, "error": f"{type(exn).__name__}: {exn}"})
        return samples, skipped


def _identity(x):
    return x


# ---------------------------------------------------------------------------------------- writing
def _pack_text(hidden: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """(B, L, layers, D) + (B, L) -> the real tokens of each caption, packed, and their counts."""
    lengths = mask.sum(1).tolist()
    return torch.cat([h[:n] for h, n in zip(hidden, lengths)]), lengths


@torch.no_grad()
def encode_samples(batch: dict, enc: Encoders, batch_size: int, dtype: torch.dtype,
                   device: torch.device) -> dict[str, torch.Tensor]:
    """A unit's decoded clips (collated) -> the tensors of one shard file (see the module docstring)."""
    parts: dict[str, list[torch.Tensor]] = {"video_params": [], "audio_params": [], "text_hidden": []}
    lengths: list[int] = []
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else None
    for i in range(0, len(batch["key"]), batch_size):
        video = batch["video"][i:i + batch_size].to(device)
        mel = batch["mel"][i:i + batch_size].to(device)
        if autocast is not None:
            with autocast:
                v, a = enc.vae.encode_params(video), enc.audio_vae.encode(mel)
        else:
            v, a = enc.vae.encode_params(video), enc.audio_vae.encode(mel)
        parts["video_params"].append(v.float().cpu().to(dtype))
        parts["audio_params"].append(torch.cat([a.mean, a.logvar], 1).float().cpu().to(dtype))
        hidden, mask = enc.text_encoder.encode(list(batch["caption"][i:i + batch_size]))
        packed, n = _pack_text(hidden.cpu(), mask.cpu())
        parts["text_hidden"].append(packed.to(dtype))
        lengths += n
    out = {k: torch.cat(v) for k, v in parts.items()}
    out["text_offsets"] = torch.tensor(np.concatenate([[0], np.cumsum(lengths)]), dtype=torch.int64)
    out["first_frame"] = ((batch["video"][:, :, 0].float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    for k in LABELS:
        out[k] = batch[k]
    return out


def _save_atomic(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    from ltx_train.modules.checkpointing import atomic_replace

    def write(tmp: Path) -> None:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
        os.chmod(tmp, 0o644)  # safetensors creates files readable by their owner alone
    atomic_replace(path, write)


def _write_json_atomic(path: Path, obj) -> None:
    from ltx_train.modules.checkpointing import atomic_replace
    atomic_replace(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=1) + "\n"))


def shard_metadata(path: Path) -> dict | None:
    """The metadata of a complete shard file (None when missing or unreadable)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata()
    except Exception:  # noqa: BLE001 - a torn or foreign file is redone
        return None


def build_cache(out: str | Path, splits: dict[str, _Units], enc: Encoders, *, clip: dict, source: dict,
                batch_size: int = 16, workers: int = 0, device: str = "cpu", dtype: str = "float16",
                progress: bool = True) -> dict:
    """Encode every unit of every split into ``out``; returns the manifest (also written)."""
    from tqdm.auto import tqdm

    if dtype not in DTYPES:
        raise ConfigError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    out, dev = Path(out), torch.device(device)
    out.mkdir(parents=True, exist_ok=True)
    enc.to(dev)
    te = enc.text_encoder
    record = enc.record()
    shapes = encoder_shapes(enc.vae, enc.audio_vae, te.hidden_size, te.num_hidden_states, te.max_length)
    if shapes["n_mels"] != clip["mel"]["n_mels"]:
        raise ConfigError(f"the audio VAE reads {shapes['n_mels']} mel bins, the clips have {clip['mel']['n_mels']}")
    stamp = hashlib.sha256(json.dumps([record, clip, dtype, "first_frames"], sort_keys=True, default=str).encode()).hexdigest()[:16]
    hidden, mask = te.encode([""])
    packed, _ = _pack_text(hidden.cpu(), mask.cpu())
    _save_atomic({"text_hidden": packed.to(DTYPES[dtype])}, out / EMPTY_TEXT, {"format": FORMAT, "stamp": stamp})

    manifest = {"format": FORMAT, "stamp": stamp, "dtype": dtype, "encoders": record, "shapes": shapes,
                "clip": clip, "source": source, "first_frames": True, "splits": {}}
    total_units = sum(len(u) for u in splits.values())
    bar = tqdm(total=total_units, desc="ltx-shards cache", unit="shard", disable=not progress, dynamic_ncols=True)
    t0, clips = time.perf_counter(), 0
    for split, units in splits.items():
        entries: list[dict | None] = [None] * len(units)
        todo = []
        for u in range(len(units)):
            path = out / f"{split}-{u:06d}.safetensors"
            meta = shard_metadata(path)
            if meta is not None and meta.get("stamp") == stamp and meta.get("source") == units.name(u):
                entries[u] = {"file": path.name, "num_samples": int(meta["num_samples"]),
                              "skipped": json.loads(meta["skipped"]), "source": units.name(u)}
                bar.update(1)  # written by an earlier run: not redone
            else:
                todo.append(u)
        loader = DataLoader(torch.utils.data.Subset(units, todo), batch_size=None, num_workers=workers,
                            collate_fn=_identity, prefetch_factor=2 if workers else None)
        for u, (batch, skipped) in zip(todo, loader):
            name = units.name(u)
            for s in skipped:
                warnings.warn(f"ltx-shards cache: skipped {s['kind']} sample {s['key']!r} of {name}: {s['error']}")
            kinds = dict(Counter(s["kind"] for s in skipped))
            path = out / f"{split}-{u:06d}.safetensors"
            n = len(batch["key"]) if batch is not None else 0
            if n:
                tensors = encode_samples(batch, enc, batch_size, DTYPES[dtype], dev)
                meta = {"format": FORMAT, "stamp": stamp, "source": name, "num_samples": str(n),
                        "skipped": json.dumps(kinds), "keys": json.dumps(list(batch["key"])),
                        "captions": json.dumps(list(batch["caption"])), "urls": json.dumps(list(batch["url"]))}
                _save_atomic(tensors, path, meta)
            entries[u] = {"file": path.name if n else None, "num_samples": n, "skipped": kinds, "source": name}
            clips += n
            bar.update(1)
            bar.set_postfix(clips=clips, clips_per_s=f"{clips / (time.perf_counter() - t0):.1f}")
        kept = [e for e in entries if e is not None and e["num_samples"]]
        skipped_total = Counter()
        for e in entries:
            skipped_total.update(e["skipped"])
        manifest["splits"][split] = {"shards": kept, "num_samples": sum(e["num_samples"] for e in kept),
                                     "skipped": dict(skipped_total)}
    bar.close()
    _write_json_atomic(out / MANIFEST, manifest)
    return manifest


def synthetic_units(num: int, first_seed: int, shard_size: int) -> list[tuple[int, int]]:
    return [(first_seed + i, first_seed + min(i + shard_size, num)) for i in range(0, num, shard_size)]


def read_manifest(path: str | Path) -> dict:
    """The manifest of a latent cache directory, checked."""
    file = Path(path) / MANIFEST
    if not file.is_file():
        raise LatentCacheError(f"{file}: no such file ({path} is not a latent cache; write one with "
                               "`ltx-shards cache`)")
    try:
        manifest = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise LatentCacheError(f"{file}: not valid JSON ({e})") from e
    if manifest.get("format") != FORMAT:
        raise LatentCacheError(f"{file}: format {manifest.get('format')!r}, this reader knows {FORMAT!r}")
    for key in ("encoders", "shapes", "clip", "splits"):
        if key not in manifest:
            raise LatentCacheError(f"{file}: missing key {key!r}")
    return manifest


def iter_shard_paths(path: str | Path, split: str) -> Iterator[tuple[Path, int]]:
    manifest = read_manifest(path)
    if split not in manifest["splits"]:
        raise LatentCacheError(f"{Path(path) / MANIFEST}: no split {split!r} (has {', '.join(manifest['splits'])})")
    for e in manifest["splits"][split]["shards"]:
        yield Path(path) / e["file"], int(e["num_samples"])
