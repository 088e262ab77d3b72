"""Golden loss and frequency values, and the NumPy metrics (AUROC, curves, thresholds, confusion)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from training.metrics import auroc, choose_threshold, confusion, pr_curve, roc_curve, split_metrics, valid_auroc
from training.stats import PixelStats, class_frequencies, loss_weights

COURSE_LABELS = np.array([[1, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1], [1, 0, 1]])


def test_class_frequencies_golden():
    pos, neg = class_frequencies(COURSE_LABELS)
    np.testing.assert_allclose(pos, [0.8, 0.4, 0.8])
    np.testing.assert_allclose(neg, [0.2, 0.6, 0.2])
    w_pos, w_neg = loss_weights(COURSE_LABELS)
    np.testing.assert_allclose(w_pos, [0.2, 0.6, 0.2])  # w_pos = freq_neg
    np.testing.assert_allclose(w_neg, [0.8, 0.4, 0.8])  # w_neg = freq_pos


def test_frequencies_with_element_weights():
    y = np.array([[1, 0], [0, 0], [1, 1]], float)
    w = np.array([[1, 0], [1, 1], [0, 1]], float)  # weight 0 = ignored uncertain label
    pos, neg = class_frequencies(y, w)
    np.testing.assert_allclose(pos, [0.5, 0.5])
    np.testing.assert_allclose(neg, [0.5, 0.5])


@pytest.mark.training
@pytest.mark.parametrize("p", [0.7, 0.3])
def test_weighted_loss_golden(p):
    pytest.importorskip("keras")
    from training.loss import make_loss, weighted_bce

    y_true = np.array([[1, 1, 1], [1, 1, 0], [0, 1, 0], [1, 0, 1]], np.float32)
    y_pred = np.full((4, 3), p, np.float32)
    w_p, w_n = [0.25, 0.25, 0.5], [0.75, 0.75, 0.5]
    assert float(weighted_bce(y_true, y_pred, w_p, w_n, epsilon=1)) == pytest.approx(-0.4956, abs=5e-5)
    keras_loss = make_loss(w_p, w_n, epsilon=1)  # what model.compile gets
    assert float(keras_loss(y_true, y_pred)) == pytest.approx(-0.4956, abs=5e-5)
    # per-element weights (uncertain labels) reach the loss
    sw = np.ones((4, 3), np.float32)
    sw[0, 0] = 0.0
    expected = float(weighted_bce(y_true, y_pred, w_p, w_n, epsilon=1, sample_weight=sw))
    assert float(keras_loss(y_true, y_pred, sample_weight=sw)) == pytest.approx(expected, abs=1e-6)
    assert expected != pytest.approx(-0.4956, abs=1e-3)


def test_pixel_stats_streaming():
    rng = np.random.default_rng(0)
    parts = [rng.random((3, 8, 8)) for _ in range(4)]
    acc = PixelStats()
    for p in parts:
        acc.add(p)
    allpx = np.concatenate([p.ravel() for p in parts])
    assert acc.mean == pytest.approx(allpx.mean(), abs=1e-12)
    assert acc.std == pytest.approx(allpx.std(), abs=1e-12)


def _auc_bruteforce(y, s):
    pos = s[y == 1]
    neg = s[y == 0]
    return np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(pos, neg)])


def test_auroc_matches_pairwise_definition_with_ties():
    rng = np.random.default_rng(3)
    for _ in range(5):
        y = rng.integers(0, 2, 60)
        s = np.round(rng.random(60) + 0.3 * y, 1)  # rounding makes ties
        assert auroc(y, s) == pytest.approx(_auc_bruteforce(y, s), abs=1e-12)
    fpr, tpr, _ = roc_curve(y, s)
    assert np.trapezoid(tpr, fpr) == pytest.approx(auroc(y, s), abs=1e-12)


def test_auroc_single_class_is_nan_and_uncertain_is_ignored():
    assert math.isnan(auroc(np.zeros(5), np.linspace(0, 1, 5)))
    y = np.array([1, 0, -1, -1, 1, 0])
    s = np.array([0.9, 0.1, 0.0, 1.0, 0.8, 0.2])
    assert auroc(y, s) == 1.0  # the -1 films would break it if counted


def test_thresholds():
    y = np.array([0, 0, 0, 1, 0, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.6, 0.7, 0.9])
    few = {"min_positives": 1, "min_negatives": 1}  # the arithmetic; the minimum has its own test
    assert choose_threshold(y, s, "youden", **few) == pytest.approx(0.6)  # TPR 0.75, FPR 0 → J = 0.75
    assert choose_threshold(y, s, "sensitivity", 1.0, **few) == pytest.approx(0.35)
    assert choose_threshold(y, s, "fixed", 0.42) == 0.42
    assert choose_threshold(np.zeros(8), s, "youden") == 0.5  # no AUROC → default
    c = confusion(y, s, 0.6)
    assert (c["tp"], c["fp"], c["fn"], c["tn"]) == (3, 0, 1, 4)
    rec, prec, ap = pr_curve(y, s)
    assert rec[-1] == 1.0 and 0 < ap <= 1


# Golden values worked out by hand (the pairs are listed so the numbers can be checked on paper).
def test_auroc_golden_small_example():
    # positives 0.35, 0.8 against negatives 0.1, 0.4: 0.35 beats 0.1 only; 0.8 beats both → 3 of 4 pairs
    assert auroc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75, abs=1e-15)
    # positives 0.35, 0.9 against 0.1, 0.4, 0.8: 1 + 3 of 6 pairs
    assert auroc(np.array([0, 0, 1, 0, 1]), np.array([0.1, 0.4, 0.35, 0.8, 0.9])) == pytest.approx(4 / 6, abs=1e-15)
    # every positive below every negative
    assert auroc(np.array([1, 1, 0, 0]), np.array([0.1, 0.2, 0.3, 0.4])) == 0.0


def test_auroc_golden_ties_count_half():
    # positives 0.5, 0.9 against 0.1, 0.5: 1 + 0.5 (the tie) + 1 + 1 = 3.5 of 4 pairs
    assert auroc(np.array([0, 0, 1, 1]), np.array([0.1, 0.5, 0.5, 0.9])) == pytest.approx(0.875, abs=1e-15)
    # all scores equal: every pair is a tie
    assert auroc(np.array([0, 1, 0, 1, 1]), np.full(5, 0.3)) == pytest.approx(0.5, abs=1e-15)


def test_single_class_present_today():
    """One label value (after leaving out uncertain films): no AUROC, no AP, default threshold,
    omitted from the mean; confusion still counts the films, with the missing rate as None."""
    s = np.array([0.2, 0.6, 0.9])
    assert math.isnan(auroc(np.ones(3), s))
    assert math.isnan(auroc(np.array([1, -1, 1]), s))  # uncertain is not a negative
    assert choose_threshold(np.ones(3), s, "youden") == 0.5
    assert choose_threshold(np.ones(3), s, "sensitivity", 0.9) == 0.5
    assert math.isnan(pr_curve(np.zeros(3), s)[2])
    c = confusion(np.ones(3), s, 0.5)
    assert (c["tp"], c["fp"], c["fn"], c["tn"]) == (2, 0, 1, 0)
    assert c["sensitivity"] == pytest.approx(2 / 3) and c["specificity"] is None
    y = np.array([[1, 0], [1, 1], [1, 0]])
    p = np.array([[0.2, 0.1], [0.6, 0.8], [0.9, 0.3]])
    m = split_metrics(("A", "B"), y, p, {"A": 0.5, "B": 0.5})
    assert m["auroc"] == {"A": None, "B": 1.0} and m["omitted"] == ["A"] and m["mean_auroc"] == 1.0
    assert m["average_precision"]["A"] == 1.0 and m["films"] == 3  # AP needs positives only
    assert valid_auroc({"splits": {"valid": m}}) == {"B": 1.0}
    assert valid_auroc({"splits": {}}) == {}


def test_roc_curve_golden_points():
    fpr, tpr, thr = roc_curve(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    np.testing.assert_array_equal(thr, [np.inf, 0.8, 0.4, 0.35, 0.1])
    np.testing.assert_array_equal(tpr, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_array_equal(fpr, [0, 0, 0.5, 0.5, 1])
    # tied scores make one point, not a staircase
    fpr, tpr, thr = roc_curve(np.array([0, 0, 1, 1]), np.array([0.1, 0.5, 0.5, 0.9]))
    np.testing.assert_array_equal(thr, [np.inf, 0.9, 0.5, 0.1])
    np.testing.assert_array_equal(tpr, [0, 0.5, 1, 1])
    np.testing.assert_array_equal(fpr, [0, 0, 0.5, 1])


def test_average_precision_golden():
    # ranked 0.8 (+), 0.4 (−), 0.35 (+), 0.1 (−): AP = 0.5·1 + 0.5·(2/3)
    rec, prec, ap = pr_curve(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    assert ap == pytest.approx(5 / 6, abs=1e-15)
    np.testing.assert_allclose(rec, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(prec, [1, 1, 0.5, 2 / 3, 0.5])


def test_youden_golden_and_its_tie_break():
    # thresholds 0.8: J = 0.5 − 0; 0.4: 0.5 − 0.5; 0.35: 1 − 0.5 = 0.5; 0.1: 0 → the first maximum (the
    # higher threshold, fewer false positives) wins the tie
    y, s = np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])
    few = {"min_positives": 1, "min_negatives": 1}  # the arithmetic; the minimum has its own test
    assert choose_threshold(y, s, "youden", **few) == pytest.approx(0.8)
    # the sensitivity method: the highest threshold with TPR ≥ target
    assert choose_threshold(y, s, "sensitivity", 0.5, **few) == pytest.approx(0.8)
    assert choose_threshold(y, s, "sensitivity", 0.9, **few) == pytest.approx(0.35)
    assert choose_threshold(y, s, "sensitivity", **few) == pytest.approx(0.35)  # target 0.9 by default
    # a score above 1 (never from a sigmoid) cannot push the threshold out of [0, 1]; +inf is never chosen
    assert choose_threshold(np.array([0, 1]), np.array([0.2, 1.5]), "youden", **few) == 1.0
    with pytest.raises(ValueError, match="unknown threshold method"):
        choose_threshold(y, s, "f1")


def test_confusion_golden_counts_at_the_threshold():
    y = np.array([1, 1, 1, 0, 0, 0, -1])
    s = np.array([0.9, 0.5, 0.2, 0.5, 0.3, 0.1, 0.99])
    c = confusion(y, s, 0.5)  # score ≥ threshold is positive; the uncertain film is not counted
    assert (c["tp"], c["fp"], c["fn"], c["tn"]) == (2, 1, 1, 2)
    assert c["sensitivity"] == pytest.approx(2 / 3) and c["specificity"] == pytest.approx(2 / 3)
    c = confusion(y, s, 0.95)
    assert (c["tp"], c["fp"], c["fn"], c["tn"]) == (0, 0, 3, 3) and c["sensitivity"] == 0.0


def test_a_validation_split_with_one_positive_gives_no_youden_threshold():
    """Issue #13: with one positive, Youden's J sits on that film's score (here 0.004: every
    film above it positive). The label keeps the default, and says so."""
    from training.metrics import DEFAULT_THRESHOLD, MIN_NEGATIVES, MIN_POSITIVES, defaulted_labels, threshold_record

    y = np.zeros(15)
    y[3] = 1
    s = np.linspace(0.9, 0.0, 15)
    s[3] = 0.004
    assert choose_threshold(y, s, "youden", min_positives=1, min_negatives=1) == pytest.approx(0.004)
    assert choose_threshold(y, s, "youden") == DEFAULT_THRESHOLD
    assert choose_threshold(y, s, "sensitivity", 0.9) == DEFAULT_THRESHOLD
    # enough of each: chosen
    rng = np.random.default_rng(0)
    y2 = np.r_[np.ones(MIN_POSITIVES), np.zeros(MIN_NEGATIVES)]
    s2 = np.r_[rng.uniform(0.6, 0.9, MIN_POSITIVES), rng.uniform(0.1, 0.4, MIN_NEGATIVES)]
    assert choose_threshold(y2, s2, "youden") == pytest.approx(s2[:MIN_POSITIVES].min())
    # one short on either side: the default
    assert choose_threshold(y2[1:], s2[1:], "youden") == DEFAULT_THRESHOLD
    assert choose_threshold(y2[:-1], s2[:-1], "youden") == DEFAULT_THRESHOLD
    # uncertain films count as neither
    assert choose_threshold(np.r_[y2, -np.ones(3)][1:], np.r_[s2, 0.5, 0.5, 0.5][1:], "youden") == DEFAULT_THRESHOLD
    both = np.stack([y, y2.tolist() + [0] * 5], axis=1)
    assert defaulted_labels(("A", "B"), both, "youden") == ["A"]
    assert defaulted_labels(("A", "B"), both, "fixed") == []
    rec = threshold_record(("A", "B"), both, "youden")
    assert rec["defaulted"] == ["A"] and rec["default"] == DEFAULT_THRESHOLD and rec["min_positives"] == MIN_POSITIVES
