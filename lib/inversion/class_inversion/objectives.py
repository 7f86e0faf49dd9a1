"""What class inversion minimizes: loss terms that the one loop (:mod:`.loop`) sums with weights.

Every term sees a :class:`Step` (the image being optimized, the augmented batch the model saw,
its logits and the per-image targets) and returns a scalar. Terms that need intermediate
activations register forward hooks in ``attach(model)`` and remove them in ``detach()``.

* :class:`ClassCrossEntropy` - the only term of PII (Ghiasi et al. 2022, section 3).
* :class:`TotalVariation`, :class:`L2Prior` - the image priors of DeepDream (Mordvintsev et al.
  2015) and DeepInversion (Yin et al. 2020, Eq. 2: R_prior = a_tv R_TV + a_l2 R_l2).
* :class:`BatchNormStatistics` - DeepInversion's feature-distribution regularizer (Yin et al.
  2020, Eq. 4): sum over BatchNorm layers l of ||mu_l(x) - mean_l||_2 + ||sigma^2_l(x) - var_l||_2,
  the first layer weighted 10x as in the authors' code.
* :class:`UnitActivation` - feature visualization: the mean activation of one unit (a conv channel,
  or a ViT feed-forward unit after the GELU averaged over patch tokens; Ghiasi et al. 2022b).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from ..losses import total_variation


@dataclass
class Step:
    """What a loss term sees at one optimization step."""

    image: torch.Tensor        # (N, C, s, s) the parameter being optimized, s = current stage size
    augmented: torch.Tensor    # (N * copies, C, S, S) what the model saw
    logits: torch.Tensor       # (N * copies, classes)
    targets: torch.Tensor      # (N * copies,) the target of each augmented image


class Term:
    """A loss term; subclasses set ``name`` and implement ``__call__(step) -> scalar``."""

    name = "term"

    def attach(self, model: nn.Module) -> None:
        """Register hooks on ``model`` (default: nothing)."""

    def detach(self) -> None:
        """Remove the hooks of :meth:`attach`."""

    def __call__(self, step: Step) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class ClassCrossEntropy(Term):
    """Cross-entropy of every augmented copy to its target class (mean over the batch)."""

    name = "cross_entropy"

    def __call__(self, step: Step) -> torch.Tensor:
        return F.cross_entropy(step.logits, step.targets)


class TotalVariation(Term):
    """Anisotropic squared total variation of the optimized image (mean over pixels), DeepDream prior."""

    name = "total_variation"

    def __call__(self, step: Step) -> torch.Tensor:
        return total_variation(step.image, squared=True)


class L2Prior(Term):
    """Mean squared distance of the optimized image from mid-grey (the L2 prior in [0, 1] pixels)."""

    name = "l2"

    def __init__(self, center: float = 0.5):
        self.center = center

    def __call__(self, step: Step) -> torch.Tensor:
        return ((step.image - self.center) ** 2).mean()


class _ChannelMoments(torch.autograd.Function):
    """Per-channel E[x] and E[x^2] over ``dims`` in float32, with a one-expression backward.

    The biased variance is then E[x^2] - E[x]^2 (agrees with ``torch.var`` to float32 rounding on
    activations, tested). On a CPU this is several times faster than ``x.mean`` + ``x.var`` with
    autograd: ``torch.var`` reduces with Welford's algorithm, and autograd adds the two broadcast
    gradients to x's gradient one by one, slowly in channels_last. ``x`` may be bfloat16 (under
    autocast): the moments are still float32, and the backward returns one tensor in x's dtype and
    layout, d/dx = (g_mean + 2 x g_mean_square) / n, without a float32 copy of x or of its gradient
    (autograd passes zeros for an output the loss does not use).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, dims: list[int]):
        ctx.save_for_backward(x)
        x32 = x.float()
        return x32.mean(dims), (x32 * x32).mean(dims)

    @staticmethod
    def backward(ctx, g_mean, g_mean_square):
        (x,) = ctx.saved_tensors
        n = x.numel() // x.shape[1]
        shape = [1, -1] + [1] * (x.dim() - 2)
        return torch.addcmul((g_mean / n).view(shape).to(x.dtype), x,
                             (g_mean_square * (2 / n)).view(shape).to(x.dtype)), None


class BatchNormStatistics(Term):
    """DeepInversion's R_feature (Yin et al. 2020, Eq. 4): match the batch mean and variance of
    the input of every BatchNorm layer to the layer's running statistics.

    ``first_layer_weight`` multiplies the first BatchNorm layer's term (10 in the authors' code).
    Raises ``ValueError`` on a model without BatchNorm layers (the loss is undefined there).
    """

    name = "bn_statistics"

    def __init__(self, first_layer_weight: float = 10.0):
        self.first_layer_weight = first_layer_weight
        self._hooks: list = []
        self._stats: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []

    @staticmethod
    def layers(model: nn.Module) -> list[_BatchNorm]:
        return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats
                and m.running_mean is not None]

    def attach(self, model: nn.Module) -> None:
        layers = self.layers(model)
        if not layers:
            raise ValueError(f"DeepInversion needs BatchNorm layers with running statistics; "
                             f"{getattr(model, 'name', type(model).__name__)!r} has none "
                             "(use PII or DeepDream for this model)")
        self.detach()
        self._first = layers[0]
        for layer in layers:
            self._hooks.append(layer.register_forward_pre_hook(self._record))

    def _record(self, module: _BatchNorm, inputs) -> None:
        if module is self._first:  # a new forward pass: keep only its statistics
            self._stats = []
        x = inputs[0]  # bfloat16 under autocast: the moments are still float32
        dims = [0] + list(range(2, x.dim()))
        mean, mean_square = _ChannelMoments.apply(x, dims)
        self._stats.append((mean, mean_square - mean * mean, module.running_mean, module.running_var))

    def detach(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks, self._stats = [], []

    def __call__(self, step: Step) -> torch.Tensor:
        if not self._stats:
            raise RuntimeError("BatchNormStatistics saw no forward pass: attach() it to the model first")
        total = 0.0
        for i, (mean, var, running_mean, running_var) in enumerate(self._stats):
            term = torch.linalg.vector_norm(mean - running_mean) + torch.linalg.vector_norm(var - running_var)
            total = total + (self.first_layer_weight if i == 0 else 1.0) * term
        self._stats = []
        return total


class UnitActivation(Term):
    """Minus the mean activation of one unit per image, read from the output of ``module``.

    ``targets`` are unit indices. Output of shape (N, C, H, W): channel ``c`` averaged over space;
    (N, T, D) (transformer tokens): feature ``d`` averaged over tokens ``skip_tokens:`` (skip the
    class token); (N, D): feature ``d``.
    """

    name = "unit_activation"

    def __init__(self, module: nn.Module, skip_tokens: int = 0):
        self.module, self.skip_tokens = module, skip_tokens
        self._hook, self._output = None, None

    def attach(self, model: nn.Module) -> None:
        self.detach()
        self._hook = self.module.register_forward_hook(self._record)

    def _record(self, module, inputs, output) -> None:
        self._output = output

    def detach(self) -> None:
        if self._hook is not None:
            self._hook.remove()
        self._hook, self._output = None, None

    @staticmethod
    def unit_means(output: torch.Tensor, skip_tokens: int = 0) -> torch.Tensor:
        """(N, units): each unit's activation averaged over space or tokens."""
        if output.dim() == 4:
            return output.mean(dim=(2, 3))
        if output.dim() == 3:
            return output[:, skip_tokens:].mean(dim=1)
        if output.dim() == 2:
            return output
        raise ValueError(f"cannot read units from an output of shape {tuple(output.shape)}")

    def __call__(self, step: Step) -> torch.Tensor:
        if self._output is None:
            raise RuntimeError("UnitActivation saw no forward pass: attach() it to the model first")
        units = self.unit_means(self._output.float(), self.skip_tokens)
        self._output = None
        return -units.gather(1, step.targets.view(-1, 1)).mean()
