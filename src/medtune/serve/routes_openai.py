"""OpenAI-compatible routes: /v1/chat/completions, /v1/completions, /v1/models (thin: parse, gateway, format).

Every answer carries the research-use disclaimer in a top-level ``medtune`` object (with the
request id and the model digest): OpenAI's clients keep unknown fields (``model_extra``) and
ignore them otherwise. In a stream it rides on the first and the last chunk.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from .. import DISCLAIMER
from ..security.keys import RouteClass
from .backends import Finished, Piece, Prompt
from .context import CLIENT_CLOSED, RequestContext
from .errors import APIError
from .gateway import Choice, ClientGone, Gateway
from .guards import guarded_router
from .protocol import ChatCompletionRequest, CompletionRequest

FINISH = {"stop": "stop", "length": "length", "cancelled": "length"}  # cancelled at shutdown: the answer was cut off


def medtune_field(ctx: RequestContext) -> dict[str, Any]:
    return {"disclaimer": DISCLAIMER, "request_id": ctx.request_id, "model_sha256": ctx.model_sha256}


def _usage(ctx: RequestContext) -> dict[str, int]:
    return {"prompt_tokens": ctx.prompt_tokens, "completion_tokens": ctx.completion_tokens,
            "total_tokens": ctx.prompt_tokens + ctx.completion_tokens}


def _fingerprint(gateway: Gateway) -> str | None:
    sha = gateway.identity.sha256
    return f"medtune-{sha[:12]}" if sha else None


def _begin(request: Request, body: Any, prompt: Prompt, id_prefix: str) -> tuple[Gateway, RequestContext, Any, Any, dict]:
    """What both completion routes do first: the model check, logprobs support, the prompt through the
    gateway (PHI policy, context and token budget), sampling parameters and the response envelope."""
    gateway: Gateway = request.app.state.gateway
    ctx: RequestContext = request.state.ctx
    gateway.check_model(body.model)
    prepared, max_tokens = gateway.prepare(ctx, prompt, body.requested_max_tokens())
    params = body.sampling(max_tokens)
    if params.logprobs and not gateway.backend.supports_logprobs:
        raise APIError(400, f"the {gateway.backend.name} backend does not return logprobs", param="logprobs")
    base = {"id": id_prefix + ctx.request_id[4:], "created": int(time.time()), "model": gateway.identity.served_name,
            "system_fingerprint": _fingerprint(gateway)}
    return gateway, ctx, prepared, params, base


def _include_usage(body: Any) -> bool:
    return bool(body.stream_options and body.stream_options.include_usage)


def make_router() -> APIRouter:
    """The OpenAI-compatible routes, on a guarded router of their own (one per app)."""
    router = guarded_router(RouteClass.INFERENCE, prefix="/v1", tags=["openai"])

    @router.get("/models")
    async def list_models(request: Request) -> dict[str, Any]:
        gateway: Gateway = request.app.state.gateway
        ident = gateway.identity
        return {"object": "list", "data": [{"id": ident.served_name, "object": "model", "created": int(request.app.state.started),
                                            "owned_by": "medtune", "medtune": {**ident.public(), "disclaimer": DISCLAIMER}}]}

    @router.post("/chat/completions", response_model=None)
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> JSONResponse | StreamingResponse:
        gateway, ctx, prepared, params, base = _begin(request, body, Prompt(messages=body.plain_messages()), "chatcmpl-")
        if body.stream:
            return _sse(gateway, ctx, prepared, params, lambda e, first: _chat_chunk(base, e, first), base, _include_usage(body))
        try:
            choices = await gateway.complete(ctx, prepared, params, request)
        except ClientGone:
            return JSONResponse({}, status_code=CLIENT_CLOSED)
        return JSONResponse({**base, "object": "chat.completion", "choices": [
            {"index": c.index, "message": {"role": "assistant", "content": c.text},
             "finish_reason": FINISH.get(c.finish_reason, c.finish_reason), "logprobs": {"content": c.logprobs} if params.logprobs else None}
            for c in choices], "usage": _usage(ctx), "medtune": medtune_field(ctx)})

    @router.post("/completions", response_model=None)
    async def completions(body: CompletionRequest, request: Request) -> JSONResponse | StreamingResponse:
        gateway, ctx, prepared, params, base = _begin(request, body, Prompt(text=body.text()), "cmpl-")
        if body.stream:
            return _sse(gateway, ctx, prepared, params, lambda e, first: _text_chunk(base, e), base, _include_usage(body))
        try:
            choices = await gateway.complete(ctx, prepared, params, request)
        except ClientGone:
            return JSONResponse({}, status_code=CLIENT_CLOSED)
        return JSONResponse({**base, "object": "text_completion", "choices": [
            {"index": c.index, "text": c.text, "finish_reason": FINISH.get(c.finish_reason, c.finish_reason),
             "logprobs": legacy_logprobs(c) if params.logprobs else None} for c in choices],
            "usage": _usage(ctx), "medtune": medtune_field(ctx)})

    return router


def legacy_logprobs(choice: Choice) -> dict[str, Any]:
    """The completions API's logprobs layout, from chat-style per-token entries."""
    offsets, at = [], 0
    for e in choice.logprobs:
        offsets.append(at)
        at += len(e["token"])
    return {"tokens": [e["token"] for e in choice.logprobs], "token_logprobs": [e["logprob"] for e in choice.logprobs],
            "top_logprobs": [{t["token"]: t["logprob"] for t in e["top_logprobs"]} for e in choice.logprobs],
            "text_offset": offsets}


def _chat_chunk(base: dict, event: Piece | Finished, first: bool) -> dict:
    if isinstance(event, Piece):
        delta = {"role": "assistant", "content": event.text} if first else {"content": event.text}
        choice = {"index": event.index, "delta": delta, "finish_reason": None,
                  "logprobs": {"content": [event.logprob]} if event.logprob else None}
    else:
        choice = {"index": event.index, "delta": {}, "finish_reason": FINISH.get(event.finish_reason, event.finish_reason)}
    return {**base, "object": "chat.completion.chunk", "choices": [choice]}


def _text_chunk(base: dict, event: Piece | Finished) -> dict:
    if isinstance(event, Piece):
        choice = {"index": event.index, "text": event.text, "finish_reason": None, "logprobs": None}
    else:
        choice = {"index": event.index, "text": "", "finish_reason": FINISH.get(event.finish_reason, event.finish_reason)}
    return {**base, "object": "text_completion", "choices": [choice]}


def _sse(gateway: Gateway, ctx: RequestContext, prepared: Any, params: Any, chunk: Callable[[Any, bool], dict],
         base: dict, include_usage: bool) -> StreamingResponse:
    """A server-sent-event stream; the queue place is taken now, so a full queue is a 503, not a broken 200."""
    ticket = gateway.admit()

    async def events() -> AsyncIterator[str]:
        started: set[int] = set()
        try:
            async with contextlib.aclosing(gateway.run(ctx, prepared, params, ticket)) as stream:
                async for event in stream:
                    first = isinstance(event, Piece) and event.index not in started
                    started.add(event.index)
                    data = chunk(event, first)
                    if len(started) == 1 and first:
                        data["medtune"] = medtune_field(ctx)
                    yield f"data: {json.dumps(data)}\n\n"
            last = {**base, "object": "chat.completion.chunk" if "chatcmpl" in base["id"] else "text_completion",
                    "choices": [], "medtune": medtune_field(ctx)}
            if include_usage:
                last["usage"] = _usage(ctx)
            yield f"data: {json.dumps(last)}\n\n"
        except APIError as e:  # the 200 is already sent: the error travels as an event (OpenAI's clients raise it)
            ctx.extra["stream_error_status"] = e.status
            yield f"data: {json.dumps(e.body())}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", background=BackgroundTask(ticket.release),
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
