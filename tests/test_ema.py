import torch
from torch import nn

from ltx_train.modules.ema import EMA


def test_ema_warms_up_its_decay_and_resumes_its_count_from_a_state_dict():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    ema = EMA(model, decay=0.9)
    start = [p.detach().clone() for p in ema.averages()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model)                    # n = 0: d = min(0.9, 1 / 10) = 0.1 -> shadow moves 90% of the way
    for s, s0, p in zip(ema.averages(), start, model.parameters()):
        torch.testing.assert_close(s, 0.1 * s0 + 0.9 * p)
    ema.update(model)
    assert int(ema.num_updates) == 2

    resumed = EMA(nn.Linear(3, 2), decay=0.9)
    resumed.update(model)                # counts from 0 until a state dict says otherwise
    resumed.load_state_dict(ema.state_dict())
    before = [s.detach().clone() for s in resumed.averages()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    resumed.update(model)                # n = 2 from the state dict: d = 3 / 12 = 0.25
    for s, b, p in zip(resumed.averages(), before, model.parameters()):
        torch.testing.assert_close(s, 0.25 * b + 0.75 * p)
    assert int(resumed.num_updates) == 3
