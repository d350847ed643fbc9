"""Specifications of the physics heads, their latent-rate targets and masked losses."""
import pytest
import torch

from ltx_train.models.dit.dit import JointDiT
from ltx_train.models.dit.physics_heads import PhysicsHeads, PhysicsHeadsConfig
from ltx_train.objectives.physics import physics_losses, physics_targets
from ltx_train.models.dit.presets import preset
from ltx_train.timing import audio_latent_index, video_latent_index

B, T, K, TC = 2, 9, 3, 4          # 9 frames, 4x temporal -> 3 video latents
TV, TA = 3, 18                    # 24 fps, 24 kHz, hop 250, 4x -> 24 audio latents/s; 0.375 s -> 9 latents (+ slack)
TIMING = dict(temporal_compression=TC, sample_rate=24000, hop_length=250, audio_compression=4)



def make_batch(annotated=True, audio=True):
    g = torch.Generator().manual_seed(0)
    ann = torch.tensor([annotated] * B)
    z = 1.0 if annotated else 0.0
    contacts = torch.zeros(B, T)
    contacts[0, 5] = z
    contacts[1, 8] = z
    return {
        "fps": torch.full((B,), 24.0),
        "ann_mask": ann, "audio_mask": torch.tensor([audio] * B),
        "gravity": z * torch.tensor([[0.0, 1.0], [1.0, 0.0]]),
        "light": z * torch.rand(B, 3, generator=g),
        "centers": z * torch.rand(B, T, K, 2, generator=g),
        "obj_mask": torch.tensor([[True, False, False], [True, True, False]]) & ann[:, None],
        "contacts": contacts,
    }


def hidden_states(width=128, pt=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"video": torch.randn(B, TV // pt, 16, width, generator=g), "audio": torch.randn(B, TA, width, generator=g)}


def test_targets_follow_the_time_axis():
    batch = make_batch()
    tgt = physics_targets(batch, TV, TA, **TIMING)
    # latent 1 covers frames 1..4, latent 2 frames 5..8: centre target = mean over covered frames
    torch.testing.assert_close(tgt["centers"][:, 0], batch["centers"][:, 0])
    torch.testing.assert_close(tgt["centers"][:, 1], batch["centers"][:, 1:5].mean(1))
    torch.testing.assert_close(tgt["centers"][:, 2], batch["centers"][:, 5:9].mean(1))
    # contact at frame 5 -> video latent 2 and the audio latent containing 5/24 s
    assert video_latent_index(5, TC) == 2
    assert tgt["contact_video"][0].tolist() == [0.0, 0.0, 1.0]
    k0 = audio_latent_index(5 / 24, 24000, 250, 4)
    k1 = audio_latent_index(8 / 24, 24000, 250, 4)
    assert tgt["contact_audio"][0].nonzero().flatten().tolist() == [k0]
    assert tgt["contact_audio"][1].nonzero().flatten().tolist() == [k1]
    assert tgt["frame_mask"].all() and torch.equal(tgt["obj_mask"], batch["obj_mask"])


def test_heads_predict_per_latent_quantities_from_dit_hidden_states():
    model = JointDiT(preset("tiny", patch_size=(1, 2, 2)))
    heads = PhysicsHeads(PhysicsHeadsConfig(width=128, max_objects=K))
    out = model(torch.randn(B, 16, TV, 8, 8), torch.randn(B, 8, TA), torch.rand(B), torch.randn(B, 5, 256),
                return_hidden_at=0)
    preds = heads(out["hidden"])
    assert preds["gravity"].shape == (B, 2) and preds["light"].shape == (B, 3)
    torch.testing.assert_close(preds["gravity"].norm(dim=-1), torch.ones(B))
    assert preds["centers"].shape == (B, TV, K, 2)
    assert preds["contact_video"].shape == (B, TV) and preds["contact_audio"].shape == (B, TA)
    # a temporal patch of 2 still predicts every latent frame
    heads2 = PhysicsHeads(PhysicsHeadsConfig(width=128, max_objects=K, patch_t=2))
    h = hidden_states(pt=1)
    h["video"] = h["video"][:, :2]
    assert heads2(h)["centers"].shape == (B, 4, K, 2)


def test_all_losses_are_exactly_zero_without_annotations():
    heads = PhysicsHeads(PhysicsHeadsConfig(width=128, max_objects=K))
    tgt = physics_targets(make_batch(annotated=False), TV, TA, **TIMING)
    losses = physics_losses(heads(hidden_states()), tgt, contact_pos_weight=5.0)
    assert set(losses) == {"gravity", "light", "centers", "contact_video", "contact_audio"}
    for name, value in losses.items():
        assert value.item() == 0.0, name
    sum(losses.values()).backward()
    for p in heads.parameters():
        assert p.grad is None or (torch.isfinite(p.grad).all() and torch.count_nonzero(p.grad) == 0)


def test_audio_contact_loss_is_masked_for_clips_without_audio():
    heads = PhysicsHeads(PhysicsHeadsConfig(width=128, max_objects=K))
    losses = physics_losses(heads(hidden_states()), physics_targets(make_batch(audio=False), TV, TA, **TIMING))
    assert losses["contact_audio"].item() == 0.0
    assert all(losses[k] > 0 for k in ("gravity", "light", "centers", "contact_video"))


def test_perfect_predictions_give_zero_regression_losses_and_masks_ignore_unused_slots():
    tgt = physics_targets(make_batch(), TV, TA, **TIMING)
    preds = {"gravity": tgt["gravity"].clone(), "light": tgt["light"].clone(), "centers": tgt["centers"].clone(),
             "contact_video": 20 * (2 * tgt["contact_video"] - 1), "contact_audio": 20 * (2 * tgt["contact_audio"] - 1)}
    preds["centers"][0, :, 1:] = 123.0           # unused object slots of sample 0
    losses = physics_losses(preds, tgt)
    assert losses["gravity"].item() == pytest.approx(0.0, abs=1e-6)
    assert losses["light"].item() == 0.0 and losses["centers"].item() == 0.0
    assert losses["contact_video"].item() < 1e-6 and losses["contact_audio"].item() < 1e-6



@pytest.mark.parametrize("sample_rate, hop_length, audio_compression, num_audio_latents", [
    (24000, 250, 4, 18),      # 24 latents/s
    (24000, 240, 4, 40),      # 25 latents/s: frame times fall on latent boundaries, where rounding matters
    (44100, 512, 2, 7),       # ~43 latents/s, short audio: most contacts out of range
    (22050, 256, 8, 100),     # ~10.8 latents/s, every contact in range
])
def test_audio_contact_targets_match_the_per_contact_loop(sample_rate, hop_length, audio_compression,
                                                          num_audio_latents):
    fps_values = [24.0, 25.0, 30.0, 12.5, 29.97]
    t = 49
    # per fps: t rows with a single contact each (every frame's latent index is checked on its own),
    # then random sparse rows whose last frame (out of range for short audio) is always a contact
    g = torch.Generator().manual_seed(sample_rate + num_audio_latents)
    sparse = torch.rand(len(fps_values), t, generator=g) * (torch.rand(len(fps_values), t, generator=g) < 0.25)
    sparse[:, -1] = 1.0
    contacts = torch.cat([torch.eye(t).repeat(len(fps_values), 1), sparse])
    row_fps = torch.tensor(fps_values).repeat_interleave(t).tolist() + fps_values
    b = contacts.shape[0]
    batch = {
        "gravity": torch.zeros(b, 2), "light": torch.zeros(b, 3), "centers": torch.zeros(b, t, K, 2),
        "obj_mask": torch.zeros(b, K, dtype=torch.bool), "ann_mask": torch.ones(b, dtype=torch.bool),
        "contacts": contacts,
    }
    timing = dict(temporal_compression=TC, sample_rate=sample_rate, hop_length=hop_length,
                  audio_compression=audio_compression)

    def reference(fps):                                    # the former per-contact loop
        out = torch.zeros(b, num_audio_latents)
        fps = torch.as_tensor(fps, dtype=torch.float64).reshape(-1).expand(b).tolist()
        for i, f in (contacts > 0).nonzero().tolist():
            k = audio_latent_index(f / fps[i], sample_rate, hop_length, audio_compression)
            if k < num_audio_latents:
                out[i, k] = 1.0
        return out

    # fps as a list, a float32 (B,) tensor (as the data loader gives it), a float and a 0-d tensor
    for fps in (row_fps, torch.tensor(row_fps), 25.0, torch.tensor(30.0)):
        want = reference(fps)
        got = physics_targets({**batch, "fps": fps}, (t - 1) // TC + 1, num_audio_latents, **timing)["contact_audio"]
        assert got.dtype == want.dtype and torch.equal(got, want), fps
        if num_audio_latents < 20:                         # the overflow column really was exercised
            assert want.sum() < (contacts > 0).sum()
