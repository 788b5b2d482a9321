"""OpenAI Chat Completions through the official `openai` SDK; any compatible endpoint via base_url."""
from __future__ import annotations

import json

import openai

from .base import Message, Provider, Reply, Request, ToolCall, call_sdk, split_params

TOP_LOGPROBS = 5  # alternatives asked for the first output token of a fingerprint probe


class OpenAIProvider(Provider):
    api_prefix = "/v1"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.client = openai.AsyncOpenAI(api_key=self.api_key, base_url=self.base_url,
                                         timeout=self.timeout, max_retries=self.max_retries)

    async def complete(self, request: Request) -> Reply:
        known, extra = split_params(self.client.chat.completions.create, dict(request.params))
        messages = [{"role": "system", "content": request.system}] if request.system else []
        for m in request.messages:
            messages += _messages(m)
        if request.tools:
            known["tools"] = [{"type": "function", "function": {
                "name": t.name, "description": t.description, "parameters": t.parameters}} for t in request.tools]
        call = self.client.chat.completions.with_raw_response.create(
            model=request.model, messages=messages, extra_body=extra or None, **known)
        return await call_sdk(openai, openai.OpenAIError, call, _reply, _describe)

    def one_token_params(self, params: dict) -> tuple[dict, dict]:
        limit = "max_tokens" if "max_tokens" in params else "max_completion_tokens"
        extra = {"temperature": 0} if "temperature" not in params else {}
        if "logprobs" not in params:
            extra.update(logprobs=True, top_logprobs=TOP_LOGPROBS)
        return {**params, limit: 1}, extra

    async def aclose(self) -> None:
        await self.client.close()


def _messages(m: Message) -> list[dict]:
    if m.role == "user":
        return [{"role": "user", "content": m.text}]
    if m.role == "tool":
        return [{"role": "tool", "tool_call_id": call_id, "content": content}
                for call_id, _name, content in m.tool_results]
    out = {"role": "assistant", "content": m.text or None}
    if m.tool_calls:
        out["tool_calls"] = [{"id": c.id, "type": "function", "function": {
            "name": c.name, "arguments": json.dumps(c.arguments)}} for c in m.tool_calls]
    return [out]


def _arguments(raw: str | None) -> dict:
    try:
        value = json.loads(raw or "{}")
    except (json.JSONDecodeError, RecursionError):
        return {"_invalid_json": raw}
    return value if isinstance(value, dict) else {"_value": value}


def _reply(completion) -> Reply:
    if not completion.choices:
        raise ValueError("the answer has no choices")
    choice = completion.choices[0]
    msg = choice.message
    refusal = getattr(msg, "refusal", None) if not msg.content else None  # a refusal is an answer
    calls = [ToolCall(c.id, c.function.name, _arguments(c.function.arguments))
             for c in (msg.tool_calls or []) if getattr(c, "function", None)]
    extra = msg.model_extra or {}
    thinking = extra.get("reasoning_content") or extra.get("reasoning") or ""
    usage = completion.usage
    return Reply(
        text=msg.content or refusal or "", tool_calls=calls, thinking=thinking if isinstance(thinking, str) else "",
        finish_reason="refusal" if refusal else choice.finish_reason or "stop",
        input_tokens=(usage.prompt_tokens or 0) if usage else 0,
        output_tokens=(usage.completion_tokens or 0) if usage else 0,
        model=completion.model, request_id=getattr(completion, "_request_id", None),
        top_logprobs=_first_token_logprobs(choice))


def _first_token_logprobs(choice) -> list[tuple[str, float]] | None:
    """(token, logprob) of the first output token's alternatives, most likely first; None if absent."""
    content = getattr(choice.logprobs, "content", None) if choice.logprobs else None
    if not content:
        return None
    first = content[0]
    alternatives = [(t.token, float(t.logprob)) for t in (first.top_logprobs or [])]
    return alternatives or [(first.token, float(first.logprob))]


def _describe(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    err = body.get("error", body) if isinstance(body, dict) else {}
    detail = (err.get("message") if isinstance(err, dict) else None) or str(exc)
    return f"HTTP {exc.status_code}: {detail}"[:500]
