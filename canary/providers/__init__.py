"""Provider adapters, found by name; an SDK is imported only when its adapter is used."""
from __future__ import annotations

import importlib

from .base import CallError, Message, Provider, Reply, Request, ToolCall

# name -> "module:Class" (relative to this package)
PROVIDERS = {
    "anthropic": "anthropic_api:AnthropicProvider",
    "openai": "openai_api:OpenAIProvider",
}


def provider_class(name: str) -> type[Provider]:
    if name not in PROVIDERS:
        raise KeyError(f"unknown provider '{name}' (known: {', '.join(sorted(PROVIDERS))})")
    module, cls = PROVIDERS[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


__all__ = ["PROVIDERS", "provider_class", "CallError", "Message", "Provider", "Reply", "Request", "ToolCall"]
