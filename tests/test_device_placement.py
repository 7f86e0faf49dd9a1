"""Every notebook's main loop keeps its tensors on the model's device.

The paper profile runs on a GPU; these tests run on any CPU. The model goes to PyTorch's ``meta``
device (tensors with shapes and no data), which stands in for the GPU: a tensor made on the CPU
inside a loop meets a meta tensor in some operation and raises "Tensor on device cpu is not on the
expected device meta". Where a loop reads a value back to the host (``loss.item()``, ``.cpu()``)
the meta device raises a different error, after the step has run; :func:`runs_on_meta` accepts
exactly that one. The zero-shot code of notebook 05 (splitting, synthesized data, every training
mode) and the generator chain of notebook 06 are covered by
``tests/test_zeroshot_recipe.py::test_every_tensor_is_made_on_the_models_device``.
"""
from __future__ import annotations

import pytest
import torch

from inversion import class_inversion as ci
from inversion.models import training, zoo
from inversion.models.architectures import Classifier, InputConfig, resnet, vit

META = torch.device("meta")
# what the meta device raises when a value is read back to the host (the step itself has run)
READBACK = ("Cannot copy out of meta tensor", "cannot be called on meta tensors")


def runs_on_meta(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``; a read-back of a meta value ends it quietly, any other error is raised."""
    try:
        return fn(*args, **kwargs)
    except (RuntimeError, NotImplementedError) as error:
        if not any(text in str(error) for text in READBACK):
            raise
        return None


def frozen(model: torch.nn.Module) -> torch.nn.Module:
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def tiny_cnn(size: int = 16) -> Classifier:
    torch.manual_seed(0)
    return Classifier(resnet(channels=(4, 8), blocks=(1, 1)), InputConfig(input_size=(3, size, size)), "tiny-cnn")


def tiny_vit(size: int = 16) -> Classifier:
    torch.manual_seed(0)
    return Classifier(vit(img_size=size, patch_size=8, embed_dim=12, depth=1, num_heads=2),
                      InputConfig(input_size=(3, size, size)), "tiny-vit")


def test_runs_on_meta_lets_device_mix_ups_through():
    """The helper hides only read-backs; a CPU tensor meeting a meta tensor still fails the test."""
    model = frozen(tiny_cnn()).to(META)
    with pytest.raises(RuntimeError, match="not on the expected device"):
        runs_on_meta(model, torch.rand(1, 3, 16, 16))
    assert runs_on_meta(lambda: model(torch.rand(1, 3, 16, 16, device=META)).cpu()) is None


# --- notebook 01: class inversion (PII, DeepDream, DeepInversion, feature visualization) ------------
@pytest.mark.parametrize("method", ["pii", "pii-upsample-flip", "deepdream", "deepinversion"])
def test_class_inversion_step_on_the_models_device(method):
    model = frozen(tiny_cnn()).to(META)
    config = {"pii": ci.PIIConfig(steps_per_stage=1, stages=2, copies=2),          # fused augmentation, stage sizes
              "pii-upsample-flip": ci.PIIConfig(steps_per_stage=1, stages=2, copies=2, flip=True,
                                                stage_input="upsample"),          # Jitter, Flip, Ensemble, ColorShift
              "deepdream": ci.DeepDreamConfig(steps=1),
              "deepinversion": ci.DeepInversionConfig(steps=1)}[method]           # BatchNorm statistics hooks
    result = ci.invert(model, [0, 1], config, progress=False)
    assert result.images.device == META and result.images.shape == (2, 3, 16, 16)
    assert result.history["loss"].device == META and result.history["loss"].shape == (config.total_steps,)


def test_pii_on_a_vit_and_feature_visualization_on_the_models_device():
    model = frozen(tiny_vit()).to(META)
    result = ci.invert(model, [3], ci.PIIConfig(steps_per_stage=1, stages=2, copies=2), progress=False)
    assert result.images.device == META
    units = ci.visualize_units(model, ci.vit_ffn_layer(model, 0), [0, 1], ci.PIIConfig(steps_per_stage=1, stages=2,
                                                                                       copies=2), progress=False)
    assert units.images.device == META and units.images.shape == (2, 3, 16, 16)
    cnn = frozen(tiny_cnn()).to(META)
    units = ci.visualize_units(cnn, "net.layer2", [0, 1], ci.PIIConfig(steps_per_stage=1, stages=2, copies=2),
                               progress=False)
    assert units.images.device == META


def test_judging_moves_images_to_the_models_device():
    """``logits_of`` (cross-model judging) runs the judge on its own device; only the copy back fails on meta."""
    judge = frozen(tiny_cnn()).to(META)
    with pytest.raises(NotImplementedError, match="Cannot copy out of meta tensor"):
        ci.evaluate.logits_of(judge, torch.rand(4, 3, 16, 16))


# --- notebooks 00 and 03: training the zoo (plain and robust) --------------------------------------
@pytest.mark.parametrize("objective", ["standard", "label_smoothing", "mixup", "adversarial"])
def test_train_step_on_the_models_device(objective):
    """One optimizer step of the zoo's loop: uint8 CPU batch in, augmented and trained on the device."""
    model = tiny_cnn().to(META).train()
    recipe = training.Recipe(objective=objective, pgd_steps=1, precision="bf16" if objective == "standard" else "fp32")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    images, labels = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8), torch.randint(0, 10, (4,))
    loss = training.train_step(model, opt, images, labels, recipe, torch.Generator().manual_seed(0), META,
                               torch.channels_last)
    assert loss.device == META and loss.shape == ()


def test_training_loop_and_attacks_on_the_models_device():
    model = tiny_cnn()
    images, labels = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8), torch.randint(0, 10, (8,))
    recipe = training.Recipe(objective="adversarial", epochs=1, batch_size=4, pgd_steps=1)
    runs_on_meta(training.train, model, images, labels, recipe, device=META)   # ends at the first loss read-back
    assert next(model.parameters()).device == META
    frozen(model)
    x, y = torch.rand(4, 3, 16, 16, device=META), torch.randint(0, 10, (4,), device=META)
    cpu_generator = torch.Generator().manual_seed(0)   # as robust_accuracy's callers pass it
    assert training.pgd_l2(model, x, y, 0.5, 1, generator=cpu_generator).device == META
    assert training.pgd_linf(model, x, y, 2 / 255, 1, generator=cpu_generator).device == META
    with pytest.raises(NotImplementedError, match="Cannot copy out of meta tensor"):   # the forward ran on meta
        training.predict_logits(model, images, device=META)


def test_zoo_trains_on_the_gpu_in_process_and_keeps_the_thread_count(monkeypatch):
    """On a GPU every model of notebook 00 trains on it, in this process, with the caller's threads."""
    seen = []
    monkeypatch.setattr(zoo, "_needs_training", lambda name, profile: True)
    monkeypatch.setattr(zoo, "_train_and_cache",
                        lambda spec, profile, device: seen.append((spec.name, str(device), torch.get_num_threads())))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert zoo.train_zoo(["cnn", "vit"], "paper", workers=2, device="cuda") == ["cnn", "vit"]
        assert seen == [("cnn", "cuda", 2), ("vit", "cuda", 2)]
        seen.clear()
        zoo.train_zoo(["cnn"], "paper", workers=1, device="cpu")   # the CPU: one thread while training, then restored
        assert seen == [("cnn", "cpu", 1)] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


# --- notebooks 02-04: feedforward inversion (logit-conditioned GAN) --------------------------------
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_feedforward_gan_step_on_the_models_device(precision):
    from inversion.feedforward.discriminator import DiscriminatorConfig, ProjectionDiscriminator
    from inversion.feedforward.generator import GeneratorConfig, LogitConditionedGenerator
    from inversion.feedforward.train import FeedforwardConfig, train_step

    config = FeedforwardConfig(generator=GeneratorConfig(z_dim=8, widths=(8, 8, 4), embed_dim=4),
                               discriminator=DiscriminatorConfig(widths=(4, 8), downsample=(True, True)),
                               batch_size=4, n_dis=2, pixel_weight=1.0, logit_weight=1.0, precision=precision)
    G = LogitConditionedGenerator(config.generator).to(META)
    D = ProjectionDiscriminator(config.discriminator).to(META)
    classifier = frozen(tiny_cnn()).to(META)
    images, logits = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8), torch.randn(8, 10)  # on the CPU
    G.set_logit_statistics(logits.to(META)), D.set_logit_statistics(logits.to(META))
    opt_g, opt_d = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    d_loss, g_loss, recon = train_step(G, D, opt_g, opt_d, images, logits, torch.Generator().manual_seed(0), config,
                                       classifier, META)
    assert {d_loss.device, g_loss.device, recon.device} == {META}


def test_pixel_decoder_baseline_trains_on_the_models_device():
    from inversion.feedforward.baselines import DecoderConfig, train_decoder

    classifier = frozen(tiny_cnn()).to(META)
    images, logits = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8), torch.randn(8, 10)
    config = DecoderConfig(hidden=8, widths=(8, 4, 4), steps=1, batch_size=4, n_train=None)
    runs_on_meta(train_decoder, classifier, images, config, device=META, logits=logits)  # ends at the loss read-back


# --- notebook 05: zero-shot inversion --------------------------------------------------------------
def test_zero_shot_evaluation_runs_on_the_models_device():
    """Splitting, synthesis and training: tests/test_zeroshot_recipe.py; here the evaluation helpers,
    which run the model on its device and copy the results to the CPU (the copy fails on meta)."""
    from inversion.zeroshot import evaluate

    model = frozen(tiny_cnn()).to(META)
    images = torch.rand(4, 3, 16, 16)
    for helper in (evaluate.predict_classes, evaluate.confidence, evaluate.penultimate_features):
        with pytest.raises(NotImplementedError, match="Cannot copy out of meta tensor"):
            helper(model, images)


# --- notebook 06: the SNGAN and the latent search ----------------------------------------------------
def test_sngan_training_and_latent_search_on_the_models_device():
    from inversion.zeroshot.gan import GANConfig, Generator, search_latent, train_gan

    config = GANConfig(latent_dim=8, g_width=16, d_width=8, steps=1, batch_size=4)
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)          # real images stay on the CPU
    runs_on_meta(train_gan, images, config, device=META, progress=False)       # ends at the first logged loss
    G = frozen(Generator(latent_dim=8, width=16)).to(META)
    with pytest.raises(NotImplementedError, match="Cannot copy out of meta tensor"):   # the search ran on meta
        search_latent(G, torch.rand(2, 3, 32, 32), steps=1, device=META, progress=False)


def test_pii_batch_is_split_to_fit_the_devices_memory():
    """On a GPU with too little memory for every target in one batch, invert splits the targets."""
    from inversion.class_inversion.methods import fit_targets_per_run

    class Limited(torch.nn.Module):           # runs out of memory above 8 images
        def __init__(self):
            super().__init__()
            self.net, self.sizes = tiny_cnn(), []

        def forward(self, x):
            self.sizes.append(len(x))
            if len(x) > 8:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            return self.net(x)

    model = frozen(Limited())
    assert fit_targets_per_run(model, 10, copies=2, size=16, device="cpu") == 3      # 20 -> 10 -> 6 images
    assert model.sizes == [20, 10, 6]
    assert fit_targets_per_run(model, 4, copies=2, size=16, device="cpu") == 4       # fits: one probe
    with pytest.raises(torch.OutOfMemoryError):
        fit_targets_per_run(model, 2, copies=16, size=16, device="cpu")              # not even one target fits
