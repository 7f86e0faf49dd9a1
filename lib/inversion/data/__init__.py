"""Data: Fashion-MNIST, the derived Fashion-Scenes, natural photographs, and image folders."""
from . import fashion_mnist, fashion_scenes, image_folder, photos

__all__ = ["fashion_mnist", "fashion_scenes", "image_folder", "photos"]
