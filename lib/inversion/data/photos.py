"""Real colour photographs bundled with scikit-image, cut into small square crops.

CIFAR-10 and ImageNet images are not available offline; these photos give natural-image test
inputs for reconstructions (e.g. of the pretrained CIFAR-10 ResNets) at the working size.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# Colour images shipped inside the scikit-image wheel (no download needed).
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
          "immunohistochemistry", "retina", "stereo_motorcycle")
# Square crops per photo, as (top, left, side) fractions of the photo's shorter side.
CROPS = ((0.0, 0.0, 1.0), (0.0, 0.0, 0.6), (0.4, 0.4, 0.6), (0.0, 0.4, 0.6), (0.4, 0.0, 0.6))


def _photo(name: str) -> np.ndarray:
    import skimage.data

    image = getattr(skimage.data, name)()
    if isinstance(image, tuple):  # stereo pairs: take the left view
        image = image[0]
    return image[..., :3]


def load(size: int = 32, names: tuple[str, ...] = PHOTOS, crops=CROPS) -> tuple[torch.Tensor, list[str]]:
    """Crops of the bundled photos, resized with antialiasing to ``size``; float (N, 3, S, S) in [0, 1].

    Returns the images and a name per crop (``"coffee/2"``). The full-frame crop is centred on the
    longer side; the others are offset windows so the set covers different content.
    """
    images, labels = [], []
    for name in names:
        photo = torch.from_numpy(_photo(name)).permute(2, 0, 1).float() / 255
        h, w = photo.shape[1:]
        side = min(h, w)
        y0, x0 = (h - side) // 2, (w - side) // 2
        for k, (top, left, frac) in enumerate(crops):
            s = int(side * frac)
            y, x = y0 + int(top * side), x0 + int(left * side)
            crop = photo[:, y:y + s, x:x + s].unsqueeze(0)
            images.append(F.interpolate(crop, size=(size, size), mode="bilinear",
                                        antialias=True, align_corners=False).clamp(0, 1))
            labels.append(f"{name}/{k}")
    return torch.cat(images), labels
