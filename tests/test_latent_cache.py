"""The latent cache: `ltx-shards cache` runs the frozen encoders once, `data=latents` trains the DiT
stage and LoRA from it with no encoder loaded, and the two paths agree."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from ltx_train.data.cli import run as shards_cli
from ltx_train.data.latent_cache import LatentCacheError
from ltx_train.data.latents import LatentDataModule, LatentStream
from ltx_train.hydra_utils import register_resolvers
from test_lora_training import compose_cfg

register_resolvers()
FAST = ["trainer.val_check_interval=2", "trainer.limit_val_batches=1", "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=1", "data.batch_size=2", "callbacks.sample_videos.steps=2",
        "callbacks.sample_videos.every_n_steps=2"]


@pytest.fixture(scope="module")
def base_dir(tiny_base_dir) -> Path:
    return tiny_base_dir


@pytest.fixture(scope="module")
def cache(latent_cache) -> Path:
    return latent_cache


def test_the_cache_holds_what_the_encoders_give_on_the_decoded_clips(cache, base_dir, synthetic_shards):
    from ltx_train.data.datamodule import VideoDataModule
    from ltx_train.pipeline import LTXVideoPipeline

    manifest = json.loads((cache / "manifest.json").read_text())
    assert {k: v["num_samples"] for k, v in manifest["splits"].items()} == {"train": 8, "val": 4}
    assert manifest["shapes"]["text_layers"] == 7 and manifest["encoders"]["vae"]["kind"] == "pretrained"
    pipe = LTXVideoPipeline.from_pretrained(base_dir)
    dm = VideoDataModule(val_shards=str(synthetic_shards), batch_size=4)
    decoded = next(iter(dm.val_dataloader()))          # centred clips, as the cache decodes them
    stream = LatentStream(cache, "val", 4, role="val", train=False, seed=0)
    stream.worker_init()
    cached = [stream.load(i) for i in range(4)]
    by_key = {c["key"]: c for c in cached}
    with torch.no_grad():
        mean = pipe.vae.encode(decoded["video"]).mode()
        audio = pipe.audio_vae.encode(decoded["mel"]).mode()
        hidden, mask = pipe.text_encoder.encode(list(decoded["caption"]))
    for i, key in enumerate(decoded["key"]):
        c = by_key[key]
        assert c["caption"] == decoded["caption"][i]
        torch.testing.assert_close(c["video_latent"], mean[i], atol=2e-3, rtol=2e-3)   # float16 storage
        torch.testing.assert_close(c["audio_latent"], audio[i], atol=2e-3, rtol=2e-3)
        assert torch.equal(c["text_mask"], mask[i])
        torch.testing.assert_close(c["text_hidden"].float(), hidden[i], atol=1e-2, rtol=1e-2)
        for label in ("gravity", "centers", "contacts", "obj_mask", "ann_mask"):
            assert torch.equal(c[label], decoded[label][i])


def test_bad_samples_are_skipped_and_counted_and_written_shards_are_not_redone(base_dir, odd_shard, odd_keys,
                                                                             tmp_path, monkeypatch):
    import ltx_train.data.latent_cache as lc

    out = tmp_path / "odd_cache"
    args = ["cache", "--shards", str(odd_shard), "--splits", "odd", "--pretrained", str(base_dir),
            "--out", str(out), "--size", "32"]
    with pytest.warns(UserWarning, match="skipped"):
        manifest = shards_cli(args)
    split = manifest["splits"]["odd"]
    assert split["num_samples"] == len(odd_keys["good"])
    assert sum(split["skipped"].values()) == len(odd_keys["broken"])
    meta = lc.shard_metadata(out / "odd-000000.safetensors")
    assert json.loads(meta["keys"]) == odd_keys["good"]
    before = (out / "odd-000000.safetensors").stat().st_mtime_ns

    def no_encoding(*a, **k):
        raise AssertionError("a shard already written was encoded again")
    monkeypatch.setattr(lc, "encode_samples", no_encoding)
    again = shards_cli(args)
    assert again["splits"]["odd"] == split
    assert (out / "odd-000000.safetensors").stat().st_mtime_ns == before


def test_a_synthetic_cache_of_non_square_clips_records_and_holds_their_size(base_dir, tmp_path):
    out = tmp_path / "wide"
    manifest = shards_cli(["cache", "--synthetic", "2", "--val", "0", "--shard-size", "2", "--frames", "9",
                           "--width", "48", "--height", "32", "--pretrained", str(base_dir), "--out", str(out)])
    assert (manifest["clip"]["height"], manifest["clip"]["width"]) == (32, 48)
    dm = LatentDataModule(str(out), num_frames=9, height=32, width=48, val_split="train", batch_size=2)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["video_latent"].shape[-3:] == (3, 4, 6)       # 4x temporal, 8x spatial
    assert batch["first_frame"].shape[-2:] == (32, 48)
    with pytest.raises(LatentCacheError, match="width=64.*width=48"):
        LatentDataModule(str(out), width=64)


def test_cached_and_decoded_training_give_the_same_loss(cache, base_dir, synthetic_shards):
    from ltx_train.data.datamodule import VideoDataModule
    from ltx_train.modules.dit_module import DiTModule

    decoded_module = DiTModule(init_from=str(base_dir)).eval()
    cached_module = DiTModule(init_from=str(base_dir), latents=str(cache)).eval()
    assert cached_module.vae is None and cached_module.audio_vae is None and cached_module.text_encoder is None
    decoded = next(iter(VideoDataModule(val_shards=str(synthetic_shards), batch_size=4).val_dataloader()))
    dm = LatentDataModule(str(cache), batch_size=4)
    cached = next(iter(dm.val_dataloader()))
    assert list(cached["key"]) == list(decoded["key"])
    with torch.no_grad():
        a = decoded_module._losses(decoded, torch.Generator().manual_seed(0), train=False)
        b = cached_module._losses(cached, torch.Generator().manual_seed(0), train=False)
    for k in ("video", "audio", "loss"):
        torch.testing.assert_close(b[k], a[k], rtol=2e-3, atol=2e-3)
    # a dropped caption reads the cached states of "", as the encoder would give them
    drop = [True, False, False, True]
    text_c, mask_c = cached_module._cached_text(cached, drop)
    text_d, mask_d = decoded_module.text_tokens(["" if d else c for d, c in zip(drop, cached["caption"])])
    assert torch.equal(mask_c, mask_d)
    # (tokens outside the mask hold the encoder's padding states there, zeros here; the DiT never reads them)
    torch.testing.assert_close(text_c[mask_c], text_d[mask_d], atol=2e-2, rtol=2e-2)


def test_dit_and_lora_train_from_latents_and_the_run_exports(cache, base_dir, tmp_path):
    from ltx_train.export import export
    from ltx_train.pipeline import LTXVideoPipeline
    from ltx_train.train import train

    out = tmp_path / "dit"
    metrics = train(compose_cfg("train", out, "experiment=dit_tiny", "data=latents", f"data.path={cache}",
                                "trainer.max_steps=2", *FAST))
    assert metrics["train/loss"] == metrics["train/loss"] and "val/loss" in metrics
    assert sorted((out / "samples").glob("sample_step*.mp4")), "samples drawn with the cache's encoders"
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert not [k for k in ckpt["state_dict"] if k.startswith(("vae.", "audio_vae.", "text_encoder."))]
    assert ckpt["latent_cache"]["path"] == str(cache.resolve())
    exported = export(compose_cfg("export", tmp_path / "exp", f"checkpoint={out}/checkpoints/last.ckpt",
                                  f"out={tmp_path}/pretrained"))
    pipe = LTXVideoPipeline.from_pretrained(exported)
    clip = pipe(["a red ball falls"], steps=2, seconds=0.4, height=64, width=64, seed=0)[0]
    assert clip.frames.shape[1:] == (64, 64, 3)

    lora = tmp_path / "lora"
    metrics = train(compose_cfg("train", lora, "experiment=lora_style", f"base={base_dir}", "data=latents",
                                f"data.path={cache}", "trainer.max_steps=2", "model.lora.rank=4", *FAST))
    assert metrics["train/loss"] == metrics["train/loss"]
    assert (lora / "adapter" / "adapter_model.safetensors").is_file()


def test_a_cache_of_other_encoders_fails_before_training_naming_both(cache, base_dir, tmp_path):
    from ltx_train.modules.dit_module import DiTModule

    other = tmp_path / "other"
    shutil.copytree(cache, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["shapes"]["text_layers"] = 5
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(LatentCacheError, match=r"text_layers=5.*expects text_layers=7"):
        DiTModule(init_from=str(base_dir), latents=str(other))
    with pytest.raises(LatentCacheError, match="height=32.*height=64"):
        LatentDataModule(str(cache), height=32)
    with pytest.raises(LatentCacheError, match="not a latent cache"):
        LatentDataModule(str(tmp_path))
    from ltx_train.config import ConfigError
    from ltx_train.train import train
    with pytest.raises(ConfigError, match="data=latents"):
        train(compose_cfg("train", tmp_path / "vae", "experiment=vae_tiny", "data=latents", f"data.path={cache}",
                          "trainer.max_steps=1"))


def test_latent_batches_resume_exactly_and_ranks_read_disjoint_samples(cache):
    def keys(loader, n):
        out, it = [], iter(loader)
        for _ in range(n):
            batch = next(it)
            dm.on_before_batch_transfer(batch, 0)
            out.append(list(batch["key"]))
        return out

    dm = LatentDataModule(str(cache), batch_size=2, seed=3)
    full = keys(dm.train_dataloader(), 4)
    dm = LatentDataModule(str(cache), batch_size=2, seed=3)
    first = keys(dm.train_dataloader(), 2)
    state = dm.state_dict()
    dm = LatentDataModule(str(cache), batch_size=2, seed=3, num_workers=2)
    dm.load_state_dict(state)
    rest = keys(dm.train_dataloader(), 2)
    assert first + rest == full
    ranks = [set(LatentStream(cache, "train", 2, role="train", train=True, seed=3, rank=r, world_size=2)
                 .epoch_items(0).tolist()) for r in range(2)]
    assert not ranks[0] & ranks[1] and len(ranks[0] | ranks[1]) == 8


def test_the_cache_round_trips_tensors_exactly(base_dir, synthetic_shards, tmp_path):
    """With --dtype float32 what the encoders gave is what training reads, bit for bit."""
    import ltx_train.data.latent_cache as lc
    from safetensors.torch import load_file

    written = {}
    real_save = lc._save_atomic

    def keep(tensors, path, metadata):   # what encode_samples produced, as it goes to disk
        written[path.name] = {k: v.clone() for k, v in tensors.items()}
        real_save(tensors, path, metadata)
    lc._save_atomic = keep
    try:
        shards_cli(["cache", "--shards", str(synthetic_shards), "--splits", "val", "--pretrained", str(base_dir),
                    "--out", str(tmp_path / "f32"), "--dtype", "float32"])
    finally:
        lc._save_atomic = real_save
    stream = LatentStream(tmp_path / "f32", "val", 4, role="val", train=False, seed=0)
    stream.worker_init()
    ref = written["val-000000.safetensors"]
    assert all(torch.equal(v, load_file(str(tmp_path / "f32" / "val-000000.safetensors"))[k]) for k, v in ref.items())
    c = ref["video_params"].shape[1] // 2
    for j in range(int(stream.starts[1])):
        s = stream.load(j)
        assert torch.equal(s["video_latent"], ref["video_params"][j, :c])
        assert torch.equal(s["audio_latent"], ref["audio_params"][j, :ref["audio_params"].shape[1] // 2])
        lo, hi = ref["text_offsets"][j:j + 2].tolist()
        assert torch.equal(s["text_hidden"][:hi - lo], ref["text_hidden"][lo:hi])
        assert not s["text_hidden"][hi - lo:].any() and int(s["text_mask"].sum()) == hi - lo
        assert torch.equal(s["centers"], ref["centers"][j]) and torch.equal(s["contacts"], ref["contacts"][j])
