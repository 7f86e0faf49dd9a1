"""Data: Fashion-MNIST, the derived Fashion-Scenes, CIFAR-10, natural photographs, and image folders."""
from . import cifar10, fashion_mnist, fashion_scenes, image_folder, photos

__all__ = ["cifar10", "fashion_mnist", "fashion_scenes", "image_folder", "photos"]
