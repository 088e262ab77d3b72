"""Golden loss and frequency values, and the NumPy metrics (AUROC, thresholds)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from training.evaluate import auroc, choose_threshold, confusion, pr_curve, roc_curve
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
    assert choose_threshold(y, s, "youden") == pytest.approx(0.6)  # TPR 0.75, FPR 0 → J = 0.75
    assert choose_threshold(y, s, "sensitivity", 1.0) == pytest.approx(0.35)
    assert choose_threshold(y, s, "fixed", 0.42) == 0.42
    assert choose_threshold(np.zeros(8), s, "youden") == 0.5  # no AUROC → default
    c = confusion(y, s, 0.6)
    assert (c["tp"], c["fp"], c["fn"], c["tn"]) == (3, 0, 1, 4)
    rec, prec, ap = pr_curve(y, s)
    assert rec[-1] == 1.0 and 0 < ap <= 1
