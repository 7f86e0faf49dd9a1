"""Model zoo: registered classifiers (trained here, real pretrained CIFAR-10, timm ImageNet)."""
from .architectures import Classifier, InputConfig
from .training import Recipe
from .zoo import REGISTRY, ModelSpec, ensure_trained, get_spec, list_models, load, read_metadata

__all__ = ["Classifier", "InputConfig", "Recipe", "REGISTRY", "ModelSpec", "get_spec",
           "list_models", "load", "read_metadata", "ensure_trained"]
