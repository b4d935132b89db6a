"""Run labels in a comparison report: the fewest trailing path parts that tell runs apart."""

from pathlib import Path

from devprune.runner.report import _short_names


def test_grid_runs_are_labelled_by_their_setting() -> None:
    paths = [Path("out/dense/seed-0"), Path("out/dpap/seed-0"), Path("out/dpap/seed-1")]
    assert _short_names(paths) == ["dense/seed-0", "dpap/seed-0", "dpap/seed-1"]


def test_distinct_names_stay_short_and_a_repeated_run_keeps_its_name() -> None:
    assert _short_names([Path("a/x"), Path("b/y")]) == ["x", "y"]
    assert _short_names([Path("a/x"), Path("a/x")]) == ["x", "x"]
