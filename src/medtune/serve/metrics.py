"""Prometheus metrics of one app (its own registry: two apps in one process never share counters)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .context import RequestContext

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, 300)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32)


class Metrics:
    def __init__(self, queue_depth: Callable[[], float], in_flight: Callable[[], float]):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("medtune_requests", "HTTP requests by route and status.", ["route", "status"], registry=r)
        self.latency = Histogram("medtune_request_latency_seconds", "Time from request to the end of its response.",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("medtune_time_to_first_token_seconds", "Time from request to its first generated token.",
                              ["route"], buckets=TTFT_BUCKETS, registry=r)
        self.generated = Counter("medtune_generated_tokens", "Tokens generated.", ["route"], registry=r)
        self.prompt = Counter("medtune_prompt_tokens", "Prompt tokens processed.", ["route"], registry=r)
        self.rejected = Counter("medtune_rejected", "Requests refused before generation, by reason.", ["reason"], registry=r)
        Gauge("medtune_queue_depth", "Samples waiting for a decoding slot.", registry=r).set_function(queue_depth)
        Gauge("medtune_requests_in_flight", "Requests admitted and not finished.", registry=r).set_function(in_flight)

    async def observe(self, ctx: RequestContext) -> None:
        """End-of-request hook: count and time the request (labels are route templates, never raw paths)."""
        route = ctx.route or "unmatched"
        status = ctx.extra.get("stream_error_status", ctx.status)  # an error sent inside a 200 stream
        self.requests.labels(route, str(status)).inc()
        if ctx.latency_s is not None:
            self.latency.labels(route).observe(ctx.latency_s)
        if ctx.first_token_s is not None:
            self.ttft.labels(route).observe(ctx.first_token_s)
        if ctx.completion_tokens:
            self.generated.labels(route).inc(ctx.completion_tokens)
        if ctx.prompt_tokens:
            self.prompt.labels(route).inc(ctx.prompt_tokens)

    def render(self) -> bytes:
        return generate_latest(self.registry)
