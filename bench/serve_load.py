"""Load test: medtune serve vs llama-cpp-python's own server on the same Q4_K_M GGUF, 1/8/32 concurrent clients.

    .venv/bin/python bench/serve_load.py                       # the embedded SmolLM2-135M as Q4_K_M
    .venv/bin/python bench/serve_load.py --gguf model.gguf --clients 1 8 32 --requests 64 --max-tokens 64

Both servers run as subprocesses on loopback (``medtune serve GGUF`` with ``--slots`` parallel
sequences, and ``python -m llama_cpp.server --model GGUF``), with the same CPU thread count.
medtune runs its whole security path, as deployed: an API key per request, the PHI policy on every
prompt and an fsynced audit event per request (key store, audit log and secrets in a temporary
folder; rate limits raised out of the way).
Each client sends streaming chat completions one after another (fixed prompts, cycled; greedy;
fixed ``max_tokens``) until the level's request count is reached. Levels and servers alternate
over ``--rounds`` rounds, so load changes on a shared machine hit both alike; the tables report
the medians over rounds of: requests/s, generated tokens/s (the servers' usage counts), p50/p95
latency, p50/p95 time to first token, and failed requests (any non-200 or broken stream).

Goals (issue #13): at 1 client medtune's p50 latency <= 1.10x the raw server's; at 8 clients
medtune's generated tokens/s >= 2x; 0 failed requests at every level. The Q4_K_M file is made by
medtune's own export code (``convert_hf_to_gguf`` F16, then ``quantize_gguf``) from the embedded
model and cached under $MEDTUNE_HOME/bench/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

PROMPTS = [
    "A 58-year-old man has crushing chest pain radiating to the left arm. What is the most likely diagnosis?",
    "A 24-year-old woman has fever, dysuria and flank pain. What is the next best test?",
    "A child has a barking cough and inspiratory stridor. What is the treatment?",
    "A 70-year-old woman has sudden painless loss of vision in one eye. What is the most likely cause?",
    "Fatigue, weight gain and cold intolerance: which laboratory test comes first?",
    "A 65-year-old smoker has hemoptysis and weight loss. What is the next step?",
    "A 30-year-old has polyuria, polydipsia and a glucose of 410 mg/dL with ketones. What is the diagnosis?",
    "Sudden severe headache, the worst of her life, with neck stiffness. What test comes first?",
]


def embedded_q4_k_m() -> Path:
    """The embedded SmolLM2-135M as Q4_K_M, made once with medtune's export code and cached."""
    from medtune.export.common import Provenance
    from medtune.export.gguf import convert_hf_to_gguf
    from medtune.export.quantize import quantize_gguf
    from medtune.models.embedded import materialize_embedded
    from medtune.utils.paths import medtune_home

    out = medtune_home() / "bench" / "smollm2-135m-q4_k_m.gguf"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        f16 = out.with_name("smollm2-135m-f16.gguf")
        convert_hf_to_gguf(materialize_embedded(), f16, "f16", Provenance(base_model="HuggingFaceTB/SmolLM2-135M-Instruct"))
        quantize_gguf(f16, out, "q4_k_m")
        f16.unlink()
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def medtune_security() -> tuple[dict[str, str], dict[str, str]]:
    """(environment for `medtune serve`, request headers): a fresh key store, audit log and secrets, one key."""
    import tempfile

    from medtune.security.keys import KeyStore

    folder = Path(tempfile.mkdtemp(prefix="medtune-bench-"))
    env = {"MEDTUNE_SECURITY__KEYS_FILE": str(folder / "secrets" / "keys.json"),
           "MEDTUNE_SECURITY__AUDIT_DIR": str(folder / "audit"),
           "MEDTUNE_SECURITY__AUDIT_HMAC_KEY": str(folder / "secrets" / "audit-hmac.key"),
           "MEDTUNE_SECURITY__AUDIT_SIGNING_KEY": str(folder / "secrets" / "audit-signing.pem"),
           "MEDTUNE_SECURITY__REQUESTS_PER_MINUTE": "1000000", "MEDTUNE_SECURITY__TOKENS_PER_MINUTE": "100000000"}
    key, _ = KeyStore(env["MEDTUNE_SECURITY__KEYS_FILE"]).create("bench", "clinician")
    return env, {"Authorization": f"Bearer {key}"}


def start(kind: str, gguf: Path, threads: int, slots: int, n_ctx: int) -> tuple[subprocess.Popen, str, dict[str, str]]:
    port = free_port()
    env, headers = dict(os.environ), {}
    if kind == "medtune":
        cmd = [sys.executable, "-m", "medtune", "serve", str(gguf), "--port", str(port), "--slots", str(slots),
               "--queue-size", "256", "--threads", str(threads), "--context-length", str(n_ctx), "--log-level", "warning",
               "--served-name", "bench"]
        security_env, headers = medtune_security()
        env.update(security_env)
    else:
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
               "--n_ctx", str(n_ctx), "--n_threads", str(threads), "--n_threads_batch", str(threads), "--verbose", "False",
               "--interrupt_requests", "False"]  # its default aborts a running stream when the next request arrives
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{kind} server exited: {proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(url + "/v1/models", timeout=2, headers=headers).status_code == 200:
                return proc, url, headers
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"{kind} server did not start in 180 s")


async def one_request(client: httpx.AsyncClient, url: str, prompt: str, max_tokens: int,
                      headers: dict[str, str]) -> dict[str, Any]:
    body = {"model": "bench", "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    ttft, chunks, usage = None, 0, None
    try:
        async with client.stream("POST", url + "/v1/chat/completions", json=body, headers=headers) as r:
            if r.status_code != 200:
                return {"ok": False, "status": r.status_code}
            async for line in r.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                data = json.loads(line[6:])
                if "error" in data:
                    return {"ok": False, "status": "stream error"}
                usage = data.get("usage") or usage
                for c in data.get("choices") or []:
                    if (c.get("delta") or {}).get("content"):
                        chunks += 1
                        ttft = ttft if ttft is not None else time.perf_counter() - t0
    except httpx.HTTPError as e:
        return {"ok": False, "status": type(e).__name__}
    tokens = usage["completion_tokens"] if usage else chunks
    return {"ok": True, "latency": time.perf_counter() - t0, "ttft": ttft, "tokens": tokens}


async def run_level(url: str, clients: int, requests: int, max_tokens: int,
                    headers: dict[str, str]) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    counter = iter(range(requests))

    async def client_loop(client: httpx.AsyncClient) -> None:
        for i in counter:
            results.append(await one_request(client, url, PROMPTS[i % len(PROMPTS)], max_tokens, headers))

    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
        wall = time.perf_counter() - t0
    ok = [r for r in results if r["ok"]]
    lat = sorted(r["latency"] for r in ok) or [float("nan")]
    ttft = sorted(r["ttft"] for r in ok if r["ttft"] is not None) or [float("nan")]
    return {"requests": len(results), "failed": len(results) - len(ok), "wall_s": wall,
            "requests_per_s": len(ok) / wall, "tokens_per_s": sum(r["tokens"] for r in ok) / wall,
            "p50_latency_s": _pct(lat, 50), "p95_latency_s": _pct(lat, 95), "p50_ttft_s": _pct(ttft, 50),
            "p95_ttft_s": _pct(ttft, 95)}


def _pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf", type=Path, help="GGUF to serve (default: the embedded model as Q4_K_M).")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--requests", type=int, default=64, help="Requests per level (at least the client count).")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--slots", type=int, default=8, help="medtune's parallel sequences.")
    ap.add_argument("--n-ctx", type=int, default=2048, help="Context per sequence (both servers).")
    ap.add_argument("--out", type=Path, default=Path("bench_serve_load.json"))
    args = ap.parse_args()
    gguf = args.gguf or embedded_q4_k_m()
    servers = {kind: start(kind, gguf, args.threads, args.slots, args.n_ctx) for kind in ("medtune", "llama_cpp")}
    rows: dict[tuple[str, int], list[dict[str, Any]]] = {}
    try:
        for _proc, url, headers in servers.values():  # warm-up: first requests load pages and caches
            asyncio.run(run_level(url, 1, 2, 8, headers))
        for rnd in range(args.rounds):
            for clients in args.clients:
                order = list(servers) if rnd % 2 == 0 else list(reversed(servers))
                for kind in order:
                    n = max(args.requests, clients)
                    _proc, url, headers = servers[kind]
                    rows.setdefault((kind, clients), []).append(asyncio.run(run_level(url, clients, n, args.max_tokens, headers)))
                    print(f"round {rnd + 1} {kind:9s} {clients:3d} clients: {rows[(kind, clients)][-1]}", flush=True)
    finally:
        for proc, _url, _headers in servers.values():
            proc.terminate()
            proc.wait(60)
    report(rows, args, gguf)


def report(rows: dict[tuple[str, int], list[dict[str, Any]]], args: argparse.Namespace, gguf: Path) -> None:
    med = {key: {k: statistics.median(r[k] for r in runs) for k in runs[0]} | {"failed": sum(r["failed"] for r in runs)}
           for key, runs in rows.items()}
    print(f"\n{gguf.name}, max_tokens {args.max_tokens}, {args.threads} threads, medtune slots {args.slots}, "
          f"medians of {args.rounds} rounds\n")
    print("| server | clients | requests/s | generated tokens/s | p50 latency s | p95 latency s | p50 TTFT s | p95 TTFT s | failed |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (kind, clients), m in sorted(med.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(f"| {kind} | {clients} | {m['requests_per_s']:.2f} | {m['tokens_per_s']:.1f} | {m['p50_latency_s']:.3f} | "
              f"{m['p95_latency_s']:.3f} | {m['p50_ttft_s']:.3f} | {m['p95_ttft_s']:.3f} | {m['failed']} |")
    goals = {}
    if ("medtune", 1) in med and ("llama_cpp", 1) in med:
        goals["overhead_1_client"] = med[("medtune", 1)]["p50_latency_s"] / med[("llama_cpp", 1)]["p50_latency_s"] - 1
    if ("medtune", 8) in med and ("llama_cpp", 8) in med:
        goals["tokens_per_s_ratio_8_clients"] = med[("medtune", 8)]["tokens_per_s"] / med[("llama_cpp", 8)]["tokens_per_s"]
    goals["failed_total"] = sum(m["failed"] for m in med.values())
    print("\n" + ", ".join(f"{k} = {v:.3f}" if isinstance(v, float) else f"{k} = {v}" for k, v in goals.items()))
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "gguf": str(gguf),
                                    "medians": {f"{k}@{c}": m for (k, c), m in med.items()}, "goals": goals,
                                    "runs": {f"{k}@{c}": r for (k, c), r in rows.items()}}, indent=2))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
