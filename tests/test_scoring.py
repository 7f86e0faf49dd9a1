"""The scoring code behind the headline numbers, on inputs whose scores can be computed by hand.

Constant images make PSNR and SSIM closed-form: an error of d on every pixel gives
PSNR = 10 log10(1 / d^2) dB, and two constant images of values a and b have
SSIM = (2ab + C1) / (a^2 + b^2 + C1) with C1 = (0.01 * data range)^2 (their variances vanish,
so the contrast-structure term is C2 / C2 = 1). SSIM is computed in float32, whose rounding in
the windowed variances moves it by up to a few 1e-4 from the closed form, hence its tolerance.
"""
import math

import pandas as pd
import pytest
import torch
from torch import nn

from inversion.class_inversion.benchmark import judged_top1
from inversion.data.fashion_scenes import Scenes
from inversion.feedforward.evaluate import per_image_scores, summarize
from inversion.zeroshot.evaluate import constant_image_floor, evaluate_depths, speedup_at_equal_quality

C1 = 0.01 ** 2
SSIM_TOL = 1e-3


def constant_ssim(a: float, b: float) -> float:
    return (2 * a * b + C1) / (a * a + b * b + C1)


def constant_images(values, size: int = 8) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 3, size, size).contiguous()


class BrightnessJudge(nn.Module):
    """Class 1 for images darker than 0.45 on average, else class 0."""

    def __init__(self):
        super().__init__()
        self.register_buffer("threshold", torch.tensor(0.45))

    def forward(self, x):
        m = x.float().mean((1, 2, 3))
        return torch.stack([m - self.threshold, self.threshold - m], 1)


class ValueJudge(nn.Module):
    """Reads the class an image encodes as its value times 10 (0.1 -> class 1); ``fixed`` always answers it."""

    def __init__(self, fixed: int | None = None, classes: int = 10):
        super().__init__()
        self.fixed, self.classes = fixed, classes
        self.register_buffer("dummy", torch.zeros(1))

    def forward(self, x):
        n = len(x)
        label = (torch.full((n,), self.fixed) if self.fixed is not None
                 else (x.float().mean((1, 2, 3)) * 10).round().long())
        return nn.functional.one_hot(label, self.classes).float()


class MeanColourProbe:
    """A stand-in for FactorProbe: foreground = mean RGB, background = black, fixed centre and scale."""

    def read(self, images):
        n = len(images)
        return {"foreground": images.float().mean((2, 3)), "background": torch.zeros(n, 3),
                "center": torch.full((n, 2), 16.0), "scale": torch.full((n,), 0.5)}


def two_scenes() -> Scenes:
    values = torch.tensor([102, 153], dtype=torch.uint8)          # 0.4 and 0.6 exactly
    images = values.view(2, 1, 1, 1).expand(2, 3, 8, 8).contiguous()
    return Scenes(images=images, labels=torch.tensor([1, 0]),
                  foreground=torch.tensor([[0.4, 0.4, 0.4], [0.6, 0.6, 0.6]]),
                  background=torch.tensor([[0.3, 0.4, 0.0], [0.0, 0.0, 1.0]]),
                  center=torch.tensor([[19.0, 20.0], [16.0, 16.0]]), scale=torch.tensor([0.25, 0.5]))


def test_per_image_scores_by_hand():
    scenes = two_scenes()
    recon = constant_images([0.5, 0.7])                           # 0.1 brighter than each original
    scores = per_image_scores(recon, scenes, MeanColourProbe(), BrightnessJudge())
    assert list(scores.columns) == ["psnr", "ssim", "judge_agrees", "thumbnail_error", "foreground_error", "background_error",
                                    "center_error", "scale_error"]
    assert scores["psnr"].tolist() == pytest.approx([20.0, 20.0], abs=1e-3)
    assert scores["ssim"].tolist() == pytest.approx([constant_ssim(0.4, 0.5), constant_ssim(0.6, 0.7)], abs=SSIM_TOL)
    assert scores["judge_agrees"].tolist() == [0.0, 1.0]         # 0.4 -> 0.5 crosses the judge's threshold
    assert scores["thumbnail_error"].tolist() == pytest.approx([0.1, 0.1], abs=1e-6)
    assert scores["foreground_error"].tolist() == pytest.approx([0.1 * math.sqrt(3)] * 2, abs=1e-5)
    assert scores["background_error"].tolist() == pytest.approx([0.5, 1.0], abs=1e-6)
    assert scores["center_error"].tolist() == pytest.approx([5.0, 0.0])
    assert scores["scale_error"].tolist() == pytest.approx([0.25, 0.0])


def test_per_image_scores_clamps_and_checks_shapes():
    scenes = two_scenes()
    above = per_image_scores(constant_images([1.5, 1.5]), scenes, MeanColourProbe(), BrightnessJudge())
    assert above["psnr"].tolist() == pytest.approx([10 * math.log10(1 / 0.36), 10 * math.log10(1 / 0.16)], abs=1e-3)
    with pytest.raises(ValueError, match="do not match"):
        per_image_scores(constant_images([0.5]), scenes, MeanColourProbe(), BrightnessJudge())


def test_summarize_means_and_chance_ratios():
    scores = pd.DataFrame({"psnr": [10.0, 20.0], "judge_agrees": [0.0, 1.0], "foreground_error": [0.1, 0.3],
                           "background_error": [0.5, 0.5], "center_error": [2.0, 6.0]})
    assert summarize(scores) == pytest.approx({"psnr": 15.0, "judge_agrees": 0.5, "foreground_error": 0.2,
                                               "background_error": 0.5, "center_error": 4.0})
    out = summarize(scores, chance={"foreground": 0.4, "center": 8.0})
    assert out["foreground_vs_chance"] == pytest.approx(0.5) and out["center_vs_chance"] == pytest.approx(0.5)
    assert "background_vs_chance" not in out, "a factor without a chance reference gets no ratio"


def test_speedup_at_equal_quality():
    trajectory = [(10, 0.5, 15.0), (20, 1.0, 21.0), (30, 1.5, 25.0)]
    reached = speedup_at_equal_quality(21.0, 0.01, trajectory)   # first step with PSNR >= 21: step 20
    assert reached["optimization_steps_to_match"] == 20
    assert reached["speedup"] == pytest.approx(100.0) and reached["speedup_at_equal_psnr"] == pytest.approx(100.0)
    assert reached["speedup_vs_final_optimization"] == pytest.approx(150.0)
    assert reached["optimization_final_psnr"] == 25.0 and reached["optimization_final_seconds_per_image"] == 1.5
    never = speedup_at_equal_quality(30.0, 0.01, trajectory)     # the inverse is better at every step
    assert never["optimization_steps_to_match"] is None and never["speedup_at_equal_psnr"] is None
    assert never["speedup"] == pytest.approx(150.0)


def test_constant_image_floor_by_hand():
    images = constant_images([0.2, 0.6])                          # the mean image is 0.4: error 0.2 on each
    floor = constant_image_floor(images, judge=BrightnessJudge())
    assert floor["psnr"] == pytest.approx(10 * math.log10(1 / 0.04), abs=1e-3)
    assert floor["ssim"] == pytest.approx((constant_ssim(0.2, 0.4) + constant_ssim(0.6, 0.4)) / 2, abs=SSIM_TOL)
    assert floor["judge_agreement"] == pytest.approx(0.5)        # 0.4 is judged like 0.2, not like 0.6
    assert set(constant_image_floor(images)) == {"psnr", "ssim"}


class IdentityChain:
    """A stand-in for BlockChain whose features at every depth are the image itself."""

    names, layers = ["a", "b"], [0, 2, 5]

    def __len__(self):
        return 2

    def __call__(self, x, depth):
        return x


class OffsetInverse:
    """A stand-in for InverseChain that answers depth k with the image brightened by 0.1 / k."""

    def __call__(self, h, depth):
        return h + 0.1 / depth


def test_evaluate_depths_by_hand():
    images = constant_images([0.2, 0.6])
    rows, recs = evaluate_depths(IdentityChain(), OffsetInverse(), images, judge=BrightnessJudge())
    assert [(r["depth"], r["cut"], r["layers"]) for r in rows] == [(1, "a", 2), (2, "b", 5)]
    # error 0.1 / k on every pixel: PSNR = 20 + 20 log10(k) dB
    assert [r["psnr"] for r in rows] == pytest.approx([20.0, 20 + 20 * math.log10(2)], abs=1e-3)
    assert rows[1]["ssim"] == pytest.approx((constant_ssim(0.2, 0.25) + constant_ssim(0.6, 0.65)) / 2, abs=SSIM_TOL)
    assert [r["judge_agreement"] for r in rows] == [1.0, 1.0]    # 0.2 -> 0.3 stays dark, 0.6 -> 0.7 stays bright
    assert torch.allclose(recs[2], images + 0.05)
    only = evaluate_depths(IdentityChain(), OffsetInverse(), images, depths=[2])[0]
    assert [r["depth"] for r in only] == [2] and "judge_agreement" not in only[0]


def test_judged_top1_averages_judges_per_image():
    images = constant_images([0.0, 0.1, 0.2, 0.3], size=2)       # encode the classes 0, 1, 2, 3
    targets = torch.tensor([0, 1, 2, 0])
    # the reading judge hits images 0-2, the judge that always says 0 hits images 0 and 3
    out = judged_top1(images, targets, {"reads": ValueJudge(), "zero": ValueJudge(fixed=0)}, n_boot=500)
    assert out["images"] == 4 and out["top1"] == pytest.approx((1 + 0.5 + 0.5 + 0.5) / 4)
    assert 0.5 <= out["top1_low"] <= out["top1"] <= out["top1_high"] <= 1.0
    perfect = judged_top1(images, torch.tensor([0, 1, 2, 3]), {"reads": ValueJudge()}, n_boot=200)
    assert perfect["top1"] == perfect["top1_low"] == perfect["top1_high"] == 1.0


def test_judged_top1_bootstrap_interval_matches_the_binomial_width():
    n = 400                                                        # half the images hit: p = 0.5
    images = constant_images([0.1] * n, size=2)
    targets = torch.tensor([1, 0] * (n // 2))
    out = judged_top1(images, targets, {"reads": ValueJudge()}, n_boot=4000, seed=1)
    half_width = 1.96 * math.sqrt(0.25 / n)                        # 0.049
    assert out["top1"] == 0.5
    assert out["top1_low"] == pytest.approx(0.5 - half_width, abs=0.01)
    assert out["top1_high"] == pytest.approx(0.5 + half_width, abs=0.01)
    again = judged_top1(images, targets, {"reads": ValueJudge()}, n_boot=4000, seed=1)
    assert again == out, "the interval is seeded"


def test_thumbnail_error_by_hand():
    from inversion.feedforward.evaluate import thumbnail_error

    a = torch.zeros(1, 3, 8, 8)
    b = a.clone()
    b[:, :, :2, :2] = 1.0                     # one of the 16 thumbnail cells becomes 1 in every channel
    assert thumbnail_error(a, b).tolist() == pytest.approx([math.sqrt(1 / 16)])
    noise = torch.rand(2, 3, 8, 8)            # texture inside a cell is invisible to the thumbnail
    flat = torch.nn.functional.interpolate(torch.nn.functional.adaptive_avg_pool2d(noise, 4), scale_factor=2)
    assert thumbnail_error(noise, flat).tolist() == pytest.approx([0.0, 0.0], abs=1e-6)


def test_seed_rule_counts_only_differences_beyond_twice_the_larger_std():
    from inversion.feedforward.evaluate import seed_rule

    clear = seed_rule([0.50, 0.52, 0.54], [0.30, 0.31, 0.32])
    assert clear["verdict"] == "a better"
    assert clear["threshold"] == pytest.approx(2 * 0.02)
    assert clear["difference"] == pytest.approx(0.21)
    assert seed_rule([0.50, 0.52, 0.54], [0.30, 0.31, 0.32], higher_is_better=False)["verdict"] == "b better"
    noisy = seed_rule([0.40, 0.50, 0.60], [0.35, 0.36, 0.37])   # difference 0.14 < 2 x 0.1
    assert noisy["verdict"] == "no difference"
    assert seed_rule([0.1, 0.2], [0.5, 0.6])["verdict"] == "b better"
    with pytest.raises(ValueError, match="at least 2 seeds"):
        seed_rule([0.5], [0.4, 0.3])


def test_seed_comparisons_turn_the_rule_into_verdicts_per_model_and_metric():
    import pandas as pd

    from inversion.feedforward.evaluate import describe_comparisons, seed_comparisons

    per_seed = pd.DataFrame({"model": ["std"] * 3 + ["rob"] * 3,
                             "psnr": [10.0, 10.1, 10.2, 12.0, 12.1, 12.2],              # rob clearly higher
                             "thumbnail_error": [0.30, 0.31, 0.32, 0.40, 0.41, 0.42]})  # rob clearly higher: worse
    table = seed_comparisons(per_seed, "std", ["rob"], ["psnr", "thumbnail_error"])
    assert table.loc[("rob", "psnr"), "verdict"] == "better"
    assert table.loc[("rob", "psnr"), "difference"] == pytest.approx(2.0)
    assert table.loc[("rob", "thumbnail_error"), "verdict"] == "worse"
    lines = describe_comparisons(table, prefix="decoder, ").splitlines()
    assert lines == ["decoder, rob vs std, psnr: 12.1000 +- 0.1000 vs 10.1000 +- 0.1000 (difference +2.0000, "
                     "seed rule 0.2000) -> better",
                     "decoder, rob vs std, thumbnail_error: 0.4100 +- 0.0100 vs 0.3100 +- 0.0100 (difference "
                     "+0.1000, seed rule 0.0200) -> worse"]


def test_chance_reference_without_factors_has_the_thumbnail_only():
    from inversion.data.cifar10 import Cifar10
    from inversion.feedforward.evaluate import chance_reference

    images = torch.stack([torch.zeros(3, 4, 4, dtype=torch.uint8), torch.full((3, 4, 4), 255, dtype=torch.uint8)])
    data = Cifar10(images, torch.tensor([0, 0]), "exact")
    assert chance_reference(data) == pytest.approx({"thumbnail": 1.0})     # each one's partner is the other


def test_seed_comparisons_name_the_verdict_from_the_models_side():
    from inversion.feedforward.evaluate import seed_comparisons

    per_seed = pd.DataFrame({"model": ["std"] * 3 + ["rob"] * 3,
                             "ssim": [0.30, 0.31, 0.32, 0.50, 0.52, 0.54],
                             "thumbnail_error": [0.20, 0.21, 0.22, 0.10, 0.30, 0.50]})
    table = seed_comparisons(per_seed, "std", ["rob"], ["ssim", "thumbnail_error"])
    assert table.loc[("rob", "ssim"), "verdict"] == "better"
    assert table.loc[("rob", "thumbnail_error"), "verdict"] == "no difference"   # seed std 0.2 swamps it
    assert table.loc[("rob", "ssim"), "versus_mean"] == pytest.approx(0.31)
