"""The on-disk encoding cache of generation: prompts' text states and images' VAE latents, keyed by
content and encoder weights, reused across calls and processes, evicted least recently used first."""
from __future__ import annotations

import torch

from ltx_train.encode_cache import EncodingCache, module_hash
from ltx_train.models.vae import VideoVAE, preset as vae_preset
from test_pipeline import generate, pipe  # noqa: F401  (the tiny pipeline fixture)


def test_a_hit_returns_the_same_tensors_and_clips_across_cache_objects(pipe, tmp_path):  # noqa: F811
    pipe.encoding_cache = None
    plain = generate(pipe)
    hidden, mask = pipe.text_states(["a red ball falls", "a blue box slides"])
    cache = pipe.enable_encoding_cache(tmp_path / "enc")
    cold = generate(pipe)                                  # 2 prompts + the empty negative prompt: misses
    assert (cache.hits, cache.misses) == (0, 3) and cache.stats()["files"] == 3
    pipe.enable_encoding_cache(tmp_path / "enc")           # a new object on the same folder (a new process)
    h2, m2 = pipe.text_states(["a red ball falls", "a blue box slides"])
    assert pipe.encoding_cache.misses == 0 and pipe.encoding_cache.hits == 2
    assert torch.equal(h2, hidden) and torch.equal(m2, mask)
    warm = generate(pipe)
    for a, b, c in zip(plain, cold, warm):
        assert (a.frames == b.frames).all() and (b.frames == c.frames).all()

    img = torch.rand(3, 32, 32) * 2 - 1
    z = pipe.image_latents(img[None])
    assert torch.equal(pipe.image_latents(img[None]), z) and pipe.encoding_cache.hits == 2 + 3 + 1
    pipe.encoding_cache = None


def test_a_changed_encoder_misses_and_old_entries_are_evicted_first(tmp_path):
    torch.manual_seed(0)
    a, b = VideoVAE(vae_preset("tiny")), VideoVAE(vae_preset("tiny"))
    assert module_hash(a) != module_hash(b) and module_hash(a) == module_hash(a)
    cache = EncodingCache(tmp_path, max_bytes=10_000)
    content = b"the same image"
    cache.put(cache.key("image", module_hash(a), content), {"latent": torch.ones(4)})
    assert cache.get(cache.key("image", module_hash(b), content)) is None       # other weights: a miss
    assert torch.equal(cache.get(cache.key("image", module_hash(a), content))["latent"], torch.ones(4))
    import os
    import time
    start = time.time()
    for i in range(6):                                     # 6 x 4 KB entries through a 10 KB cache
        cache.put(cache.key("text", "m", str(i).encode()), {"x": torch.zeros(1000)})
        p = cache._path(cache.key("text", "m", str(i).encode()))
        os.utime(p, (start + 10 + i, start + 10 + i))      # distinct times: the order is the write order
    st = cache.stats()
    assert st["bytes"] <= 10_000 and st["files"] == 2
    assert cache.get(cache.key("text", "m", b"5")) is not None and cache.get(cache.key("text", "m", b"0")) is None
