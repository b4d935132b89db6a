"""A checksum of a nested payload of tensors and plain values (what checkpoints hold).

The digest covers every key, every plain value and every tensor's dtype, shape and bytes, in
order, so a flipped byte anywhere in a saved file that still loads changes it. It is computed
on the objects, not the file, so it travels inside the file it protects.
"""

from __future__ import annotations

import hashlib
from typing import Any

ALGORITHM = "sha256"


def payload_digest(obj: Any) -> str:
    """``sha256:<hex>`` of ``obj`` (nested dicts, lists, tuples, tensors, plain values)."""
    digest = hashlib.sha256()
    _feed(digest, obj)
    return f"{ALGORITHM}:{digest.hexdigest()}"


CHECKSUM_KEY = "checksum"


def sealed(payload: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``payload`` with its digest as the last entry (a stale one is replaced)."""
    content = {k: v for k, v in payload.items() if k != CHECKSUM_KEY}
    return {**content, CHECKSUM_KEY: payload_digest(content)}


def content_changed(payload: dict[str, Any]) -> bool:
    """True when ``payload``'s stored digest does not match its content. A payload without
    one (written before files carried checksums) counts as unchanged."""
    stored = payload.get(CHECKSUM_KEY)
    if stored is None:
        return False
    return payload_digest({k: v for k, v in payload.items() if k != CHECKSUM_KEY}) != stored


def _feed(digest: Any, obj: Any) -> None:
    import torch

    if isinstance(obj, torch.Tensor):
        flat = obj.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{obj.dtype}{tuple(obj.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    elif isinstance(obj, dict):
        digest.update(f"D{len(obj)}".encode())
        for key, value in obj.items():
            _feed(digest, key)
            _feed(digest, value)
    elif isinstance(obj, (list, tuple)):
        digest.update(f"{'L' if isinstance(obj, list) else 'U'}{len(obj)}".encode())
        for value in obj:
            _feed(digest, value)
    else:
        digest.update(f"{type(obj).__name__}:{obj!r};".encode())
