"""Neuromorphic (event-camera) data: readers, frame integration, caching, derived datasets.

Importing this package registers ``nmnist``, ``dvs-gesture``, ``cifar10-dvs`` (recorded
datasets read from local files) and ``mnist-dvs-derived``, ``fashion-dvs-derived`` (event
streams simulated here from real MNIST / Fashion-MNIST images). See docs/NEUROMORPHIC.md.
"""

from devprune.data.events import datasets, derived  # noqa: F401  (registers the datasets)
from devprune.data.events.frames import FrameSpec, integrate, integrate_batch
from devprune.data.events.types import EVENT_DTYPE, make_events

__all__ = ["EVENT_DTYPE", "FrameSpec", "integrate", "integrate_batch", "make_events"]
