"""inversion.kernels: the torch references against the study's own code, and the Triton kernels
against the references through Triton's interpreter (``TRITON_INTERPRET=1``, CPU, tiny shapes).

The interpreter is switched on per test with ``monkeypatch.setenv`` (restored after the test, so it
never reaches other test files); the kernels are compiled lazily for the mode in effect.
"""
import importlib.util
from pathlib import Path

import pytest
import torch

from inversion.class_inversion.augmentations import ColorShift, Ensemble, Jitter
from inversion.kernels import (SHAPES, draw_pii_parameters, pii_augment, pii_augment_random, pii_augment_reference,
                               render_discs, render_discs_reference, render_shapes, render_shapes_reference, resolve,
                               triton_available)


@pytest.fixture
def interpreter(monkeypatch):
    """Triton kernels on CPU tensors through the interpreter, for this test only."""
    if not triton_available():
        pytest.skip("triton is not installed")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    yield


def random_discs(n, k, c, h, w, seed, max_radius=8.0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.rand(n, k, 2, generator=g) * torch.tensor([w + 4.0, h + 4.0]) - 2   # some off-frame
    radii = torch.rand(n, k, generator=g) * max_radius
    colors = torch.rand(n, k, c, generator=g)
    background = torch.rand(n, c, generator=g)
    return centers, radii, colors, background


def random_shapes(n, k, c, h, w, seed, shaded=True, background_image=True):
    """Random shapes of every kind in unit coordinates (as zeroshot.synthetic draws them)."""
    g = torch.Generator().manual_seed(seed)
    params = dict(centers=torch.rand(n, k, 2, generator=g), sizes=0.06 + 0.32 * torch.rand(n, k, 2, generator=g),
                  colors=torch.rand(n, k, c, generator=g),
                  background=torch.rand((n, c, h, w) if background_image else (n, c), generator=g))
    options = dict(kinds=torch.randint(0, len(SHAPES), (n, k), generator=g),
                   angles=3.14159 * torch.rand(n, k, generator=g),
                   gradients=0.3 * torch.randn(n, k, 2, generator=g) if shaded else None,
                   xs=torch.linspace(0, 1, w), ys=torch.linspace(0, 1, h))
    if shaded:                                      # ramps centred on the image, as synthetic shades
        options.update(ramp_xs=torch.linspace(-0.5, 0.5, w), ramp_ys=torch.linspace(-0.5, 0.5, h))
    return params, options


def mask_render(centers, radii, colors, background, h, w):
    """The (N, K, H, W)-mask formula of zeroshot.synthetic.dead_leaves, with a background."""
    yy, xx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    d2 = (xx[None, None] - centers[..., 0, None, None]) ** 2 + (yy[None, None] - centers[..., 1, None, None]) ** 2
    inside = d2 <= radii[..., None, None] ** 2
    order = torch.arange(centers.shape[1]).view(1, -1, 1, 1).expand_as(inside)
    top = torch.where(inside, order, torch.full_like(order, -1)).amax(dim=1)
    n, c = background.shape
    image = torch.gather(colors, 1, top.clamp_min(0).flatten(1).unsqueeze(-1).expand(-1, -1, c))
    image = image.view(n, h, w, c).permute(0, 3, 1, 2)
    return torch.where((top >= 0).unsqueeze(1), image, background.view(n, c, 1, 1))


def composed(x, copies, max_shift, strength, generator):
    for t in (Jitter(max_shift), Ensemble(copies), ColorShift(strength, strength)):
        x = t(x, generator)
    return x


# --- references (plain torch, fast) ---------------------------------------------------------------

@pytest.mark.parametrize("copies,max_shift,strength", [(4, 3, 1.0), (1, 0, 0.0), (5, 2, 0.5), (3, 6, 0.0)])
def test_pii_reference_is_the_class_inversion_composition(copies, max_shift, strength):
    x = torch.rand(3, 3, 17, 13, requires_grad=True)
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    want = composed(x, copies, max_shift, strength, g1)
    got = pii_augment_random(x, copies, max_shift, strength, strength, g2, backend="torch")
    assert torch.equal(want, got)                                   # bit-identical, not just close
    assert torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))   # same draws consumed
    grad = torch.randn_like(want)
    assert torch.equal(torch.autograd.grad(want, x, grad)[0], torch.autograd.grad(got, x, grad)[0])


def test_pii_semantics_per_image_and_per_copy_shift():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 5, 7, generator=g)
    copies = 3
    mu, sigma = torch.randn(6, 3, generator=g), torch.rand(6, 3, generator=g) + 0.5
    for shifts in (torch.tensor([[1, -2], [-6, 9]]), torch.randint(-9, 10, (6, 2), generator=g)):
        y = pii_augment(x, shifts, mu, sigma, copies)
        for nb in range(6):
            dy, dx = shifts[nb if len(shifts) == 6 else nb // copies].tolist()
            want = sigma[nb].view(3, 1, 1) * torch.roll(x[nb // copies], (dy, dx), dims=(-2, -1)) + mu[nb].view(3, 1, 1)
            torch.testing.assert_close(y[nb], want, rtol=0, atol=1e-6)
    assert torch.equal(pii_augment(x, None, None, None, 2), x.repeat_interleave(2, dim=0))


def test_pii_reference_gradcheck():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 2, 3, 4, dtype=torch.float64, generator=g, requires_grad=True)
    mu = torch.rand(6, 2, dtype=torch.float64, generator=g, requires_grad=True)
    sigma = torch.rand(6, 2, dtype=torch.float64, generator=g, requires_grad=True)
    shifts = torch.tensor([[1, 2], [-1, 3]])
    assert torch.autograd.gradcheck(lambda *a: pii_augment_reference(a[0], shifts, a[1], a[2], 3), (x, mu, sigma))


def test_render_discs_reference_equals_mask_formula_and_painter_order():
    for c, chunk in ((3, 1 << 24), (1, 2 * 19 * 23 * 3)):          # one chunk; chunks of 3 discs
        params = random_discs(2, 11, c, 19, 23, seed=c)
        got = render_discs_reference(*params, 19, 23, chunk_elements=chunk)
        assert torch.equal(got, mask_render(*params, 19, 23))
    # two overlapping discs: the later one is on top; uncovered pixels take the background
    centers = torch.tensor([[[2.0, 2.0], [3.0, 2.0]]])
    radii = torch.tensor([[1.5, 1.0]])
    colors = torch.tensor([[[1.0], [2.0]]])
    image = render_discs(centers, radii, colors, torch.tensor([[-1.0]]), 4, 6)[0, 0]
    assert image[1, 1].item() == 1.0 and image[1, 2].item() == 2.0 and image[3, 5].item() == -1.0
    assert render_discs(centers.flip(1), radii.flip(1), colors.flip(1), torch.tensor([[-1.0]]), 4, 6)[0, 0, 1, 2] == 1.0


def test_render_shapes_reference_equals_the_full_mask_formula():
    """Against an (N, K, H, W) rendering written independently (division by the half-extents,
    torch.abs, per-layer colours), as zeroshot.synthetic paints random shapes."""
    n, k, c, h, w = 2, 9, 3, 21, 18
    params, options = random_shapes(n, k, c, h, w, seed=5)
    got = render_shapes_reference(**params, height=h, width=w, **options, chunk_elements=n * 4 * h * w)
    yy, xx = torch.meshgrid(options["ys"], options["xs"], indexing="ij")
    centers, half = params["centers"], params["sizes"]
    dx, dy = xx - centers[..., 0, None, None], yy - centers[..., 1, None, None]
    cos, sin = options["angles"].cos()[..., None, None], options["angles"].sin()[..., None, None]
    u = (cos * dx + sin * dy) / half[..., 0, None, None]
    v = (-sin * dx + cos * dy) / half[..., 1, None, None]
    masks = {0: dx ** 2 + dy ** 2 <= half[..., 0, None, None] ** 2, 1: u ** 2 + v ** 2 <= 1,
             2: (u.abs() <= 1) & (v.abs() <= 1), 3: (v >= -1) & (v <= 1) & (u.abs() <= (1 - v) / 2)}
    kind = options["kinds"][..., None, None]
    inside = torch.zeros_like(masks[0])
    for code, mask in masks.items():
        inside = torch.where(kind == code, mask, inside)
    g = options["gradients"]
    ry, rx = torch.meshgrid(options["ramp_ys"], options["ramp_xs"], indexing="ij")
    layers = (params["colors"][..., None, None] + g[..., 0, None, None, None] * ry
              + g[..., 1, None, None, None] * rx).clamp(0, 1)                        # (n, k, c, h, w)
    want = params["background"].clone()
    for layer in range(k):
        want = torch.where(inside[:, layer, None], layers[:, layer], want)
    close = (got - want).abs().amax(dim=1) <= 1e-6
    assert close.float().mean() >= 0.995                   # only rounding-boundary pixels may differ
    # the kinds differ where they should: a disc is not a square, and the triangle's apex is at v = 1
    one = dict(centers=torch.tensor([[[5.0, 5.0]]]), sizes=torch.tensor([[[4.0, 4.0]]]),
               colors=torch.ones(1, 1, 1), background=torch.zeros(1, 1), height=10, width=10)
    area = {name: render_shapes(**one, kinds=torch.tensor([[code]])).sum().item() for code, name in enumerate(SHAPES)}
    assert area["rectangle"] == 64 and 44 <= area["disc"] == area["ellipse"] <= 56 and 28 <= area["triangle"] <= 36
    triangle = render_shapes(**one, kinds=torch.tensor([[3]]))[0, 0]
    assert triangle[1].sum() > triangle[7].sum() > 0          # wide at y = 1.5 (v < 0), narrow at y = 7.5


def test_dispatch_and_errors(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    x = torch.rand(1, 3, 4, 4)
    assert resolve("auto", x) == "torch" and resolve("torch", x) == "torch"
    with pytest.raises(ValueError):
        resolve("cuda", x)
    if triton_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            pii_augment(x, None, None, None, 2, backend="triton")
    with pytest.raises(ValueError, match="shifts"):
        pii_augment(x, torch.zeros(3, 2, dtype=torch.long), None, None, 2)
    with pytest.raises(ValueError, match="both"):
        pii_augment(x, None, torch.zeros(2, 3), None, 2)
    with pytest.raises(ValueError, match="radii"):
        render_discs(torch.zeros(1, 2, 2), torch.zeros(1, 3), torch.zeros(1, 2, 3), torch.zeros(1, 3), 4, 4)


# --- Triton kernels in the interpreter ------------------------------------------------------------

@pytest.mark.kernels
@pytest.mark.parametrize("n,k,c,h,w", [(2, 7, 3, 19, 23), (3, 1, 1, 17, 16), (1, 40, 3, 5, 61)])
def test_render_discs_kernel_equals_reference(interpreter, n, k, c, h, w):
    params = random_discs(n, k, c, h, w, seed=k)
    got = render_discs(*params, h, w, backend="triton")
    assert torch.equal(got, render_discs(*params, h, w, backend="torch"))    # H*W not a multiple of the block


@pytest.mark.kernels
@pytest.mark.parametrize("c,shaded,background_image", [(3, True, True), (1, False, False), (3, True, False)])
def test_render_shapes_kernel_equals_reference(interpreter, c, shaded, background_image):
    n, k, h, w = 2, 13, 15, 21
    params, options = random_shapes(n, k, c, h, w, seed=c, shaded=shaded, background_image=background_image)
    got = render_shapes(**params, height=h, width=w, **options, backend="triton")
    assert torch.equal(got, render_shapes(**params, height=h, width=w, **options, backend="torch"))


@pytest.mark.kernels
@pytest.mark.parametrize("c,per_copy,color_shift", [(3, False, True), (1, True, True), (3, False, False)])
def test_pii_kernel_forward_backward_equal_reference(interpreter, c, per_copy, color_shift):
    g = torch.Generator().manual_seed(c)
    n, copies, h, w = 3, 5 if c == 1 else 3, 11, 13                 # N * B = 15 or 9, H * W = 143
    x = torch.rand(n, c, h, w, generator=g, requires_grad=True)
    shifts = torch.randint(-12, 13, (n * copies if per_copy else n, 2), generator=g)
    mu = sigma = None
    if color_shift:
        mu = (torch.rand(n * copies, c, 1, 1, generator=g) * 2 - 1).requires_grad_(True)
        sigma = (torch.rand(n * copies, c, 1, 1, generator=g) * 2 - 1).exp().requires_grad_(True)
    inputs = [t for t in (x, mu, sigma) if t is not None]
    out = {b: pii_augment(x, shifts, mu, sigma, copies, backend=b) for b in ("triton", "torch")}
    torch.testing.assert_close(out["triton"], out["torch"], rtol=0, atol=1e-6)
    grad = torch.randn(out["torch"].shape, generator=g)
    grads = {b: torch.autograd.grad(out[b], inputs, grad) for b in out}
    for kernel, reference in zip(grads["triton"], grads["torch"]):
        torch.testing.assert_close(kernel, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.kernels
def test_pii_kernel_gradcheck_and_image_only_gradient(interpreter):
    g = torch.Generator().manual_seed(3)
    x = torch.rand(1, 1, 3, 5, dtype=torch.float64, generator=g, requires_grad=True)
    mu = torch.rand(3, 1, dtype=torch.float64, generator=g, requires_grad=True)
    sigma = torch.rand(3, 1, dtype=torch.float64, generator=g, requires_grad=True)
    shifts = torch.tensor([[2, -1]])
    assert torch.autograd.gradcheck(lambda *a: pii_augment(a[0], shifts, a[1], a[2], 3, backend="triton"),
                                    (x, mu, sigma), fast_mode=True)
    # mu and sigma without gradients (as in PII's loop): only the image's gradient is reduced
    y = pii_augment(x, shifts, mu.detach(), sigma.detach(), 3, backend="triton")
    y.sum().backward()
    torch.testing.assert_close(x.grad, sigma.detach().sum().expand_as(x))


@pytest.mark.kernels
def test_seeded_draws_give_the_same_images_on_kernel_and_reference(interpreter):
    x = torch.rand(2, 3, 9, 10)
    out = {}
    for backend in ("triton", "torch"):
        g = torch.Generator().manual_seed(11)
        out[backend] = pii_augment_random(x, 3, 4, 1.0, 1.0, g, backend=backend)
    torch.testing.assert_close(out["triton"], out["torch"], rtol=0, atol=1e-6)
    assert torch.equal(out["torch"], composed(x, 3, 4, 1.0, torch.Generator().manual_seed(11)))
    shifts, mu, sigma = draw_pii_parameters(x, 3, 4, 1.0, 1.0, torch.Generator().manual_seed(11))
    assert shifts.shape == (2, 2) and mu.shape == sigma.shape == (6, 3, 1, 1)


def test_benchmark_script_runs_on_tiny_shapes(capsys):
    path = Path(__file__).resolve().parents[1] / "scripts" / "benchmark_kernels.py"
    spec = importlib.util.spec_from_file_location("benchmark_kernels", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.main(["--device", "cpu", "--size", "12", "--targets", "2", "--copies", "3", "--leaves-images", "2",
                        "--discs", "5", "--shapes", "4", "--repeats", "1", "--warmup", "0", "--compile", "no"])
    assert [(r["workload"], r["implementation"]) for r in rows] == [
        ("pii forward", "torch"), ("pii forward+backward", "torch"), ("dead leaves", "torch"),
        ("dead leaves", "full mask"), ("random shapes", "torch"), ("random shapes", "full mask")]
    assert all(r["ms_per_call"] > 0 and r["peak_mib"] > 0 and not r["note"] for r in rows)
    assert "need a CUDA device" in capsys.readouterr().out
