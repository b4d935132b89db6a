"""Encoders: turn a dataset's sample batch into time-major multi-step input ``[T, B, ...]``.

* :class:`DirectEncoder` -- the (normalised) analog input repeated T times; the first layer
  receives real values (BrainCog "direct" encoding).
* :class:`BernoulliEncoder` -- rate coding: at each step a pixel fires with probability
  equal to its value (input expected in [0, 1]; values outside act as if clamped).
* :class:`EventFrameEncoder` -- event frames ``[B, T, C, H, W]`` to ``[T, B, C, H, W]``,
  optionally keeping only the first T frames and center-cropping.
"""

from __future__ import annotations

import torch
from torch import nn

from devprune.errors import ConfigError, LayoutError


def _check_time_steps(time_steps: int, encoder: str) -> int:
    if not isinstance(time_steps, int) or isinstance(time_steps, bool) or time_steps < 1:
        raise ConfigError(f"{encoder}: time_steps must be a positive int, got {time_steps!r}.")
    return time_steps


class TimeStepsEncoder(nn.Module):
    """An encoder whose number of time steps is model state.

    T lives in the registered buffer ``steps`` (-1: all input frames), so ``state_dict``
    carries a T that training learnt (DPAP's time side) to checkpoints, compacted files and
    exports with no copy beside them; ``forward`` reads a Python int mirror of it (no tensor
    read per call, no graph break under ``torch.compile``). A state dict written before T was
    state (no ``steps`` entry) loads and leaves T as it is.
    """

    def __init__(self, time_steps: int | None) -> None:
        super().__init__()
        self.register_buffer("steps", torch.tensor(-1, dtype=torch.long))
        self.time_steps = time_steps

    @property
    def time_steps(self) -> int | None:
        return self._time_steps

    @time_steps.setter
    def time_steps(self, value: int | None) -> None:
        if value is not None:
            value = _check_time_steps(value, type(self).__name__)
        self._time_steps = value
        self.steps.fill_(-1 if value is None else value)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object) -> None:
        state_dict.setdefault(prefix + "steps", self.steps.clone())  # an older checkpoint
        super()._load_from_state_dict(state_dict, prefix, *args)
        steps = int(self.steps)
        self._time_steps = None if steps < 0 else steps


class DirectEncoder(TimeStepsEncoder):
    """``[B, ...] -> [T, B, ...]`` by repetition (a broadcast view, no copy)."""

    def __init__(self, time_steps: int) -> None:
        super().__init__(_check_time_steps(time_steps, "DirectEncoder"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.expand(self.time_steps, *x.shape)  # a new leading dim of stride 0

    def extra_repr(self) -> str:
        return f"time_steps={self.time_steps}"


class BernoulliEncoder(TimeStepsEncoder):
    """Rate coding: ``s[t] = 1[x > r_t]``, ``r_t ~ U(0, 1)`` i.i.d. per step and element.

    The input must be intensities in ``[0, 1]`` (un-normalised pixels); the spike
    probability of a pixel equals its value. This matches the STBP reference
    (``x > torch.rand(x.size())``). Normalised (mean/std) input would be silently wrong:
    feed raw intensities.
    """

    def __init__(self, time_steps: int) -> None:
        super().__init__(_check_time_steps(time_steps, "BernoulliEncoder"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_floating_point():
            raise LayoutError(
                f"BernoulliEncoder expects float intensities in [0, 1]; got dtype {x.dtype}. "
                "Convert the images first (e.g. uint8 / 255)."
            )
        noise = torch.rand((self.time_steps, *x.shape), dtype=x.dtype, device=x.device)
        # the comparison writes 0./1. into the noise tensor: no bool tensor and no bool->float
        # copy (both slow on CPU); the same values as ``(x > noise).to(x.dtype)``
        return torch.gt(x.unsqueeze(0), noise, out=noise)

    def extra_repr(self) -> str:
        return f"time_steps={self.time_steps}"


class EventFrameEncoder(TimeStepsEncoder):
    """Event frames ``[B, T_in, C, H, W] -> [T, B, C, H', W']`` (one frame per step).

    ``time_steps`` keeps the first T frames (``None``: all); ``crop`` center-crops each
    frame to ``(H', W')`` (an int for square), e.g. N-MNIST's 34x34 to 32x32.
    """

    def __init__(self, time_steps: int | None = None, crop: int | tuple[int, int] | None = None):
        super().__init__(time_steps)
        if isinstance(crop, int):
            crop = (crop, crop)
        if crop is not None and (len(crop) != 2 or min(crop) < 1):
            raise ConfigError(f"EventFrameEncoder: crop must be an int or (h, w), got {crop!r}.")
        self.crop = None if crop is None else (int(crop[0]), int(crop[1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise LayoutError(
                f"EventFrameEncoder expects event frames [B, T, C, H, W]; got shape "
                f"{tuple(x.shape)}. Use BernoulliEncoder/DirectEncoder for static images."
            )
        if self.time_steps is not None:
            if x.shape[1] < self.time_steps:
                raise LayoutError(
                    f"EventFrameEncoder: time_steps={self.time_steps} but the input has only "
                    f"{x.shape[1]} frames; build the frames with at least that many or lower "
                    "time_steps."
                )
            x = x[:, : self.time_steps]
        if self.crop is not None:
            x = self._center_crop(x)
        return x.transpose(0, 1).contiguous()

    def _center_crop(self, x: torch.Tensor) -> torch.Tensor:
        (h, w), (height, width) = self.crop, x.shape[-2:]
        if h > height or w > width:
            raise LayoutError(
                f"EventFrameEncoder: crop {self.crop} is larger than the frames "
                f"({height}x{width}); lower crop."
            )
        top, left = (height - h) // 2, (width - w) // 2
        return x[..., top : top + h, left : left + w]

    def extra_repr(self) -> str:
        return f"time_steps={self.time_steps}, crop={self.crop}"
