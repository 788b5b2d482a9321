"""The one small interface every provider adapter implements, and its neutral data types.

An adapter only turns a `Request` into an API call through its official SDK and the answer
into a `Reply`, and classifies its errors into a `CallError`. Retries happen inside the SDK
(bounded by `max_retries`); concurrency, turns and tool rounds belong to the runner.
"""
from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

ERROR_KINDS = ("rate_limit", "overloaded", "server", "timeout", "connection", "bad_request", "auth", "other")


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict


@dataclass
class Message:
    """One message of a conversation, provider-neutral."""

    role: str  # "user" | "assistant" | "tool"
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_results: list[tuple[str, str, str]] = field(default_factory=list)  # (call id, name, content)
    native: Any = None  # an assistant message in its provider's own form, sent back unchanged


@dataclass
class Request:
    model: str
    system: str | None
    messages: list[Message]
    tools: list  # suites.Tool: name, description, JSON Schema parameters
    params: dict


@dataclass
class Reply:
    text: str
    tool_calls: list[ToolCall]
    finish_reason: str  # stop | length | tool_calls | refusal | content_filter | the raw value
    input_tokens: int
    output_tokens: int
    model: str  # the model id the API reported
    request_id: str | None = None
    thinking: str = ""  # kept for the record, never scored as the answer
    native: Any = None
    top_logprobs: list[tuple[str, float]] | None = None  # the first output token's, where the API returns them


class CallError(Exception):
    """A call that failed after the SDK's own retries: a service failure, never a wrong answer."""

    def __init__(self, kind: str, message: str, status: int | None = None, request_id: str | None = None):
        assert kind in ERROR_KINDS, kind
        self.kind, self.status, self.request_id = kind, status, request_id
        super().__init__(message)


async def call_sdk(sdk, base_error: type[Exception], request, parse, describe) -> Reply:
    """Await an official SDK call (the anthropic and openai SDKs share their error classes'
    names) and parse its answer; every failure becomes a CallError with its class."""
    try:
        answer = await request
    except sdk.APIStatusError as exc:
        raise CallError(kind_for_status(exc.status_code), describe(exc), exc.status_code, exc.request_id) from None
    except sdk.APITimeoutError as exc:
        raise CallError("timeout", f"timed out: {exc}") from None
    except sdk.APIConnectionError as exc:
        raise CallError("connection", f"connection failed: {exc}") from None
    except base_error as exc:
        raise CallError("other", f"{type(exc).__name__}: {exc}") from None
    try:
        return parse(answer)
    except (AttributeError, TypeError, ValueError, KeyError) as exc:  # a proxy's malformed answer
        raise CallError("other", f"unexpected response from the API: {type(exc).__name__}: {exc}") from None


def kind_for_status(status: int | None) -> str:
    if status is None:
        return "other"
    if status == 429:
        return "rate_limit"
    if status == 529:
        return "overloaded"
    if status in (401, 403):
        return "auth"
    if status == 408:
        return "timeout"
    if status >= 500:
        return "server"
    if 400 <= status < 500:
        return "bad_request"
    return "other"


@lru_cache(maxsize=64)
def _keywords(create: Callable) -> frozenset[str]:
    return frozenset(inspect.signature(create).parameters) - {"extra_body", "extra_headers", "extra_query"}


def split_params(create: Callable, params: dict) -> tuple[dict, dict]:
    """(keyword arguments the SDK method knows, the rest for `extra_body`): both sent as written."""
    known = _keywords(getattr(create, "__func__", create))
    return ({k: v for k, v in params.items() if k in known},
            {k: v for k, v in params.items() if k not in known})


class Provider(ABC):
    """One configured model behind one official SDK client."""

    api_prefix = ""  # path under a server's root where this API lives (OpenAI-style servers: /v1)

    def __init__(self, *, api_key: str, base_url: str | None, timeout: float, max_retries: int):
        self.api_key, self.base_url = api_key, base_url
        self.timeout, self.max_retries = timeout, max_retries

    @abstractmethod
    async def complete(self, request: Request) -> Reply:
        """One API call; raises CallError when the service failed."""

    def one_token_params(self, params: dict) -> tuple[dict, dict]:
        """For a fingerprint probe: (the model's params with the output limited to one token,
        what this API also takes for it: temperature 0, first-token logprobs). Sent together;
        the second part is dropped if the endpoint refuses it (a 400)."""
        raise NotImplementedError(f"{type(self).__name__} cannot make one-token calls")

    async def aclose(self) -> None:
        """Release the SDK client's connections."""
