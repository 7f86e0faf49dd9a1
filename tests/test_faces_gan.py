"""Notebook 06's paper path: the face folder loader and the SNGAN at 128 px (and the 32 px GAN unchanged)."""
import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from inversion.data import faces
from inversion.zeroshot import gan
from inversion.zeroshot.inverse import InverseChain
from inversion.zeroshot.train import InverseConfig, fit_inverse, weights_hash


def _smooth(rng, width, height):
    return Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize((width, height), Image.BILINEAR)


@pytest.fixture
def flat_faces(tmp_path):
    """A flat folder of 6 images in several formats and extension cases, plus a non-image file."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "flat"
    folder.mkdir()
    for i, ext in enumerate([".jpg", ".JPG", ".jpeg", ".png", ".PNG", ".webp"]):
        _smooth(rng, 40 + 4 * i, 50).save(folder / f"{i:03d}{ext}")
    (folder / "list_attr_celeba.txt").write_text("not an image")
    return folder


@pytest.fixture(autouse=True)
def no_faces_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("FACES_DIR", raising=False)
    monkeypatch.setenv("INVERSION_DATA", str(tmp_path / "data"))


# --- the loader --------------------------------------------------------------------------------------
def test_missing_folder_says_where_to_get_celeba(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError) as error:             # nothing named: the default <data>/faces
        faces.load(n=2, progress=False)
    message = str(error.value)
    assert faces.CELEBA_URL in message and "FACES_DIR" in message and str(tmp_path / "data" / "faces") in message
    monkeypatch.setenv("FACES_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="nowhere.*does not exist"):
        faces.load(n=2, progress=False)


def test_folder_without_images_is_an_error(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "README.txt").write_text("faces go here")
    (empty / ".hidden.jpg").write_bytes(b"")                  # hidden names are skipped
    monkeypatch.setenv("FACES_DIR", str(empty))
    with pytest.raises(FileNotFoundError, match="holds no .jpg"):
        faces.load(n=2, progress=False)


def test_unreadable_image_names_the_file(flat_faces):
    (flat_faces / "000999.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(OSError, match="000999.jpg"):
        faces.load(n=None, size=16, root=flat_faces, progress=False)


def test_flat_folder_shapes_range_subset_and_uint8(flat_faces, monkeypatch):
    monkeypatch.setenv("FACES_DIR", str(flat_faces))
    assert len(faces.list_images(flat_faces)) == 6             # every extension case, not the .txt
    images = faces.load(n=4, size=24, seed=3, progress=False)
    assert images.shape == (4, 3, 24, 24) and images.dtype == torch.float32
    assert images.min() >= 0 and images.max() <= 1 and images.std() > 0.05
    assert torch.equal(images, faces.load(n=4, size=24, seed=3, progress=False, workers=1))   # seeded, any threads
    assert not torch.equal(images, faces.load(n=4, size=24, seed=4, progress=False))
    small = faces.load(n=4, size=24, seed=3, uint8=True, progress=False)
    assert small.dtype == torch.uint8 and torch.equal(small.float() / 255, images)
    with pytest.warns(UserWarning, match="holds only 6: using all 6"):
        assert len(faces.load(n=100, size=8, progress=False)) == 6


def test_image_folder_layout_and_centre_crop(tmp_path):
    root = tmp_path / "celeba"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(2):   # 60x20: red margins of 20 px left and right, a blue centre square
            array = np.zeros((20, 60, 3), dtype=np.uint8)
            array[:, :20, 0] = array[:, 40:, 0] = 255
            array[:, 20:40, 2] = 255
            Image.fromarray(array).save(root / c / f"{i}.png")
    images = faces.load(n=None, size=8, root=root, progress=False)
    assert images.shape == (4, 3, 8, 8)
    assert torch.equal(images[:, 2], torch.ones(4, 8, 8)) and images[:, 0].max() == 0   # only the centre is kept


def test_root_argument_wins_over_faces_dir(flat_faces, tmp_path, monkeypatch):
    monkeypatch.setenv("FACES_DIR", str(tmp_path / "nowhere"))
    assert faces.load(n=2, size=8, root=flat_faces, progress=False).shape == (2, 3, 8, 8)
    assert faces.find(flat_faces) == flat_faces


# --- the SNGAN at 128 px -----------------------------------------------------------------------------
def test_generator_and_discriminator_at_128px():
    torch.manual_seed(0)
    G = gan.Generator(latent_dim=8, width=64, image_size=128)
    assert [n for n, _ in G.blocks.named_children()] == ["fc", "up1", "up2", "up3", "up4", "up5", "to_rgb"]
    x = G(torch.randn(3, 8))
    assert x.shape == (3, 3, 128, 128) and x.min() >= 0 and x.max() <= 1
    D = gan.Discriminator(width=8, image_size=128)
    assert D(x).shape == (3,)
    assert gan.generator_channels(1024, 128) == [1024, 512, 256, 128, 64, 64]       # SNGAN 128 px: 1024 -> 64
    assert gan.discriminator_channels(128, 128) == [64, 128, 256, 512, 1024, 1024]  # 64 -> 1024
    assert gan.generator_channels(64, 32) == [64, 32, 16, 16]                        # the 32 px network
    with pytest.raises(ValueError, match="power of two"):
        gan.Generator(8, 64, image_size=96)


def test_one_training_step_of_g_and_d_at_128px():
    config = gan.GANConfig(latent_dim=8, g_width=32, d_width=8, steps=1, batch_size=4, image_size=128, dataset="faces")
    images = torch.randint(0, 256, (6, 3, 128, 128), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(config.seed)   # train_gan seeds the same way: these are its initial weights
    G0, D0 = gan.Generator(8, 32, 128), gan.Discriminator(8, 128)
    G, D, log = gan.train_gan(images, config, progress=False)
    assert len(log) == 1 and np.isfinite([log[0]["loss_d"], log[0]["loss_g"]]).all()
    assert weights_hash(G) != weights_hash(G0) and weights_hash(D) != weights_hash(D0)   # both were updated
    assert not any(p.requires_grad for p in [*G.parameters(), *D.parameters()])
    with pytest.raises(ValueError, match=r"\(N, 3, 128, 128\)"):
        gan.train_gan(images[..., :32, :32], config, progress=False)


def test_encoder_split_at_128px():
    torch.manual_seed(0)
    G = gan.Generator(latent_dim=8, width=64, image_size=128).eval()
    cuts = ["fc", "up1", "up2", "up3", "up4", "to_rgb"]
    chain = gan.generator_chain(G, cuts)
    assert chain.shapes == [(8,), (64, 4, 4), (32, 8, 8), (16, 16, 16), (8, 32, 32), (4, 64, 64), (3, 128, 128)]
    z = torch.randn(2, 8)
    assert torch.allclose(chain(z), G(z), atol=1e-6)
    assert gan.generator_chain(G).shapes[-2:] == [(16, 16, 16), (3, 128, 128)]   # the default cuts still name layers
    with pytest.raises(KeyError, match="up6"):
        gan.generator_chain(G, ["fc", "up6", "to_rgb"])
    config = InverseConfig(data="latent_prior", block_steps=1, joint_steps=1, batch_size=2)
    chain, encoder, record = fit_inverse(G, cuts, config, "smoke", cache=False, progress=False)
    assert isinstance(encoder, InverseChain) and len(encoder) == len(cuts)
    assert encoder(G(z), depth=len(cuts)).shape == (2, 8)
    x_fix, z_fix = gan.repair(G, lambda x: encoder(x, depth=len(cuts)), G(z), project=True)
    assert x_fix.shape == (2, 3, 128, 128) and torch.allclose(z_fix.norm(dim=1), torch.full((2,), 8 ** 0.5))


def test_fit_gan_on_faces_caches_under_its_own_key(flat_faces, monkeypatch):
    monkeypatch.setenv("FACES_DIR", str(flat_faces))
    config = gan.GANConfig(latent_dim=8, g_width=16, d_width=8, steps=1, batch_size=2, n_train=4, image_size=16,
                           dataset="faces")
    G, D, record = gan.fit_gan(config, "smoke", progress=False)
    assert record["data"] == {"folder": str(flat_faces), "images": 4}
    assert record["config"]["dataset"] == "faces" and record["config"]["image_size"] == 16
    G2, _, record2 = gan.fit_gan(config, "smoke", progress=False)                   # from the cache
    assert record2["key"] == record["key"] == gan.cache_key(config) and weights_hash(G2) == weights_hash(G)
    assert G(torch.zeros(1, 8)).shape == (1, 3, 16, 16)


def test_config_rejects_unknown_datasets_and_sizes():
    with pytest.raises(ValueError, match="dataset"):
        gan.GANConfig(dataset="celeba")
    with pytest.raises(ValueError, match="Fashion-Scenes is rendered at 32 px"):
        gan.GANConfig(image_size=128)


# --- the 32 px Fashion-Scenes GAN is unchanged ---------------------------------------------------------
def test_32px_cache_keys_are_unchanged():
    """Keys read from the code before image_size and dataset existed (sha256 of the old config's fields)."""
    mini = gan.GANConfig(latent_dim=64, g_width=64, d_width=32, steps=600, batch_size=64, n_train=20000, seed=0)
    smoke = gan.GANConfig(latent_dim=16, g_width=32, d_width=16, steps=5, batch_size=16, n_train=512, seed=0)
    assert gan.cache_key(mini) == "800e479043f9"
    assert gan.cache_key(smoke) == "894afbda974f"
    assert gan.cache_key(gan.GANConfig()) == "c995409dfbf6"
    assert "image_size" not in gan.cache_fields(mini) and "dataset" not in gan.cache_fields(mini)
    faces_config = dataclasses.replace(mini, image_size=128, dataset="faces")
    assert gan.cache_fields(faces_config)["dataset"] == "faces" and gan.cache_key(faces_config) != gan.cache_key(mini)


def test_32px_networks_are_unchanged():
    """Seeded initial weights of the 32 px G and D, hashed with the code before the image size became
    a parameter: same modules, same order, same random draws (so cached checkpoints and mini numbers stay).
    D's spectral-norm vectors ``_u`` / ``_v`` are left out of its hash: their 15 initial power iterations
    round differently on different CPUs (an AMX and an AVX-512 host disagree in the last bits)."""
    torch.manual_seed(0)
    G, D = gan.Generator(16, 32), gan.Discriminator(16)
    assert weights_hash(G) == "ec5b101272a8a236" and weights_hash(D, exclude=("._u", "._v")) == "1f7d80bba01bc227"
    assert sum(name.endswith("._u") for name in D.state_dict()) == 7   # every D layer keeps its spectral norm
    assert [n for n, _ in G.blocks.named_children()] == ["fc", "up1", "up2", "up3", "to_rgb"]


def test_paper_dry_face_folder_feeds_the_loader(tmp_path):
    import importlib.util

    from inversion.paths import repo_root

    spec = importlib.util.spec_from_file_location("paper_dry", repo_root() / "scripts" / "paper_dry.py")
    dry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dry)
    root = dry.write_face_folder(tmp_path / "faces", count=5)
    assert len(faces.list_images(root)) == 5                      # flat, and the .complete stamp is no image
    images = faces.load(n=3, size=128, root=root, progress=False)
    assert images.shape == (3, 3, 128, 128) and images.std() > 0.05
