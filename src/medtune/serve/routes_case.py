"""/v1/analyze_case (JSON, or server-sent events with ``stream: true``) and its published schema."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from ..security.keys import RouteClass
from .analyze import CaseAnalyzer
from .case_schema import AnalyzeCaseRequest, analysis_json_schema
from .context import CLIENT_CLOSED, RequestContext
from .errors import APIError
from .gateway import ClientGone, Gateway
from .guards import guarded_router
from .routes_openai import medtune_field


def make_router() -> APIRouter:
    """/v1/analyze_case and its schema, on a guarded router of their own (one per app)."""
    router = guarded_router(RouteClass.INFERENCE, prefix="/v1", tags=["medtune"])

    @router.get("/analyze_case/schema")
    async def analyze_case_schema() -> dict[str, Any]:
        """JSON Schema of the document POST /v1/analyze_case returns."""
        return analysis_json_schema()

    @router.post("/analyze_case", response_model=None)
    async def analyze_case(body: AnalyzeCaseRequest, request: Request) -> JSONResponse | StreamingResponse:
        """Structured case analysis: reasoning, ranked differential, final answer, red flags, confidence, review flag."""
        gateway: Gateway = request.app.state.gateway
        ctx: RequestContext = request.state.ctx
        analyzer = CaseAnalyzer(gateway, request.app.state.settings)
        if not body.stream:
            try:
                doc = await analyzer.analyze(ctx, body, request)
            except ClientGone:
                return JSONResponse({}, status_code=CLIENT_CLOSED)
            return JSONResponse(doc.model_dump(mode="json"))
        planned = analyzer.prepare(ctx, body)  # a bad model name or an over-long case is a 4xx, not a broken stream
        ticket = gateway.admit()  # and a full queue is a 503
        return StreamingResponse(_events(analyzer, ctx, body, planned, ticket), media_type="text/event-stream",
                                 background=BackgroundTask(ticket.release),
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return router


async def _events(analyzer: CaseAnalyzer, ctx: RequestContext, body: AnalyzeCaseRequest, planned: Any,
                  ticket: Any) -> AsyncIterator[str]:
    """``{"type": "delta", "text"}`` events while the answer is generated, then ``{"type": "analysis", ...}``.

    The first delta carries the ``medtune`` object (the research-use disclaimer, request id, model digest),
    as the first chunk of a chat stream does: no generated text goes out without it, even when the
    stream then ends in an error event instead of the analysis.
    """
    queue: asyncio.Queue = asyncio.Queue()
    first = True

    async def on_delta(text: str) -> None:
        nonlocal first
        event: dict[str, Any] = {"type": "delta", "text": text}
        if first:
            event["medtune"], first = medtune_field(ctx), False
        await queue.put(event)

    async def work() -> None:
        try:
            doc = await analyzer.analyze(ctx, body, on_delta=on_delta, planned=planned, ticket=ticket)
            await queue.put({"type": "analysis", "analysis": doc.model_dump(mode="json")})
        except APIError as e:
            ctx.extra["stream_error_status"] = e.status
            await queue.put(e.body())
        finally:
            await queue.put(None)

    task = asyncio.create_task(work())
    try:
        while (item := await queue.get()) is not None:
            yield f"data: {json.dumps(item)}\n\n"
        yield "data: [DONE]\n\n"
    finally:
        task.cancel()  # a client that went away cancels the generation
        with contextlib.suppress(asyncio.CancelledError):
            await task
