"""A saccade-style DVS simulation: event streams from still images (derived data, not N-MNIST).

N-MNIST was recorded by moving an ATIS sensor in three saccades (an isosceles triangle, about
100 ms each) in front of MNIST digits on a monitor. This module does the same in software:
the image is placed on a larger canvas, translated along a triangle with sub-pixel bilinear
shifts, and an ideal DVS pixel emits an ON (OFF) event each time its log intensity rises
(falls) by its contrast threshold relative to the level at its previous event. Event times
are interpolated linearly inside each simulation step. Every pixel has a fixed threshold
mismatch drawn once from a seeded generator (the same simulated sensor for every image); there
is no shot noise or refractory period, so the output is a deterministic function of the image.
All steps are vectorised over a batch of images in torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from devprune.data.events.types import EVENT_DTYPE


@dataclass(frozen=True)
class SaccadeConfig:
    """Sensor and motion of the simulation (defaults give N-MNIST-like 32x32 streams)."""

    canvas: int = 32                # the image is centred on a canvas x canvas sensor
    amplitude: float = 2.0          # saccade triangle height in pixels
    steps_per_saccade: int = 10     # simulation steps per saccade
    saccade_us: int = 100_000       # duration of one saccade
    threshold: float = 0.25         # log-intensity contrast threshold
    threshold_sigma: float = 0.03   # per-pixel threshold mismatch (std)
    log_eps: float = 0.05           # log(I + eps): black pixels still have a finite level
    sensor_seed: int = 1234         # seeds the threshold mismatch

    def key(self) -> str:
        return (f"c{self.canvas}-a{self.amplitude:g}-s{self.steps_per_saccade}"
                f"-th{self.threshold:g}-sd{self.threshold_sigma:g}-e{self.log_eps:g}"
                f"-seed{self.sensor_seed}")


def saccade_path(cfg: SaccadeConfig) -> Tensor:
    """``[3 * steps + 1, 2]`` (dx, dy) offsets in pixels along the triangle, start = end."""
    a = cfg.amplitude
    corners = torch.tensor([[0.0, -a / 2], [a / 2, a / 2], [-a / 2, a / 2], [0.0, -a / 2]])
    frac = torch.arange(cfg.steps_per_saccade, dtype=torch.float32) / cfg.steps_per_saccade
    legs = [corners[i] + frac[:, None] * (corners[i + 1] - corners[i]) for i in range(3)]
    return torch.cat([*legs, corners[3:]], 0)


def render_path(images: Tensor, cfg: SaccadeConfig) -> Tensor:
    """``[B, K, canvas, canvas]`` intensities of ``images [B, H, W]`` (in [0, 1]) moved along
    the saccade path, by bilinear interpolation with zero (black) surround."""
    b, h, w = images.shape
    pad_y, pad_x = cfg.canvas - h, cfg.canvas - w
    canvas = F.pad(images, (pad_x // 2, pad_x - pad_x // 2, pad_y // 2, pad_y - pad_y // 2))
    path = saccade_path(cfg)
    k = path.shape[0]
    # Output pixel p shows input pixel p - offset; normalised units are 2 / size per pixel.
    theta = torch.zeros(k, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, :, 2] = -path * 2.0 / cfg.canvas
    grid = F.affine_grid(theta, [k, 1, cfg.canvas, cfg.canvas], align_corners=False)
    frames = F.grid_sample(
        canvas.reshape(b, 1, 1, cfg.canvas, cfg.canvas).expand(b, k, 1, -1, -1).reshape(
            b * k, 1, cfg.canvas, cfg.canvas),
        grid.repeat(b, 1, 1, 1),
        mode="bilinear", padding_mode="zeros", align_corners=False,
    )
    return frames.reshape(b, k, cfg.canvas, cfg.canvas)


def pixel_thresholds(cfg: SaccadeConfig) -> Tensor:
    """The simulated sensor's per-pixel contrast thresholds (fixed by ``sensor_seed``)."""
    gen = torch.Generator().manual_seed(cfg.sensor_seed)
    noise = torch.randn(cfg.canvas, cfg.canvas, generator=gen) * cfg.threshold_sigma
    return (cfg.threshold + noise).clamp_(min=0.25 * cfg.threshold)


def simulate_events(images: Tensor, cfg: SaccadeConfig) -> tuple[np.ndarray, np.ndarray]:
    """Events of every image: ``(sample index [N], events [N])`` grouped by sample and
    time-sorted within it (the layout :func:`integrate_batch` takes)."""
    log_i = torch.log(render_path(images.float(), cfg) + cfg.log_eps)  # [B, K, H, W]
    b, k, h, w = log_i.shape
    log_i = log_i.reshape(b, k, h * w)
    thresholds = pixel_thresholds(cfg).reshape(h * w)
    step_us = cfg.saccade_us / cfg.steps_per_saccade
    reference = log_i[:, 0].clone()
    parts = [
        _step_events(log_i[:, s - 1], log_i[:, s], reference, thresholds, (s - 1) * step_us,
                     step_us)
        for s in range(1, k)
    ]
    flat, t, on = (torch.cat(column).numpy() for column in zip(*parts, strict=True))
    sample, pixel = np.divmod(flat, h * w)
    # Stable by time within a sample; steps were emitted in time order already.
    order = np.lexsort((t, sample))
    events = np.empty(len(order), dtype=EVENT_DTYPE)
    events["t"] = t[order]
    events["y"], events["x"] = np.divmod(pixel[order], w)
    events["p"] = on[order]
    return sample[order], events


def _step_events(
    before: Tensor, after: Tensor, reference: Tensor, thresholds: Tensor,
    start_us: float, step_us: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """Threshold crossings between two steps of ``[B, P]`` log intensities: flat pixel index
    ``b * P + p``, time and ON flag of each event. Updates ``reference`` in place."""
    delta = after - reference
    count = torch.floor(delta.abs() / thresholds).to(torch.int32)
    signed_step = torch.sign(delta) * thresholds
    active = count.flatten().nonzero().squeeze(1)
    n = count.flatten()[active]
    # Per active pixel: the j-th crossing sits at level ref + j * signed_step, reached at the
    # fraction (level - before) / (after - before) of the step = offset + j * slope.
    span = (after - before).flatten()[active]
    safe = torch.where(span != 0, span, torch.ones_like(span))
    offset = torch.where(span != 0, (reference.flatten()[active] - before.flatten()[active])
                         / safe, torch.ones_like(span))
    slope = torch.where(span != 0, signed_step.flatten()[active] / safe, torch.zeros_like(span))
    event_pixel = torch.repeat_interleave(torch.arange(len(n)), n)
    first = torch.cumsum(n, 0) - n
    j = (torch.arange(len(event_pixel)) - first[event_pixel] + 1).to(torch.float32)
    frac = (offset[event_pixel] + j * slope[event_pixel]).clamp_(0.0, 1.0)
    t = (start_us + frac * step_us).round_().to(torch.int64)
    on = (signed_step.flatten()[active] > 0).to(torch.int8)[event_pixel]
    reference.add_(signed_step * count)
    return active[event_pixel], t, on
