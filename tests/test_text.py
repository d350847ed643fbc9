"""Specifications of the frozen text encoder and the text connector."""
import pytest
import torch

from ltx_train.models.dit.dit import JointDiT
from ltx_train.models.dit.presets import preset
from ltx_train.models.text.connector import TextConnector, TextConnectorConfig, connector_preset
from ltx_train.models.text.encoder import FrozenTextEncoder



@pytest.fixture(scope="module")
def encoder():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield FrozenTextEncoder(max_length=16, cache_size=4)


def test_packaged_minilm_loads_offline_and_returns_all_layers(encoder):
    hidden, mask = encoder.encode(["a red ball bounces twice", "light from the left"])
    assert hidden.shape == (2, 16, 7, 384) and hidden.dtype == torch.float32
    assert mask.dtype == torch.bool and mask.shape == (2, 16)
    assert mask[:, 0].all() and not mask.all()     # short captions are padded
    assert encoder.num_hidden_states == 7 and encoder.hidden_size == 384
    assert not torch.allclose(hidden[:, :, 0], hidden[:, :, -1])  # distinct layers, not copies


def test_encoder_is_frozen_and_stays_in_eval_mode(encoder):
    encoder.train()
    assert not encoder.model.training
    assert not any(p.requires_grad for p in encoder.parameters())
    hidden, _ = encoder.encode(["a box slides"])
    assert not hidden.requires_grad


def test_cache_returns_the_same_embeddings_and_stays_bounded(encoder):
    captions = ["a", "b c", "a", "d", "e", "f"]
    hidden, mask = encoder.encode(captions)
    torch.testing.assert_close(hidden[0], hidden[2])
    fresh, fresh_mask = encoder._encode(captions)
    torch.testing.assert_close(hidden, fresh, atol=1e-5, rtol=1e-5)
    assert torch.equal(mask, fresh_mask)
    assert len(encoder._cache) <= encoder.cache_size


def test_connector_prepends_always_valid_registers():
    cfg = TextConnectorConfig(width=64, heads=2, layers=2, registers=8, out_dim=96)
    conn = TextConnector(cfg)
    hidden = torch.randn(3, 10, 7, 384)
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[1, 6:] = False
    tokens, out_mask = conn(hidden, mask)
    assert tokens.shape == (3, 18, 96) and out_mask.shape == (3, 18)
    assert out_mask[:, :8].all() and torch.equal(out_mask[:, 8:], mask)


def test_connector_ignores_padding_tokens():
    torch.manual_seed(0)
    conn = TextConnector(TextConnectorConfig(width=64, heads=2, layers=2, registers=4))
    hidden = torch.randn(1, 6, 7, 384)
    mask = torch.tensor([[True] * 4 + [False] * 2])
    ref, _ = conn(hidden, mask)
    bumped = hidden.clone()
    bumped[0, 4:] = 50.0 * torch.randn(2, 7, 384)
    out, _ = conn(bumped, mask)
    torch.testing.assert_close(out[:, :8], ref[:, :8], atol=1e-6, rtol=0)


def test_ltx23_connector_has_four_times_the_baseline_parameters():
    base = TextConnector(connector_preset("baseline")).num_params()
    big = TextConnector(connector_preset("ltx23")).num_params()
    assert big / base == pytest.approx(4.0, rel=0.05)
    assert connector_preset("ltx23").registers == connector_preset("baseline").registers == 128


def test_caption_to_dit_end_to_end(encoder):
    torch.manual_seed(0)
    conn = TextConnector(connector_preset("baseline", registers=8))
    model = JointDiT(preset("tiny", text_dim=conn.cfg.output_dim))
    hidden, mask = encoder.encode(["a metal ball falls", ""])
    tokens, tmask = conn(hidden, mask)
    out = model(torch.randn(2, 16, 2, 4, 4), torch.randn(2, 8, 6), torch.rand(2), tokens, tmask)
    assert out["video"].shape == (2, 16, 2, 4, 4) and torch.isfinite(out["video"]).all()


def test_replace_mode_fills_padding_with_registers_so_nothing_needs_masking():
    torch.manual_seed(0)
    conn = TextConnector(TextConnectorConfig(width=64, heads=2, layers=2, registers=3, register_mode="replace"))
    hidden = torch.randn(2, 7, 7, 384)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[0, 4:] = False
    tokens, out_mask = conn(hidden, mask)
    assert tokens.shape == (2, 7, 64) and out_mask.all()
    bumped = hidden.clone()
    bumped[0, 4:] = 50.0 * torch.randn(3, 7, 384)
    torch.testing.assert_close(conn(bumped, mask)[0], tokens, atol=1e-6, rtol=0)
    # the caption's content still matters
    bumped[0, 1] += 1.0
    assert not torch.allclose(conn(bumped, mask)[0][0], tokens[0])
