"""Model registry: `create_model(name, **kwargs)`; model modules (and MindSpore) are imported on first use."""

from __future__ import annotations

import importlib
from typing import Any

from birealnet_exp.errors import UsageError

_MODELS = {
    "birealnet18": "birealnet_exp.models.birealnet:birealnet18",
    "birealnet34": "birealnet_exp.models.birealnet:birealnet34",
}


def list_models() -> list[str]:
    """Names `create_model` accepts."""
    return sorted(_MODELS)


def create_model(name: str, **kwargs: Any) -> Any:
    """Build the registered model `name` with the factory's keyword arguments."""
    if name not in _MODELS:
        raise UsageError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    module_name, factory_name = _MODELS[name].split(":")
    factory = getattr(importlib.import_module(module_name), factory_name)
    return factory(**kwargs)
