"""Anthropic Messages API through the official `anthropic` SDK (async client)."""
from __future__ import annotations

import anthropic

from .base import Message, Provider, Reply, Request, ToolCall, call_sdk, split_params

DEFAULT_MAX_TOKENS = 1024  # the Messages API requires max_tokens; a model's params may set it

STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                "tool_use": "tool_calls", "refusal": "refusal", "model_context_window_exceeded": "length"}


class AnthropicProvider(Provider):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.client = anthropic.AsyncAnthropic(api_key=self.api_key, base_url=self.base_url,
                                               timeout=self.timeout, max_retries=self.max_retries)

    async def complete(self, request: Request) -> Reply:
        params = {"max_tokens": DEFAULT_MAX_TOKENS, **request.params}
        known, extra = split_params(self.client.messages.create, params)
        if request.system:
            known["system"] = request.system
        if request.tools:
            known["tools"] = [{"name": t.name, "description": t.description, "input_schema": t.parameters}
                              for t in request.tools]
        call = self.client.messages.with_raw_response.create(
            model=request.model, messages=[_message(m) for m in request.messages], extra_body=extra or None, **known)
        return await call_sdk(anthropic, anthropic.APIError, call, _reply, _describe)

    def one_token_params(self, params: dict) -> tuple[dict, dict]:
        # the API version this SDK sends refuses temperature (and returns no logprobs): nothing to add
        return {**params, "max_tokens": 1}, {}

    async def aclose(self) -> None:
        await self.client.close()


def _message(m: Message) -> dict:
    if m.role == "user":
        return {"role": "user", "content": m.text}
    if m.role == "tool":
        return {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call_id, "content": content}
            for call_id, _name, content in m.tool_results]}
    if m.native is not None:
        return {"role": "assistant", "content": m.native}
    blocks = [{"type": "text", "text": m.text}] if m.text else []
    blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in m.tool_calls]
    return {"role": "assistant", "content": blocks}


def _reply(msg) -> Reply:
    texts, thinking, calls = [], [], []
    for block in msg.content:
        if block.type == "text":
            texts.append(block.text)
        elif block.type == "thinking":
            thinking.append(block.thinking)
        elif block.type == "tool_use":
            calls.append(ToolCall(block.id, block.name, dict(block.input or {})))
    return Reply(
        text="".join(texts), tool_calls=calls, thinking="\n".join(thinking),
        finish_reason=STOP_REASONS.get(msg.stop_reason, str(msg.stop_reason)),
        input_tokens=msg.usage.input_tokens or 0, output_tokens=msg.usage.output_tokens or 0,
        model=msg.model, request_id=getattr(msg, "_request_id", None),
        native=[b.model_dump(mode="json", exclude_none=True) for b in msg.content])


def _describe(exc: anthropic.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    err = body.get("error", {}) if isinstance(body.get("error"), dict) else {}
    detail = err.get("message") or str(exc)
    return f"HTTP {exc.status_code} {err.get('type', type(exc).__name__)}: {detail}"[:500]



