from __future__ import annotations

import pytest
import torch

from devprune.errors import ConfigError, LayoutError
from devprune.snn.encoders import BernoulliEncoder, DirectEncoder, EventFrameEncoder


def test_direct_encoder_repeats_input():
    x = torch.randn(3, 1, 4, 4)
    y = DirectEncoder(5)(x)
    assert y.shape == (5, 3, 1, 4, 4)
    assert all(torch.equal(step, x) for step in y.unbind(0))


def test_bernoulli_rate_matches_pixel_value():
    torch.manual_seed(0)
    pixels = torch.tensor([[0.0, 0.1, 0.5, 0.9, 1.0]])
    spikes = BernoulliEncoder(4000)(pixels)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    rates = spikes.mean(0)
    # binomial std at p=0.5, n=4000 is 0.008: 0.03 is > 3.5 sigma
    torch.testing.assert_close(rates, pixels, atol=0.03, rtol=0)
    assert rates[0, 0] == 0 and rates[0, -1] == 1


def test_bernoulli_steps_are_independent():
    torch.manual_seed(1)
    spikes = BernoulliEncoder(2000)(torch.full((1, 1), 0.5)).flatten()
    # P(s_t = 1 and s_t+1 = 1) is 0.25 for independent draws
    both = (spikes[1:] * spikes[:-1]).mean().item()
    assert both == pytest.approx(0.25, abs=0.04)


def test_event_frame_encoder_is_time_major_with_crop_and_truncation():
    x = torch.arange(2 * 6 * 2 * 34 * 34, dtype=torch.float32).reshape(2, 6, 2, 34, 34)
    y = EventFrameEncoder(time_steps=4, crop=32)(x)
    assert y.shape == (4, 2, 2, 32, 32)
    torch.testing.assert_close(y[3, 1], x[1, 3, :, 1:33, 1:33])
    assert EventFrameEncoder()(x).shape == (6, 2, 2, 34, 34)


def test_event_frame_encoder_errors():
    with pytest.raises(LayoutError, match=r"\[B, T, C, H, W\]"):
        EventFrameEncoder()(torch.zeros(2, 2, 8, 8))
    with pytest.raises(LayoutError, match="frames"):
        EventFrameEncoder(time_steps=9)(torch.zeros(1, 4, 2, 8, 8))
    with pytest.raises(LayoutError, match="crop"):
        EventFrameEncoder(crop=9)(torch.zeros(1, 4, 2, 8, 8))
    with pytest.raises(LayoutError, match="float"):
        BernoulliEncoder(2)(torch.zeros(1, 4, dtype=torch.uint8))
    with pytest.raises(ConfigError, match="time_steps"):
        DirectEncoder(0)


def test_time_steps_are_model_state_carried_by_state_dict() -> None:
    from devprune.models import build_model

    def net(steps: int):
        return build_model("snn-mlp", in_shape=(1, 4, 4), num_classes=2, time_steps=steps,
                           hidden=[3])

    learnt = net(4)
    learnt.time_steps = 2  # what DPAP's time side does
    state = learnt.state_dict()
    assert int(state["encoder.steps"]) == 2
    fresh = net(4)
    fresh.load_state_dict(state)
    assert fresh.time_steps == 2 and fresh.encoder(torch.rand(5, 1, 4, 4)).shape[0] == 2
    older = {k: v for k, v in state.items() if not k.endswith("steps")}  # before T was state
    kept = net(4)
    kept.load_state_dict(older)
    assert kept.time_steps == 4


def test_bernoulli_encoder_values_are_the_comparison_of_its_draws():
    # the spikes are written into the noise tensor: the same values as (x > noise) as floats
    x = torch.rand(3, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(3)
    spikes = BernoulliEncoder(4)(x)
    torch.manual_seed(3)
    noise = torch.rand(4, 3, 1, 5, 5)
    assert spikes.dtype == torch.float32
    assert torch.equal(spikes, (x.unsqueeze(0) > noise).to(torch.float32))
