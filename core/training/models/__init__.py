"""The models: a registry of named builders (registry.py) and the architectures that register in it.

    from core.training.models import list_models, get_model, describe_model, ...

works as before the split: this package re-exports the registry's API and imports the architecture modules
in the picker's order (fastnet first, the default; then the small CNNs; then the ResNets and VGG), each
registering its builders as it is imported.
"""
from core.training.models.registry import (ModelSpec, cam_layer_of, check_model_name, classifier_layer,
                                           describe_model, get_model, list_models, parameter_groups,
                                           register_model)
from core.training.models import fastnet, small_cnns, resnets  # noqa: F401,E402 (registration order: picker order)

__all__ = ["ModelSpec", "register_model", "list_models", "check_model_name", "get_model", "describe_model",
           "parameter_groups", "cam_layer_of", "classifier_layer"]
