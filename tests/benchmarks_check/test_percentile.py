"""The percentile benchmark times devprune's exact selection against numpy's on equal
results, with and without a population. Small, fast."""

from benchmarks.bench_percentile import QS, bench_case, markdown


def test_bench_case_checks_equal_results_above_the_bracketing_size():
    for alive in (None, 0.8):
        for q in QS:
            row = bench_case((1 << 18) + 7, alive, q, repeats=1)  # the sampled bracket runs
            assert row["equal"], row
            assert row["devprune_ms"] > 0 and row["numpy_ms"] > 0


def test_markdown_lists_every_case():
    rows = [bench_case(1000, None, 75.0, repeats=1), bench_case(1000, 0.8, 0.0, repeats=1)]
    text = markdown({"torch": "t", "numpy": "n", "repeats": 1, "load": [0.0, 0.0],
                     "cases": rows})
    assert "| 1,000 | all | 75 |" in text and "| 1,000 | 80% | 0 |" in text
