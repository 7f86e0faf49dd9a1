"""The committed zoo: files verified by sha256 and recipe hash, mismatches explained, resumable training."""
import dataclasses
import json

import pytest
import torch
from safetensors.torch import save_file

from inversion.models import REGISTRY, Classifier, InputConfig, Recipe, architectures, training, zoo
from inversion.paths import sha256

TINY = lambda: architectures.resnet((4, 4, 4), (1, 1, 1))  # noqa: E731


@pytest.fixture
def tiny_zoo(tmp_path, monkeypatch):
    """A registered tiny model and a committed-zoo folder in tmp holding its files."""
    monkeypatch.setenv("INVERSION_ZOO", str(tmp_path / "zoo"))
    spec = zoo.ModelSpec("tiny-test", "cnn", "trained", TINY, recipe=Recipe(epochs=1, seed=3))
    monkeypatch.setitem(REGISTRY, spec.name, spec)
    torch.manual_seed(0)
    net = TINY()
    weights, meta = zoo.checkpoint_files(spec.name, "mini")
    weights.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
    meta.write_text(json.dumps({"name": spec.name, "recipe": dataclasses.asdict(spec.recipe),
                                "recipe_hash": spec.recipe.key(), "sha256": sha256(weights),
                                "training_code_version": training.TRAINING_CODE_VERSION}))
    monkeypatch.setattr(zoo, "_train_and_cache", lambda *a, **k: pytest.fail("the mini zoo must never train"))
    return spec, net, monkeypatch


def test_committed_model_loads_after_verification(tiny_zoo):
    spec, net, _ = tiny_zoo
    assert zoo.check_committed(spec.name) == []
    model = zoo.load(spec.name, "mini")
    for a, b in zip(model.net.state_dict().values(), net.state_dict().values()):
        assert torch.equal(a, b)
    zoo.ensure_trained([spec.name, "cifar10-resnet20"], "mini")  # nothing to do, nothing trained


def test_recipe_mismatch_says_what_differs_and_how_to_retrain(tiny_zoo):
    spec, _, monkeypatch = tiny_zoo
    monkeypatch.setitem(REGISTRY, spec.name, dataclasses.replace(spec, recipe=Recipe(epochs=2, seed=3)))
    with pytest.raises(zoo.ZooMismatch) as info:
        zoo.load(spec.name, "mini")
    message = str(info.value)
    assert "epochs: 1 in the file, 2 registered" in message and "seed" not in message
    assert f"make zoo ONLY={spec.name}" in message
    with pytest.raises(zoo.ZooMismatch, match=f"make zoo ONLY={spec.name}"):
        zoo.ensure_trained([spec.name], "mini")


def test_changed_weights_fail_the_hash_check(tiny_zoo):
    spec, _, _ = tiny_zoo
    weights, _ = zoo.checkpoint_files(spec.name, "mini")
    save_file({k: v + 1 for k, v in zoo.load_file(str(weights)).items()}, str(weights))
    with pytest.raises(zoo.ZooMismatch, match="sha256"):
        zoo.load(spec.name, "mini")


def test_missing_model_is_an_error_not_a_training(tiny_zoo):
    spec, _, _ = tiny_zoo
    zoo.checkpoint_files(spec.name, "mini")[0].unlink()
    with pytest.raises(zoo.ZooMismatch, match="missing"):
        zoo.load(spec.name, "mini", train_if_missing=True)


def test_train_zoo_trains_only_missing_or_mismatched(tiny_zoo):
    spec, _, monkeypatch = tiny_zoo
    other = dataclasses.replace(spec, name="tiny-test-2")
    monkeypatch.setitem(REGISTRY, other.name, other)
    trained = []
    monkeypatch.setattr(zoo, "_train_in_worker", lambda name, profile, device="cpu": trained.append(name))
    assert zoo.train_zoo([spec.name, other.name], "mini", workers=1) == [other.name]
    assert trained == [other.name]
    with pytest.raises(ValueError, match="not trained by the study"):
        zoo.train_zoo(["cifar10-resnet20"], "mini")


def test_interrupted_training_resumes_to_the_same_weights(tmp_path, monkeypatch):
    x = torch.randint(0, 256, (96, 3, 16, 16), dtype=torch.uint8)
    y = torch.randint(0, 10, (96,))
    recipe = Recipe(objective="mixup", epochs=2.5, batch_size=32)  # mixup: the global RNG matters too

    def fresh():
        torch.manual_seed(0)
        return Classifier(TINY(), InputConfig(input_size=(3, 16, 16)))

    reference = fresh()
    training.train(reference, x, y, recipe)
    state = tmp_path / "partial.pt"
    calls, real_loss = {"n": 0}, training.batch_loss

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(training, "batch_loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        training.train(fresh(), x, y, recipe, resume_file=state, save_every=2)
    assert torch.load(state, weights_only=True)["step"] == 4
    monkeypatch.setattr(training, "batch_loss", real_loss)
    resumed = fresh()
    log = training.train(resumed, x, y, recipe, resume_file=state, save_every=2)
    assert not state.exists() and log["steps"] == 8
    for a, b in zip(reference.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
