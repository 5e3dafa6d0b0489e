"""Fuzz: schemathesis generates requests from the server's own OpenAPI document (valid ones and deliberately
broken ones), each sent with a valid key of the role its route needs: over 1,000 requests, not one 5xx, and the
server still answers afterwards. Offline: the schema comes from the live server, nothing is fetched elsewhere.

Run alone: `pytest tests/unit/serve/test_fuzz.py -q` (about a minute on the tiny model, short max_tokens)."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest
from serve_helpers import auth, live_server, make_app

from medtune.serve.guards import ROUTE_CLASS_KEY

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

ROLE_FOR_CLASS = {"inference": "clinician", "audit": "auditor", "keys": "admin", "ops": "monitor", "public": None}
# examples per operation and generation mode; bodies get more (that is where the input space is)
EXAMPLES = {"POST": 90, "DELETE": 40, "GET": 25}
MIN_REQUESTS = 1000


def fuzz(op, mode, url: str, headers: dict, statuses: Counter) -> None:
    """Send the examples hypothesis draws for one operation and generation mode; fail on any 5xx."""
    from hypothesis import HealthCheck, Phase, given, settings

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES[op.method.upper()], deadline=None, database=None, derandomize=True,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    def send(case):
        response = case.call(base_url=url, headers=headers, timeout=60)
        statuses[response.status_code] += 1
        assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.text[:300])

    try:
        send()
    except hypothesis.errors.Unsatisfiable:
        # some operations have no invalid form to generate (no parameters; a path string takes anything)
        assert mode is schemathesis.GenerationMode.NEGATIVE


def test_fuzzing_the_openapi_schema_finds_no_5xx(tiny_model_dir, tmp_path):
    app = make_app(tiny_model_dir, folder=tmp_path, max_tokens_default=4, max_tokens_ceiling=4, analyze_max_tokens=16,
                   context_length=256, security={"auth_failures_per_minute": 100_000})
    statuses: Counter = Counter()
    with live_server(app) as (url, _):
        document = httpx.get(url + "/openapi.json", headers=auth(app)).json()
        schema = schemathesis.openapi.from_dict(document)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 12
        for op in operations:
            role = ROLE_FOR_CLASS[document["paths"][op.path][op.method.lower()][ROUTE_CLASS_KEY]]
            for mode in schemathesis.GenerationMode:
                fuzz(op, mode, url, auth(app, role) if role else {}, statuses)
        assert sum(statuses.values()) >= MIN_REQUESTS, statuses
        assert statuses[200] > 100 and statuses[400] > 100, statuses  # both valid and broken requests went through
        # alive after: liveness, and a real generation
        assert httpx.get(url + "/health").status_code == 200
        r = httpx.post(url + "/v1/chat/completions", headers=auth(app), timeout=60,
                       json={"model": "tiny", "messages": [{"role": "user", "content": "Fever?"}], "max_tokens": 2})
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] is not None
