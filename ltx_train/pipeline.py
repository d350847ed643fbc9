"""`LTXVideoPipeline`: text (+ first image) -> video + audio, from a pretrained directory.

    pipe = LTXVideoPipeline.from_pretrained("outputs/demo/pretrained")
    pipe.load_lora_weights("my-style-lora", adapter_name="style")       # peft adapters (LoraLoaderMixin)
    pipe.set_adapters(["style"], weights=[0.8])
    clips = pipe(["a red rubber ball falls and bounces"], seconds=1.0, fps=24, height=64, width=64)
    pipe.save(clips[0], "out.mp4")
    pipe.save_pretrained("my_model/")                                   # model_index.json + one folder per part

Components: ``vae`` (VideoVAE), ``audio_vae`` (AudioVAE), ``vocoder`` (HiFiGAN; None -> Griffin-Lim),
``text_encoder`` (FrozenTextEncoder), ``model`` (LTXModel). The layout on disk is described in
``ltx_train.pretrained``; the text encoder is stored by reference to its folder (None = the packaged
MiniLM) or copied into ``text_encoder/`` (``save_pretrained(..., copy_text_encoder=True)``).

Sampling: flow-matching Euler (or Heun) from pure noise at t = 1 to data at t = 0 over the
sequence-length-shifted schedule, with classifier-free guidance against the empty caption. A model
with an image encoder also reads the first frame's spatial features (image-to-video) and, with
``image_guidance_scale`` != 1, is guided on them too (one more model call per step):
``v = v(text, img) + (g - 1) (v(text, img) - v("", img)) + (g_img - 1) (v(text, img) - v(text, no img))``.
Video latents are decoded by the VAE (tiled when asked), audio latents by the audio VAE to a log-mel
and by the vocoder to a waveform.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ltx_train.audio.mel import LogMel, MelConfig
from ltx_train.diffusion.flow import get_sigmas
from ltx_train.diffusion.samplers import guided_model_fn, sample_euler, sample_heun
from ltx_train.eval.video_io import to_uint8_frames
from ltx_train.lora import LoraLoaderMixin
from ltx_train.models.audio.griffin_lim import griffin_lim
from ltx_train.models.text.encoder import FrozenTextEncoder
from ltx_train.placement import ComponentPlacement
from ltx_train.pretrained import PretrainedError, load_component, save_component
from ltx_train.timing import mel_frames_per_video_frame

log = logging.getLogger(__name__)

SAMPLERS = {"euler": sample_euler, "heun": sample_heun}
INDEX_NAME = "model_index.json"
COMPONENTS = {"vae": "VideoVAE", "audio_vae": "AudioVAE", "vocoder": "HiFiGAN", "model": "LTXModel"}


@dataclass
class GeneratedClip:
    prompt: str
    frames: np.ndarray       # (T, H, W, 3) uint8
    audio: np.ndarray        # (S,) float32 in [-1, 1]
    fps: float
    sample_rate: int


def read_model_index(path: str | Path) -> dict:
    path = Path(path)
    file = path / INDEX_NAME
    if not file.is_file():
        raise PretrainedError(f"{file}: no such file ({path} is not a pretrained directory; "
                              f"write one with ltx-export or save_pretrained)")
    try:
        index = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise PretrainedError(f"{file}: not valid JSON ({e})") from e
    for key in ("vae", "audio_vae", "model", "text_encoder"):
        if key not in index:
            raise PretrainedError(f"{file}: missing key {key!r}")
    return index


def text_encoder_reference(path: str | Path, index: dict) -> tuple[str | None, int]:
    """(encoder folder or None for the packaged MiniLM, max_length) of a pretrained directory."""
    te = index.get("text_encoder_config") or {}
    te_path = str(Path(path) / "text_encoder") if te.get("copied") else te.get("path")
    if te_path is not None and not Path(te_path).is_dir():
        raise PretrainedError(f"{Path(path) / INDEX_NAME}: text encoder folder {te_path} does not exist "
                              f"(save with copy_text_encoder=True to carry it inside the directory)")
    return te_path, int(te.get("max_length", 64))


class LTXVideoPipeline(ComponentPlacement, LoraLoaderMixin):
    def __init__(self, vae: nn.Module, audio_vae: nn.Module, model: nn.Module,
                 text_encoder: FrozenTextEncoder, vocoder: nn.Module | None = None):
        self.vae, self.audio_vae, self.model = vae.eval(), audio_vae.eval(), model.eval()
        self.vocoder = vocoder.eval() if vocoder is not None else None
        self.text_encoder = text_encoder
        self.encoding_cache = None       # enable_encoding_cache: prompts' and images' encodings on disk
        self.offload_device = None       # enable_model_cpu_offload: each part moved there only while it runs
        d = model.cfg.dit
        if d.video_channels != vae.config.latent_channels or d.audio_channels != audio_vae.cfg.latent_channels:
            raise PretrainedError(f"model expects {d.video_channels} video / {d.audio_channels} audio latent "
                                  f"channels; the VAEs give {vae.config.latent_channels} / "
                                  f"{audio_vae.cfg.latent_channels}")
        self.mel = LogMel(MelConfig(sample_rate=d.audio_sample_rate, hop_length=d.audio_hop_length,
                                    n_mels=audio_vae.cfg.n_mels)).to(self.device)

    # ------------------------------------------------------------------ files
    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu",
                        dtype: torch.dtype | None = None, quantize: str | None = None,
                        device_map: dict | None = None) -> LTXVideoPipeline:
        """Local files only: ``model_index.json`` + component folders (safetensors, never pickles).
        ``dtype`` casts the DiT model (e.g. ``torch.bfloat16`` on a GPU); the VAEs and vocoder stay fp32.
        ``quantize="int8"``: weight-only INT8 of the DiT and connector blocks (``ltx_train.quantize``).
        ``device_map``: a device per component (``place``); the parts it does not name go to ``device``."""
        path = Path(path)
        index = read_model_index(path)
        parts = {name: load_component(path / name, device=device, expect=cls_name)
                 for name, cls_name in COMPONENTS.items() if name != "vocoder"}
        if dtype is not None:
            parts["model"].to(dtype=dtype)
        vocoder = None
        if index.get("vocoder") and index["vocoder"][0] is not None:
            vocoder = load_component(path / "vocoder", device=device, expect="HiFiGAN")
        te_path, max_length = text_encoder_reference(path, index)
        encoder = FrozenTextEncoder(path=te_path, max_length=max_length, cache_size=256).to(device)
        pipe = cls(parts["vae"], parts["audio_vae"], parts["model"], encoder, vocoder)
        if quantize:
            pipe.quantize(quantize)
        if device_map:
            pipe.place(device_map)
        return pipe

    def quantize(self, mode: str = "int8") -> dict:
        """Quantize the model's DiT and connector blocks in place for inference (``ltx_train.quantize``);
        returns the layers converted and the weight bytes before and after."""
        from ltx_train.quantize import quantize_model
        report = quantize_model(self.model, mode)
        log.info("quantized %d linear layers to %s: model weights %.1f -> %.1f MiB", report["layers"], mode,
                 report["bytes_before"] / 2**20, report["bytes_after"] / 2**20)
        return report

    def save_pretrained(self, path: str | Path, dtype: torch.dtype | None = None,
                        copy_text_encoder: bool = False, model_state: dict | None = None) -> Path:
        """Write the pipeline as a pretrained directory. ``dtype`` (e.g. ``torch.bfloat16``) casts the
        model's parameters; ``model_state`` replaces the model's weights (e.g. EMA averages)."""
        if getattr(self.model, "peft_config", None):
            raise PretrainedError("save_pretrained: LoRA adapters are loaded; fuse_lora() then "
                                  "unload_lora_weights(keep_fused=True) to save a merged model, or "
                                  "unload_lora_weights() to save the base")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_component(self.vae, path / "vae")
        save_component(self.audio_vae, path / "audio_vae")
        save_component(self.model, path / "model", dtype=dtype, state=model_state)
        if self.vocoder is not None:
            save_component(self.vocoder, path / "vocoder")
        te_cfg = {"path": self.text_encoder.source_path, "copied": copy_text_encoder,
                  "max_length": self.text_encoder.max_length}
        if copy_text_encoder:
            self.text_encoder.save_pretrained(path / "text_encoder")
            te_cfg["path"] = None
        import ltx_train
        index = {"_class_name": "LTXVideoPipeline", "_ltx_train_version": ltx_train.__version__,
                 **{name: ["ltx_train", cls_name] for name, cls_name in COMPONENTS.items()},
                 "text_encoder": ["transformers", "AutoModel"], "text_encoder_config": te_cfg}
        if self.vocoder is None:
            index["vocoder"] = [None, None]
        (path / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
        return path

    # ------------------------------------------------------------------ sampling
    def num_frames(self, seconds: float, fps: float) -> int:
        """Closest frame count of the causal layout 1 + tc*k to ``seconds`` (at least 1 + tc)."""
        tc = self.vae.temporal_compression
        k = max(1, round((seconds * fps - 1) / tc))
        return 1 + tc * k

    def enable_encoding_cache(self, directory: str | Path, max_gib: float = 2.0):
        """Keep each prompt's text-encoder states and each conditioning image's VAE latents on disk,
        keyed by content and encoder weights (``ltx_train.encode_cache``); returns the cache."""
        from ltx_train.encode_cache import EncodingCache
        self.encoding_cache = EncodingCache(directory, max_bytes=int(max_gib * 2**30))
        return self.encoding_cache

    def text_states(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The frozen text encoder's states and mask for ``prompts`` on the DiT's device, through the
        encoding cache if enabled."""
        cache, te = self.encoding_cache, self.text_encoder
        if cache is None:
            with self._running("text_encoder"):
                hidden, mask = te.encode(list(prompts))
            return hidden.to(self.device), mask.to(self.device)
        from ltx_train.encode_cache import module_hash
        model_key = f"{module_hash(te.model)}|{te.source_path}|{te.max_length}"
        keys = {p: cache.key("text", model_key, p.encode("utf-8")) for p in dict.fromkeys(prompts)}
        found = {}
        for p, k in keys.items():
            t = cache.get(k)
            if t is not None:
                found[p] = (t["hidden"], t["mask"])
        missing = [p for p in keys if p not in found]
        if missing:
            with self._running("text_encoder"):
                hidden, mask = te.encode(missing)
            for p, h, m in zip(missing, hidden.cpu(), mask.cpu()):
                cache.put(keys[p], {"hidden": h, "mask": m})
                found[p] = (h, m)
        return (torch.stack([found[p][0] for p in prompts]).to(self.device),
                torch.stack([found[p][1] for p in prompts]).to(self.device))

    def _encode_image(self, kind: str, field: str, encoder: nn.Module, img: torch.Tensor, encode) -> torch.Tensor:
        """``encode()`` of the first frames ``img``, through the encoding cache if enabled (keyed by
        ``kind``, the encoder's weights and the pixels; stored under ``field``), on the DiT's device."""
        cache = self.encoding_cache
        if cache is None:
            return encode().to(self.device)
        from ltx_train.encode_cache import module_hash, tensor_digest
        key = cache.key(kind, module_hash(encoder), tensor_digest(img.float()))
        t = cache.get(key)
        if t is None:
            t = {field: encode()}
            cache.put(key, t)
        return t[field].to(self.device)

    def image_latents(self, img: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) first frames -> their VAE latents (N, C, 1, h, w), through the encoding cache if enabled."""
        def encode():
            with self._running("vae") as dev:
                return self.vae.encode(img.to(dev)[:, :, None]).mode()
        return self._encode_image("image", "latent", self.vae, img, encode)

    def image_features(self, img: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]] | None:
        """(N, 3, H, W) first frames -> the model's image tokens and grid (None: the model has no image
        encoder), through the encoding cache if enabled (keyed by the image encoder's weights)."""
        m = self.model
        if m.image_encoder is None:
            return None

        def encode():
            with self._running("model") as dev:
                return m.image_tokens(img.to(dev))[0]
        return (self._encode_image("image_features", "tokens", m.image_encoder, img, encode),
                m.image_grid(img.shape[-2], img.shape[-1]))

    def text_tokens(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        hidden, mask = self.text_states(list(prompts))
        return self.model.encode_text(hidden.to(self.device), mask.to(self.device))

    def check_settings(self, seconds: float, fps: float, height: int, width: int, steps: int,
                       guidance_scale: float, sampler: str, image_guidance_scale: float = 1.0) -> None:
        """Refuse impossible generation settings before any work, naming the setting."""
        sc = self.vae.spatial_compression
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {sorted(SAMPLERS)}, got {sampler!r}")
        for name, v in (("seconds", seconds), ("fps", fps)):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        for name, v in (("height", height), ("width", width)):
            if not isinstance(v, int) or isinstance(v, bool) or v < sc or v % sc:
                raise ValueError(f"{name} must be a positive multiple of the VAE's {sc}x spatial compression, "
                                 f"got {v!r}")
        for name, v in (("guidance_scale", guidance_scale), ("image_guidance_scale", image_guidance_scale)):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{name} must be a number >= 0, got {v!r}")

    @torch.no_grad()
    def __call__(self, prompts: str | list[str], seconds: float = 1.0, fps: float = 24.0,
                 height: int = 64, width: int = 64, steps: int = 30, guidance_scale: float = 3.0,
                 sampler: str = "euler", seed: int = 0, image: torch.Tensor | None = None,
                 negative_prompt: str = "", tile=None, batch_size: int | None = None,
                 progress: bool = False, image_guidance_scale: float = 1.0) -> list[GeneratedClip]:
        """image: optional first frame in [-1, 1] for image-to-video: (3, H, W) or (1, 3, H, W) for every
        prompt, or (B, 3, H, W) with image[i] the first frame of prompts[i]. The frame's latent is held
        fixed (t = 0, zero velocity) while the rest of the clip is sampled; a model with an image encoder
        also reads the frame's spatial features, and ``image_guidance_scale`` guides on them (1: not).

        ``batch_size``: sample at most this many prompts at a time (default: all at once). The noise of
        every prompt is drawn first, as one call draws it, so a clip does not depend on the batch it
        lands in (up to float rounding; Griffin-Lim, used without a vocoder, draws its phase per batch).
        ``progress``: a bar over the batches."""
        self.check_settings(seconds, fps, height, width, steps, guidance_scale, sampler, image_guidance_scale)
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts:
            raise ValueError("no prompts given")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                       or batch_size < 1):
            raise ValueError(f"batch_size must be an integer >= 1 or None, got {batch_size!r}")
        m, vae, avae, b = self.model, self.vae, self.audio_vae, len(prompts)
        d, sc = m.cfg.dit, vae.spatial_compression
        t = self.num_frames(seconds, fps)
        mel_frames = t * mel_frames_per_video_frame(d.audio_sample_rate, d.audio_hop_length, fps)
        ta = mel_frames // avae.cfg.time_compression
        tv = 1 + (t - 1) // vae.temporal_compression
        g = torch.Generator().manual_seed(seed)
        noise = {"video": torch.randn(b, d.video_channels, tv, height // sc, width // sc, generator=g),
                 "audio": torch.randn(b, d.audio_channels, ta, generator=g)}
        img = None
        if image is not None:
            img = image[None] if image.dim() == 3 else image
            if img.dim() != 4 or img.shape[0] not in (1, b) or tuple(img.shape[1:]) != (3, height, width):
                raise ValueError(f"image must be (3, {height}, {width}) or (B, 3, {height}, {width}) with B = 1 "
                                 f"(shared) or B = {b} (one first frame per prompt), got {tuple(image.shape)}")
        size = batch_size or b
        starts = range(0, b, size)
        if progress and len(starts) > 1:
            from tqdm.auto import tqdm
            starts = tqdm(starts, desc="ltx-generate", unit="batch", dynamic_ncols=True)
        clips = []
        for s0 in starts:
            s1 = min(b, s0 + size)
            part = None if img is None else (img if img.shape[0] == 1 else img[s0:s1])
            clips += self._sample(prompts[s0:s1], {k: v[s0:s1] for k, v in noise.items()}, part, fps=fps,
                                  mel_frames=mel_frames, steps=steps, guidance_scale=guidance_scale, sampler=sampler,
                                  seed=seed if s0 == 0 else seed + s0, negative_prompt=negative_prompt, tile=tile,
                                  image_guidance_scale=image_guidance_scale, size=(height, width))
        return clips

    def _sample(self, prompts: list[str], noise: dict, img: torch.Tensor | None, *, fps: float, mel_frames: int,
                steps: int, guidance_scale: float, sampler: str, seed: int, negative_prompt: str,
                tile, image_guidance_scale: float, size: tuple[int, int]) -> list[GeneratedClip]:
        """One batch: ``noise`` (the prompts' own draws), denoised, decoded, voiced."""
        m, vae, avae, b = self.model, self.vae, self.audio_vae, len(prompts)
        d = m.cfg.dit
        dtype = next(m.parameters()).dtype
        # the conditioning first (text encoder, VAE), then the DiT alone on its device, then the decoders
        text, mask = self.text_states(prompts)
        utext, umask = self.text_states([negative_prompt] * b)
        z0 = None if img is None else self.image_latents(img).expand(b, -1, -1, -1, -1)  # a shared frame: once
        image = None if img is None else self.image_features(img)
        if image is not None:
            image = (image[0].expand(b, -1, -1), image[1])
        with self._running("model"):
            x = self._denoise(prompts, noise, z0, text, mask, utext, umask, fps=fps, steps=steps,
                              guidance_scale=guidance_scale, sampler=sampler, dtype=dtype, image=image,
                              image_guidance_scale=image_guidance_scale, size=size)
            z_v, z_a = m.denormalize(x["video"], x["audio"])
        with self._running("vae") as vdev:
            video = vae.decode(z_v.float().to(vdev), tile=tile)                  # (B, 3, T, H, W)
        with self._running("audio_vae") as adev:
            log_mel = avae.decode(z_a.float().to(adev))                          # (B, n_mels, F)
        if self.vocoder is not None:
            with self._running("vocoder") as wdev:
                wav = self.vocoder(log_mel.to(wdev))
        else:
            mel = self.mel.to(log_mel.device)
            wav = griffin_lim(log_mel, mel, generator=torch.Generator(device=log_mel.device).manual_seed(seed))
        wav = wav.reshape(b, -1)[:, : mel_frames * d.audio_hop_length].clamp(-1, 1)
        return [GeneratedClip(p, to_uint8_frames(video[i]), wav[i].float().cpu().numpy(), float(fps),
                              d.audio_sample_rate) for i, p in enumerate(prompts)]

    def _denoise(self, prompts, noise, z0, hidden, mask, uhidden, umask, *, fps, steps, guidance_scale, sampler,
                 dtype, image, image_guidance_scale: float, size: tuple[int, int]) -> dict:
        m, dev, b = self.model, self.device, len(prompts)
        x = {k: v.to(dev) for k, v in noise.items()}
        tv = x["video"].shape[2]
        cond_mask = None
        if z0 is not None:
            # (B, C, 1, h, w): each prompt's own frame (or one frame for all) as a 1-frame causal clip
            cond_latent, _ = m.normalize(z0.to(dev), x["audio"])
            cond_mask = torch.zeros(b, tv, dtype=torch.bool, device=dev)
            cond_mask[:, 0] = True
            x["video"][:, :, :1] = cond_latent

        fps_t = torch.full((b,), float(fps), device=dev)

        # image tokens: the frame's features, or the null ones (text-to-video, and image guidance's branch)
        null = m.image_tokens(None, batch=b, size=size)
        if null is not None:
            null = (null[0].to(dev, dtype), null[1])
        img_tokens = null if image is None else (image[0].to(dev, dtype), image[1])

        def denoise(x, sigma, text, text_mask, image=img_tokens):
            out = m(x["video"].to(dtype), x["audio"].to(dtype), sigma, text, text_mask, cond_mask=cond_mask, fps=fps_t,
                    image=image)
            v = out["video"].float()
            if cond_mask is not None:  # the clean first frame must not move
                v = v.masked_fill(cond_mask[:, None, :, None, None], 0.0)
            return {"video": v, "audio": out["audio"].float()}

        text, text_mask = m.encode_text(hidden.to(dtype), mask)       # the encoder's states are float32
        utext, utext_mask = m.encode_text(uhidden.to(dtype), umask)
        cond = {"text": text.to(dtype), "text_mask": text_mask}
        uncond = [({"text": utext.to(dtype), "text_mask": utext_mask}, guidance_scale)]
        if image is not None and null is not None and image_guidance_scale != 1.0:
            uncond.append(({**cond, "image": null}, image_guidance_scale))
        fn = guided_model_fn(denoise, cond, uncond)
        return SAMPLERS[sampler](fn, x, get_sigmas(steps, m.num_tokens(x["video"], x["audio"]), device=dev))

    @staticmethod
    def save(clip: GeneratedClip, path: str | Path) -> Path:
        from ltx_train.media import write_mp4
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_mp4(path, clip.frames, clip.fps, clip.audio, clip.sample_rate)
        return path


# the previous name, kept so that existing notebooks keep working
LTXPipeline = LTXVideoPipeline
