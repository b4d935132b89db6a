"""The registered event datasets on small folders laid out as the publishers ship them."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest
import torch

from devprune.data import dataset_info, get_dataset
from devprune.errors import DataError
from tests.data_events.writers import (
    aedat2_bytes,
    write_aedat31,
    write_event_npz,
    write_gesture_labels,
    write_nmnist,
)


# ---------------------------------------------------------------------------- N-MNIST
def nmnist_sample(label: int, index: int):
    """x, y, p, t of a tiny sample: ``5 + index`` events, one on the 34x34 border."""
    n = 5 + index
    x = [(label * 3 + i) % 32 + 1 for i in range(n)]
    x[0] = 0  # on the border: counted in the split, then cropped away
    y = [(i * 7) % 32 + 1 for i in range(n)]
    return x, y, [i % 2 for i in range(n)], [100 * i for i in range(n)]


def write_nmnist_folder(folder, per_class=2, test_per_class=1):
    for split, count in (("Train", per_class), ("Test", test_per_class)):
        for label in range(10):
            for i in range(count):
                write_nmnist(folder / split / str(label) / f"{i + 1:05d}.bin",
                             *nmnist_sample(label, i))


@pytest.fixture
def nmnist_root(tmp_path):
    write_nmnist_folder(tmp_path / "nmnist")
    return tmp_path


def test_nmnist_frames_labels_and_crop(nmnist_root):
    assert dataset_info("nmnist").in_shape == (20, 2, 32, 32)
    test = get_dataset("nmnist", "test", nmnist_root, time_steps=4)
    assert len(test) == 10 and test.info.in_shape == (4, 2, 32, 32)
    assert test.targets.tolist() == list(range(10))  # file order: digit folders
    x, labels = test.batch(torch.arange(10))
    assert x.dtype == torch.float32 and x.shape == (10, 4, 2, 32, 32)
    assert torch.equal(labels, test.targets)
    # 5 events, T = 4: frames get 1, 1, 1, 2 events; the border event (frame 0) is cropped.
    assert x.sum(dim=(2, 3, 4))[3].tolist() == [0.0, 1.0, 1.0, 2.0]
    ex, ey, ep, _ = nmnist_sample(3, 0)
    assert x[3, 1, ep[1], ey[1] - 1, ex[1] - 1] == 1  # event 1 at its pixel, shifted by crop


def test_nmnist_train_val_split_and_limit(nmnist_root):
    train = get_dataset("nmnist", "train", nmnist_root, val_fraction=0.25, time_steps=2)
    val = get_dataset("nmnist", "val", nmnist_root, val_fraction=0.25, time_steps=2)
    assert len(train) + len(val) == 20 and len(val) == 5
    limited = get_dataset("nmnist", "train", nmnist_root, val_fraction=0.25, time_steps=2,
                          limit=3)
    assert torch.equal(limited.inputs, train.inputs[:3])


def test_nmnist_zip_and_spikingjelly_layouts_read_the_same(nmnist_root, tmp_path):
    reference = get_dataset("nmnist", "test", nmnist_root, time_steps=3, cache=False)
    zipped = tmp_path / "zipped" / "nmnist"
    zipped.mkdir(parents=True)
    with zipfile.ZipFile(zipped / "Test.zip", "w") as archive:
        for path in sorted((nmnist_root / "nmnist" / "Test").rglob("*.bin")):
            archive.write(path, f"Test/{path.parent.name}/{path.name}")
    from_zip = get_dataset("nmnist", "test", zipped.parent, time_steps=3, cache=False)
    assert torch.equal(from_zip.inputs, reference.inputs)
    npz_root = tmp_path / "sj"
    for label in range(10):
        x, y, p, t = nmnist_sample(label, 0)
        write_event_npz(npz_root / "nmnist" / "events_np" / "test" / str(label) / "00001.npz",
                        t=t, x=x, y=y, p=p)
    from_npz = get_dataset("nmnist", "test", npz_root, time_steps=3, cache=False)
    assert torch.equal(from_npz.inputs, reference.inputs)
    assert torch.equal(from_npz.targets, reference.targets)


def test_second_load_reads_the_frame_cache_not_the_files(nmnist_root):
    first = get_dataset("nmnist", "test", nmnist_root, time_steps=4)
    cache = nmnist_root / "nmnist" / "frames_cache" / "test" / "T4-number-ds1-32x32"
    assert [p.name for p in cache.iterdir()] == ["chunk_0000.npz"]  # 10 samples, one chunk
    for path in (nmnist_root / "nmnist" / "Test").rglob("*.bin"):
        path.write_bytes(b"garbage")  # undecodable: only the cache can answer now
    again = get_dataset("nmnist", "test", nmnist_root, time_steps=4)
    assert torch.equal(again.inputs, first.inputs)
    with pytest.raises(DataError, match="multiple of 5"):
        get_dataset("nmnist", "test", nmnist_root, time_steps=4, cache=False)
    with pytest.raises(DataError, match="multiple of 5"):  # another T: another cache key
        get_dataset("nmnist", "test", nmnist_root, time_steps=5)


def test_missing_dataset_says_what_to_download_and_where(tmp_path):
    for name, words in (("nmnist", "Train.zip"), ("dvs-gesture", "DvsGesture.tar.gz"),
                        ("cifar10-dvs", "airplane.zip")):
        with pytest.raises(DataError, match=words) as err:
            get_dataset(name, "train", tmp_path)
        assert str(tmp_path / name) in str(err.value)


# ----------------------------------------------------------------------- DVS Gesture
def gesture_events(offset: int, classes: list[int]):
    """Events for gestures of 1 ms each starting at ``offset``; gesture g has g + 3 events."""
    events, rows = [], []
    start = offset
    for g, cls in enumerate(classes):
        n = g + 3
        events += [(cls * 10 % 128, g, i % 2, start + 100 * i) for i in range(n)]
        rows.append((cls, start, start + 1000))
        start += 2000
    events.append((1, 1, 1, start + 5))  # after the last gesture: belongs to none
    return events, rows


def write_gesture_folder(folder, with_trial_lists=True):
    recordings = {"user01_fluorescent": [1, 11, 4], "user02_led": [2, 3],
                  "user24_lab": [5, 7, 9]}
    for stem, classes in recordings.items():
        events, rows = gesture_events(10_000, classes)
        write_aedat31(folder / f"{stem}.aedat", events, packet_size=4)
        write_gesture_labels(folder / f"{stem}_labels.csv", rows)
    if with_trial_lists:
        (folder / "trials_to_train.txt").write_text("user01_fluorescent.aedat\nuser02_led.aedat\n")
        (folder / "trials_to_test.txt").write_text("user24_lab.aedat\n")


@pytest.mark.parametrize("with_lists", [True, False])
def test_dvs_gesture_samples_labels_and_splits(tmp_path, with_lists):
    write_gesture_folder(tmp_path / "dvs-gesture" / "DvsGesture", with_lists)
    train = get_dataset("dvs-gesture", "train", tmp_path, val_fraction=0.0, time_steps=2,
                        downsample=4)
    test = get_dataset("dvs-gesture", "test", tmp_path, time_steps=2, downsample=4)
    assert train.info.in_shape == (2, 2, 32, 32) and dataset_info("dvs-gesture").num_classes == 11
    assert sorted(train.targets.tolist()) == [0, 1, 2, 3, 10]  # csv classes 1..11 -> 0..10
    assert test.targets.tolist() == [4, 6, 8]
    counts = test.inputs.sum(dim=(1, 2, 3, 4)).tolist()
    assert counts == [3, 4, 5]  # only events with start <= t < end, none after the last
    # gesture 1 of user24 (class 7): 4 events, T = 2 -> 2 + 2, ON/OFF alternating.
    assert test.inputs[1].sum(dim=(2, 3)).tolist() == [[1, 1], [1, 1]]


def test_dvs_gesture_augmentation_only_on_train(tmp_path):
    write_gesture_folder(tmp_path / "dvs-gesture" / "DvsGesture")
    train = get_dataset("dvs-gesture", "train", tmp_path, val_fraction=0.0, augment=True,
                        time_steps=2)
    test = get_dataset("dvs-gesture", "test", tmp_path, augment=True, time_steps=2)
    assert train.augment is not None and test.augment is None
    x, _ = train.batch(torch.arange(len(train)), torch.Generator().manual_seed(0))
    assert x.shape == (len(train), 2, 2, 128, 128)


# ----------------------------------------------------------------------- CIFAR10-DVS
def test_cifar10dvs_class_folders_and_ninety_ten_split(tmp_path):
    classes = ["airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck"]
    for label, name in enumerate(classes):
        for i in range(10):
            raw_x = [label, label + 1 + i]
            path = tmp_path / "cifar10-dvs" / name / f"cifar10_{name}_{i}.aedat"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(aedat2_bytes(raw_x, [2, 3], [0, 1], [10, 20]))
    train = get_dataset("cifar10-dvs", "train", tmp_path, val_fraction=0.0, time_steps=2)
    test = get_dataset("cifar10-dvs", "test", tmp_path, time_steps=2)
    assert len(train) == 90 and len(test) == 10
    assert test.targets.tolist() == list(range(10))
    # name order is lexicographic: cifar10_<c>_9 is the last, so it is the test file.
    frames = test.inputs[3].numpy()
    # raw (x=3, y=2, p=0) at t=10 -> frame 0, x = 127-2, y = 127-3, ON (p = 1 - 0)
    assert frames[0, 1, 124, 125] == 1 and frames[1, 0, 127 - (3 + 1 + 9), 124] == 1
    assert frames.sum() == 2


def test_cifar10dvs_spikingjelly_npz_layout(tmp_path):
    root = tmp_path / "cifar10-dvs" / "events_np" / "cat"
    for i in range(10):
        write_event_npz(root / f"cifar10_cat_{i}.npz", t=[1, 2], x=[i, 5], y=[6, 7], p=[1, 0])
    test = get_dataset("cifar10-dvs", "test", tmp_path, time_steps=1)
    assert test.targets.tolist() == [3]
    assert test.inputs[0, 0, 1, 6, 9] == 1 and test.inputs[0, 0, 0, 7, 5] == 1


def test_corrupt_cache_entry_is_reported_with_the_fix(nmnist_root):
    get_dataset("nmnist", "test", nmnist_root, time_steps=2)
    cache = nmnist_root / "nmnist" / "frames_cache" / "test" / "T2-number-ds1-32x32"
    (cache / "chunk_0000.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="delete"):
        get_dataset("nmnist", "test", nmnist_root, time_steps=2)
    shutil.rmtree(cache)
    assert len(get_dataset("nmnist", "test", nmnist_root, time_steps=2)) == 10


def test_events_after_window_are_dropped_in_window_mode(nmnist_root):
    ds = get_dataset("nmnist", "test", nmnist_root, time_steps=2, frame_method="window",
                     window_us=150, cache=False)
    # sample 0 events at t = 0, 100, 200, 300, 400: windows [0,150) [150,300) keep 3 of them,
    # the first of which is on the cropped border.
    assert ds.inputs[0].sum().item() == 2
    assert np.array_equal(ds.inputs[0].sum(dim=(1, 2, 3)).numpy(), [1, 1])


def test_counts_above_255_are_kept_exactly(tmp_path):
    folder = tmp_path / "nmnist" / "Test"
    write_nmnist(folder / "0" / "00001.bin", [5] * 300, [6] * 300, [1] * 300, list(range(300)))
    write_nmnist(folder / "1" / "00001.bin", [7], [7], [0], [0])
    for cache in (False, True, True):  # no cache, cold cache, warm cache
        ds = get_dataset("nmnist", "test", tmp_path, time_steps=1, cache=cache)
        assert ds.inputs[0, 0, 1, 5, 4].item() == 300 and ds.inputs[1, 0, 0, 6, 6].item() == 1


def test_normalize_false_is_accepted_and_true_refused(nmnist_root):
    from devprune.errors import ConfigError

    assert len(get_dataset("nmnist", "test", nmnist_root, time_steps=2, normalize=False)) == 10
    with pytest.raises(ConfigError, match="event counts"):
        get_dataset("nmnist", "test", nmnist_root, time_steps=2, normalize=True)
