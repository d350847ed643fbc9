"""Specifications of LiveSyntheticDataModule: the batch contract, equality with decoded shards, seeds
per epoch/rank/worker, resume, no av/decord/webdataset, and the Hydra config."""
from __future__ import annotations

import subprocess
import sys

import lightning as L
import numpy as np
import pytest
import torch

from ltx_train.data.live import LiveSyntheticDataModule
from ltx_train.data.live_stream import LiveStream

TINY = dict(num_frames=3, height=32, width=32, batch_size=2)


def consume(dm, loader, n: int | None = None) -> list[dict]:
    """Iterate like Lightning does: every consumed batch passes through on_before_batch_transfer."""
    out = []
    for batch in loader:
        out.append(dm.on_before_batch_transfer(batch, 0))
        if n is not None and len(out) == n:
            break
    return out


def keys(batches) -> list[str]:
    return [k for b in batches for k in b["key"]]


def test_live_clips_equal_decoded_shard_clips_up_to_compression(tmp_path):
    from ltx_train.data.datamodule import VideoDataModule
    from ltx_train.data.shard_writer import write_synthetic_shards

    write_synthetic_shards(tmp_path, n_train=0, n_val=4, shard_size=4, seed=5)
    vdm = VideoDataModule(val_shards=str(tmp_path), batch_size=4)
    (dec,) = consume(vdm, vdm.val_dataloader())
    dm = LiveSyntheticDataModule(num_train=4, num_val=4, seed=5, batch_size=4)
    (live,) = consume(dm, dm.val_dataloader())
    assert set(live) == set(dec)  # the same keys, skipped included
    for name, value in dec.items():
        if torch.is_tensor(value):
            assert live[name].shape == value.shape and live[name].dtype == value.dtype, name
    assert live["key"] == dec["key"] == [f"synth-{1_000_000_005 + i}" for i in range(4)]
    assert live["caption"] == dec["caption"] and live["url"] == ["live://synthetic/val"] * 4
    for name in ("fps", "audio_mask", "ann_mask", "gravity", "light", "centers", "velocities", "obj_mask",
                 "contacts"):
        assert torch.equal(live[name], dec[name]), name  # labels come from the same JSON: exact
    # H.264 (crf 18, yuv420p) and AAC; measured: video mean |d| 0.025 (3.2/255), PSNR 32.7 dB, audio
    # error rms 0.0055 on a signal of rms 0.10, log-mel mean |d| 0.093
    d = live["video"] - dec["video"]
    assert live["video"].min() >= -1 and live["video"].max() <= 1
    assert d.abs().mean() < 0.035 and 10 * torch.log10(4 / d.pow(2).mean()) > 30
    assert (live["audio"] - dec["audio"]).pow(2).mean().sqrt() < 0.1 * live["audio"].pow(2).mean().sqrt()
    assert (live["mel"] - dec["mel"]).abs().mean() < 0.15


def test_renders_without_av_decord_or_webdataset():
    code = ("import sys\n"
            "for m in ('av', 'decord', 'webdataset'): sys.modules[m] = None  # importing them now fails\n"
            "from ltx_train.data.live import LiveSyntheticDataModule\n"
            "dm = LiveSyntheticDataModule(num_train=2, num_val=2, num_frames=3, height=32, width=32, batch_size=2)\n"
            "b = next(iter(dm.train_dataloader()))\n"
            "assert b['video'].shape == (2, 3, 3, 32, 32), b['video'].shape\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_train_epochs_reshuffle_a_fixed_set_and_val_seeds_follow_the_shard_generator():
    dm = LiveSyntheticDataModule(num_train=6, num_val=3, seed=10, **TINY)
    epochs = [keys(consume(dm, dm.train_dataloader())) for _ in range(2)]
    assert sorted(epochs[0]) == sorted(epochs[1]) == sorted(f"synth-{10 + i}" for i in range(6))
    assert epochs[0] != epochs[1]
    assert keys(consume(dm, dm.val_dataloader())) == [f"synth-{1_000_000_010 + i}" for i in range(3)]
    again = LiveSyntheticDataModule(num_train=6, num_val=3, seed=10, **TINY)
    assert keys(consume(again, again.train_dataloader())) == epochs[0]  # a fixed seed gives a fixed stream


def test_ranks_get_disjoint_seeds_and_the_infinite_set_never_repeats():
    from ltx_train.audio.mel import MelConfig
    from ltx_train.data.synth import SynthConfig

    args = dict(synth=SynthConfig(num_frames=3, width=32, height=32), mel=MelConfig(), batch_size=2, role="train",
                train=True, seed=0)
    ranks = [LiveStream(num_clips=10, rank=r, world_size=2, **args).epoch_seeds(0) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 5 and not set(ranks[0]) & set(ranks[1])
    inf = [LiveStream(num_clips=None, clips_per_epoch=4, rank=r, world_size=2, **args) for r in range(2)]
    seen = np.concatenate([s.epoch_seeds(e) for s in inf for e in range(3)])
    assert len(set(seen.tolist())) == 24 and seen.max() < 1e9
    with pytest.raises(ValueError, match="epoch_size"):
        LiveSyntheticDataModule(num_train=None, **TINY)


def test_workers_give_the_same_batches_in_the_same_order_with_persistent_workers():
    base = consume(dm := LiveSyntheticDataModule(num_train=8, seed=2, **TINY), dm.train_dataloader())
    base += consume(dm, dm.train_dataloader())
    w = LiveSyntheticDataModule(num_train=8, seed=2, num_workers=2, persistent_workers=True, **TINY)
    loader = w.train_dataloader()
    two = consume(w, loader) + consume(w, loader)  # two epochs from the same two persistent workers
    assert keys(two) == keys(base) and keys(base)[:8] != keys(base)[8:]
    assert all(torch.equal(a["video"], b["video"]) for a, b in zip(two, base))


@pytest.mark.parametrize("workers", [0, 2])
def test_state_dict_round_trip_continues_the_epoch_in_order(workers):
    args = dict(num_train=12, seed=3, num_workers=workers, **TINY)
    dm = LiveSyntheticDataModule(**args)
    full = keys(consume(dm, dm.train_dataloader()))  # 6 batches
    first = LiveSyntheticDataModule(**args)
    head = keys(consume(first, first.train_dataloader(), n=3))
    state = first.state_dict()
    assert state["samples_seen"] == 6 and state["train"] == {"epoch": 0, "batches": 3}
    resumed = LiveSyntheticDataModule(**{**args, "num_workers": 2 - workers})  # any worker count
    resumed.load_state_dict(state)
    assert head + keys(consume(resumed, resumed.train_dataloader())) == full
    assert len(consume(resumed, resumed.train_dataloader())) == 6  # the next epoch is whole


class KeyRecorder(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[str] = []

    def training_step(self, batch, _):
        self.seen += batch["key"]
        self.log("data/skipped", batch["skipped"].float())
        return (self.w - batch["video"].mean()) ** 2

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_checkpoints_resume_the_live_stream(tmp_path):
    args = dict(num_train=8, num_val=0, seed=5, **TINY)  # 4 batches per epoch
    quiet = dict(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                 num_sanity_val_steps=0, limit_val_batches=0)
    every3 = L.pytorch.callbacks.ModelCheckpoint(tmp_path, "{step}", every_n_train_steps=3, save_top_k=-1)
    full = KeyRecorder()
    L.Trainer(max_steps=9, callbacks=[every3], **quiet).fit(full, datamodule=LiveSyntheticDataModule(**args))
    assert len(full.seen) == 18
    rest = KeyRecorder()
    L.Trainer(max_steps=9, enable_checkpointing=False, **quiet).fit(
        rest, datamodule=LiveSyntheticDataModule(**args), ckpt_path=tmp_path / "step=3.ckpt")
    assert rest.seen == full.seen[6:]
    # saved after fit stopped mid-epoch: Lightning starts a new epoch, the data finishes its own first
    part, rest = KeyRecorder(), KeyRecorder()
    trainer = L.Trainer(max_steps=3, enable_checkpointing=False, **quiet)
    trainer.fit(part, datamodule=LiveSyntheticDataModule(**args))
    trainer.save_checkpoint(tmp_path / "after_fit.ckpt")
    L.Trainer(max_steps=9, enable_checkpointing=False, **quiet).fit(
        rest, datamodule=LiveSyntheticDataModule(**args), ckpt_path=tmp_path / "after_fit.ckpt")
    assert part.seen + rest.seen == full.seen


def test_hydra_config_selects_the_live_module_and_bad_options_are_named():
    from hydra import compose, initialize_config_dir

    from ltx_train.hydra_utils import CONF_DIR, build, register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["data=synthetic_live", "data.palette=neon", "data.camera=pan_right",
                                          "data.num_frames=3", "data.height=32", "data.width=32"])
    dm = build(cfg, "data")
    assert isinstance(dm, LiveSyntheticDataModule) and dm.synth.palette == "neon"
    (batch,) = consume(dm, dm.val_dataloader(), n=1)
    assert "The camera" in batch["caption"][0] and batch["video"].shape[2:] == (3, 32, 32)
    for key, bad in (("palette", "sepai"), ("camera", "spin"), ("gravity", "sideways")):
        with pytest.raises(ValueError, match=f"{key}="):
            LiveSyntheticDataModule(**{key: bad})


def test_render_cache_returns_the_rendered_samples_exactly(tmp_path):
    from ltx_train.data.live import LiveSyntheticDataModule
    kw = dict(num_train=4, num_val=0, height=32, width=32, num_frames=9, batch_size=2, shuffle=False)
    plain = next(iter(LiveSyntheticDataModule(**kw).train_dataloader()))
    cached_dm = LiveSyntheticDataModule(**kw, cache_dir=str(tmp_path))
    first = next(iter(cached_dm.train_dataloader()))
    files = list(tmp_path.rglob("*.npz"))
    assert len(files) == 2, "one file per rendered clip"
    again = next(iter(LiveSyntheticDataModule(**kw, cache_dir=str(tmp_path)).train_dataloader()))
    for batch in (first, again):
        for k, v in plain.items():
            if isinstance(v, torch.Tensor):
                assert torch.equal(v, batch[k]), k
            elif k != "__stream__":
                assert v == batch[k], k
    other = LiveSyntheticDataModule(**{**kw, "palette": "sepia"}, cache_dir=str(tmp_path))
    next(iter(other.train_dataloader()))
    assert len({f.parent for f in tmp_path.rglob("*.npz")}) == 2, "another setting, another cache folder"
