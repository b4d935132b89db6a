"""Fetch MNIST / Fashion-MNIST into ``<root>/<name>/`` as verified, uncompressed IDX files.

Sources are tried in order (:func:`devprune.data.sources.default_sources`); every file is
checked against the published SHA-256 of its uncompressed bytes while it is written, through
an atomic writer, so a mismatch leaves no file behind. A small stamp file remembers which
files were verified (keyed by size and mtime), so a second fetch costs a few ``stat`` calls.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import tempfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from devprune.data.idx import GZIP_MAGIC, read_idx
from devprune.data.paths import ensure_writable_dir, resolve_root
from devprune.data.registry import dataset_entry
from devprune.data.sources import (
    CHECKSUMS,
    IDX_STEMS,
    Source,
    SourceError,
    default_sources,
    manual_instructions,
)
from devprune.errors import ChecksumError, DataError
from devprune.utils.io import atomic_write_json, atomic_writer

STAMP_NAME = ".devprune-verified.json"
CHUNK = 1 << 20

Log = Callable[[str], None]


def fetchable_datasets() -> list[str]:
    """Names :func:`fetch` can obtain."""
    return list(CHECKSUMS)


def fetch(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    sources: Sequence[Source] | None = None,
    log: Log | None = None,
) -> Path:
    """Make the verified IDX files of ``name`` available; return their folder.

    Idempotent: files already verified are not read again. ``sources`` replaces the default
    list (tests inject failing ones); ``log`` receives one line per installed file.
    """
    data_root = resolve_root(root)
    _require_fetchable(name, data_root)
    dest = ensure_writable_dir(data_root / name)
    missing = _unverified(name, dest)
    if not missing:
        return dest
    attempts: list[str] = []
    mismatch = False
    for source in sources if sources is not None else default_sources(name, data_root):
        outcome = _try_source(source, name, dest, missing, log)
        missing = [stem for stem in missing if stem not in outcome.installed]
        attempts += outcome.problems
        mismatch |= outcome.mismatch
        if not missing:
            return dest
    error = ChecksumError if mismatch else DataError
    tried = "; ".join(f"({i}) {a}" for i, a in enumerate(attempts, 1)) or "no sources"
    raise error(f"could not fetch {name} ({', '.join(missing)} missing) into {dest}. "
                f"Tried: {tried}. To fix: {manual_instructions(name, dest)}")


def verify(name: str, root: str | os.PathLike | None = None) -> dict[str, str]:
    """Re-check every file of ``name`` from scratch (structure and SHA-256); return the digests.

    Ignores the stamp, so it also catches a file changed in place with its mtime preserved.
    """
    _require_fetchable(name, resolve_root(root))
    dest = resolve_root(root) / name
    digests: dict[str, str] = {}
    for stem in IDX_STEMS:
        path = dest / stem
        if not path.is_file():
            raise DataError(f"{path} is missing: run `devprune data fetch {name} "
                            f"--root {dest.parent}`")
        read_idx(path)  # a truncated file gets a clearer message than a checksum mismatch
        digests[stem] = _check_digest(path, CHECKSUMS[name][stem])
    _write_stamp(dest, {stem: _stamp_entry(dest / stem, d) for stem, d in digests.items()})
    return digests


def require_files(name: str, root: str | os.PathLike | None = None) -> Path:
    """The folder of ``name``'s verified files, without downloading anything.

    Verifies (once) files the user placed there by hand; a missing file raises
    :class:`DataError` naming the fetch command.
    """
    _require_fetchable(name, resolve_root(root))
    dest = resolve_root(root) / name
    missing = _unverified(name, dest)
    absent = [stem for stem in missing if not (dest / stem).is_file()]
    if absent:
        raise DataError(f"{name} is not in {dest} ({', '.join(absent)} missing): run "
                        f"`devprune data fetch {name} --root {dest.parent}` first")
    if missing:
        verify(name, dest.parent)
    return dest


def is_present(name: str, root: Path) -> bool:
    """All of ``name``'s files exist under ``root`` (not checked for integrity)."""
    return all((root / name / stem).is_file() for stem in IDX_STEMS)


# ------------------------------------------------------------------------ internals
class _Outcome:
    def __init__(self) -> None:
        self.installed: set[str] = set()
        self.problems: list[str] = []
        self.mismatch = False


def _require_fetchable(name: str, root: Path) -> None:
    if name in CHECKSUMS:
        return
    entry = dataset_entry(name)  # unknown names: ConfigError with "did you mean"
    if entry.locate is None:
        why = "it is generated in memory; there is nothing to fetch"
    else:
        where, _ = entry.locate(root)
        why = f"{entry.description or 'its files'} must be placed by hand in {where}"
    raise DataError(f"dataset {name!r} cannot be fetched by devprune: {why}. "
                    f"Fetchable: {', '.join(CHECKSUMS)}")


def _try_source(
    source: Source, name: str, dest: Path, stems: list[str], log: Log | None
) -> _Outcome:
    outcome = _Outcome()
    with tempfile.TemporaryDirectory(prefix=f"devprune-{name}-") as scratch:
        try:
            found = source.obtain(stems, Path(scratch))
        except SourceError as err:
            outcome.problems.append(f"{source.description}: {err}")
            return outcome
        for stem in stems:
            if stem not in found:
                continue
            try:
                digest = _install(found[stem], dest / stem, CHECKSUMS[name][stem])
            except DataError as err:
                outcome.problems.append(f"{source.description}: {err}")
                outcome.mismatch |= isinstance(err, ChecksumError)
                continue
            _record(dest, stem, digest)
            outcome.installed.add(stem)
            if log is not None:
                log(f"{name}/{stem}: sha256 {digest} OK ({source.description})")
    return outcome


def _install(src: Path, target: Path, expected: str) -> str:
    """Copy ``src`` (gunzipped if needed) to ``target`` checking its SHA-256; return it.

    A file already in place is only hashed. On a mismatch the atomic writer discards the
    new file, so ``target`` is untouched (absent, or the previous copy).
    """
    if src.resolve() == target.resolve():
        return _check_digest(src, expected)
    hasher = hashlib.sha256()
    with _open_maybe_gzip(src) as reader, atomic_writer(target) as writer:
        while chunk := _read_chunk(reader, src):
            hasher.update(chunk)
            writer.write(chunk)
        _compare(hasher.hexdigest(), expected, src)
    return hasher.hexdigest()


def _check_digest(path: Path, expected: str) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as reader:
        while chunk := reader.read(CHUNK):
            hasher.update(chunk)
    _compare(hasher.hexdigest(), expected, path)
    return hasher.hexdigest()


def _compare(actual: str, expected: str, path: Path) -> None:
    if actual != expected:
        raise ChecksumError(f"{path} has SHA-256 {actual[:16]}..., expected {expected[:16]}... "
                            f"(corrupt or a different file); delete it and fetch again")


@contextlib.contextmanager
def _open_maybe_gzip(path: Path):
    with open(path, "rb") as probe:
        compressed = probe.read(2) == GZIP_MAGIC
    if compressed:
        with gzip.open(path, "rb") as handle:
            yield handle
    else:
        with open(path, "rb") as handle:
            yield handle


def _read_chunk(reader: IO[bytes], path: Path) -> bytes:
    try:
        return reader.read(CHUNK)
    except (EOFError, OSError, zlib.error) as err:
        raise DataError(f"{path} is a corrupt or truncated archive ({err})") from None


# ---------------------------------------------------------------------- stamp file
def _unverified(name: str, dest: Path) -> list[str]:
    stamp = _read_stamp(dest)
    return [stem for stem in IDX_STEMS if not _stamp_matches(dest / stem, stamp.get(stem),
                                                             CHECKSUMS[name][stem])]


def _stamp_matches(path: Path, entry: dict | None, expected: str) -> bool:
    if not entry or entry.get("sha256") != expected:
        return False
    try:
        stat = path.stat()
    except FileNotFoundError:
        return False
    return entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns


def _stamp_entry(path: Path, digest: str) -> dict:
    stat = path.stat()
    return {"sha256": digest, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _record(dest: Path, stem: str, digest: str) -> None:
    stamp = _read_stamp(dest)
    stamp[stem] = _stamp_entry(dest / stem, digest)
    _write_stamp(dest, stamp)


def _read_stamp(dest: Path) -> dict:
    try:
        data = json.loads((dest / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return {}  # no stamp or an unreadable one: everything is simply verified again
    return data if isinstance(data, dict) else {}


def _write_stamp(dest: Path, entries: dict) -> None:
    atomic_write_json(dest / STAMP_NAME, entries)
