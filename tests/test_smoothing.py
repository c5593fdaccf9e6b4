"""Smoothing: EMA of probabilities and hysteresis before the label changes."""

import numpy as np

from rtser.smoothing import Smoother


def test_label_holds_until_another_leads_by_the_margin():
    smoother = Smoother(alpha=1.0, margin=0.2)
    assert smoother.update(np.array([0.6, 0.4]))[1] == 0
    assert smoother.update(np.array([0.45, 0.55]))[1] == 0  # leads by 0.1 only
    assert smoother.update(np.array([0.35, 0.65]))[1] == 1  # leads by 0.3


def test_ema_averages_and_reset_forgets():
    smoother = Smoother(alpha=0.5, margin=0.0)
    smoother.update(np.array([1.0, 0.0]))
    probs, label = smoother.update(np.array([0.0, 1.0]))
    np.testing.assert_allclose(probs, [0.5, 0.5])
    smoother.reset()
    probs, label = smoother.update(np.array([0.2, 0.8]))
    np.testing.assert_allclose(probs, [0.2, 0.8])
    assert label == 1
