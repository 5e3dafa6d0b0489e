"""Edge cases of the evaluation statistics: the paired gain interval, empty summaries, unanswered variants."""

from __future__ import annotations

import pytest

from medtune.eval import metrics


def _paired(both: int, a_only: int, b_only: int, neither: int) -> tuple[list[bool], list[bool]]:
    """Per-item correctness of A and B from the four cells of the paired 2x2 table."""
    a = [True] * both + [True] * a_only + [False] * b_only + [False] * neither
    b = [True] * both + [False] * a_only + [True] * b_only + [False] * neither
    return a, b


def test_gain_interval_is_newcombes_hybrid_score_interval():
    # Fagerland, Lydersen & Laake (2014) / contingencytables, Cavo et al. (2012): 59, 6, 16, 80 ->
    # Newcombe square-and-add -0.0621 (-0.1186 to -0.0046) for first minus second; B - A here is its mirror.
    d = metrics.paired_difference(*_paired(59, 6, 16, 80))
    assert d == {"gain": 0.0621, "ci95": [0.0046, 0.1186], "method": "Newcombe's hybrid score interval"}
    # negative correlation (both*neither < a_only*b_only: phi uncorrected), by hand from Newcombe (1998) method 10
    assert metrics.paired_difference(*_paired(2, 8, 5, 1))["ci95"] == [-0.5444, 0.2346]
    # docs/benchmarks.md's dev_vignettes row (base 19/88, tuned 68/88, b=2 c=51): paired Wald gave +0.444 to +0.670
    assert metrics.paired_difference(*_paired(17, 2, 51, 18)) == {
        "gain": 0.5568, "ci95": [0.4276, 0.6551], "method": "Newcombe's hybrid score interval"}


@pytest.mark.parametrize("cells", [(5, 0, 0, 5), (40, 0, 0, 60), (1, 0, 4, 0), (0, 0, 5, 0), (0, 5, 0, 0), (1, 9, 5, 5)])
def test_gain_interval_never_collapses_or_leaves_the_range(cells):
    """The paired Wald interval was [0, 0] without discordant items and [0.449, 1.151] for 1, 0, 4, 0."""
    d = metrics.paired_difference(*_paired(*cells))
    lo, hi = d["ci95"]
    assert -1.0 <= lo <= d["gain"] <= hi <= 1.0
    assert hi - lo > 0.01


def test_gain_of_no_items_is_none_and_unequal_results_are_refused():
    assert metrics.paired_difference([], []) == {"gain": None, "ci95": None, "method": "Newcombe's hybrid score interval"}
    with pytest.raises(ValueError, match="same items: 3 vs 1 results"):
        metrics.paired_difference([True, False, True], [False])


def test_an_accuracy_of_no_items_is_none_not_zero():
    s = metrics.accuracy_summary([], unparseable=0)
    assert s["n"] == 0 and s["accuracy"] is None and s["ci95"] == [0.0, 1.0]
    assert metrics.wilson_interval(0, 0) == (0.0, 1.0)


def test_groups_without_any_parsed_answer_are_not_consistent():
    rows = [{"group": {"group_id": f"g{g}"}, "pred": None} for g in range(3) for _ in range(2)]
    rows += [{"group": {"group_id": "g9"}, "pred": "B"}, {"group": {"group_id": "g9"}, "pred": "B"}]
    cf = metrics.counterfactual_consistency(rows)
    assert cf["groups"] == 4 and cf["consistency"] == 0.25 and cf["inconsistent_groups"] == ["g0", "g1", "g2"]
