"""distill.losses against identities that hold whatever the implementation."""

import math

import pytest
import torch
import torch.nn.functional as F

from distill.training.losses import distillation_loss, gold_cross_entropy, kl_with_temperature, mse_logits


def test_mse_is_zero_on_equal_logits_and_matches_the_formula():
    z = torch.randn(4, 3)
    assert mse_logits(z, z).item() == 0.0
    t = z + 2.0
    assert mse_logits(z, t).item() == pytest.approx(4.0)


def test_kl_is_zero_on_equal_logits_and_positive_otherwise():
    z = torch.randn(5, 3)
    assert kl_with_temperature(z, z, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert kl_with_temperature(z, z.flip(1), 2.0).item() > 0


def test_kl_equals_t_squared_times_plain_kl_of_softened_logits():
    s, t, T = torch.randn(6, 4), torch.randn(6, 4), 3.0
    p_t = F.softmax(t / T, -1)
    plain = (p_t * (p_t.log() - F.log_softmax(s / T, -1))).sum(-1).mean()
    assert kl_with_temperature(s, t, T).item() == pytest.approx(T * T * plain.item(), rel=1e-5)


def test_kl_gradient_is_t_times_probability_gap():
    # d/dz_s [T^2 KL(p_t || p_s)] = T (p_s - p_t) / B  (Hinton et al. 2015)
    s = torch.randn(3, 4, requires_grad=True)
    t, T = torch.randn(3, 4), 2.0
    kl_with_temperature(s, t, T).backward()
    expected = T * (F.softmax(s.detach() / T, -1) - F.softmax(t / T, -1)) / 3
    assert torch.allclose(s.grad, expected, atol=1e-6)


def test_alpha_one_is_plain_cross_entropy_and_alpha_mixes_linearly():
    s, t = torch.randn(8, 2), torch.randn(8, 2)
    y = torch.randint(0, 2, (8,))
    ce = F.cross_entropy(s, y).item()
    assert distillation_loss(s, t, y, "mse", alpha=1.0)["loss"].item() == pytest.approx(ce)
    mse = mse_logits(s, t).item()
    assert distillation_loss(s, t, y, "mse", alpha=0.0)["loss"].item() == pytest.approx(mse)
    mixed = distillation_loss(s, t, y, "mse", alpha=0.25)["loss"].item()
    assert mixed == pytest.approx(0.25 * ce + 0.75 * mse, rel=1e-6)


def test_rows_without_gold_labels_only_feed_the_distillation_term():
    s = torch.randn(4, 2)
    y = torch.tensor([1, -1, 0, -1])
    assert gold_cross_entropy(s, y).item() == pytest.approx(F.cross_entropy(s[[0, 2]], y[[0, 2]]).item())
    assert gold_cross_entropy(s, torch.full((4,), -1)).item() == 0.0
    out = distillation_loss(s, s, torch.full((4,), -1), "kl", alpha=0.5, temperature=1.0)
    assert math.isfinite(out["loss"].item())


def test_unknown_loss_is_rejected():
    with pytest.raises(ValueError, match="unknown loss"):
        distillation_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), "l1")
