"""Data: Fashion-MNIST, the derived Fashion-Scenes, CIFAR-10, natural photographs, image folders and face folders."""
from . import cifar10, faces, fashion_mnist, fashion_scenes, image_folder, photos

__all__ = ["cifar10", "faces", "fashion_mnist", "fashion_scenes", "image_folder", "photos"]
