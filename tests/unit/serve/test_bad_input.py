"""Bad input gets a clear 4xx in OpenAI's error format, never a 5xx, and the server keeps serving."""

from __future__ import annotations

import httpx
import pytest
from serve_helpers import auth, live_server, make_app

openai = pytest.importorskip("openai")
CHAT = "/v1/chat/completions"
OK_MESSAGES = [{"role": "user", "content": "Chest pain?"}]


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    app = make_app(tiny_model_dir, context_length=128)
    with live_server(app) as (url, _), httpx.Client(base_url=url, headers=auth(app), timeout=60) as client:
        yield client


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    return body["error"]


@pytest.mark.parametrize(("payload", "param", "words"), [
    ({"model": "tiny", "messages": []}, "messages", "at least 1"),
    ({"model": "tiny", "messages": [{"role": "user", "content": "   "}]}, None, "empty"),
    ({"model": "tiny", "messages": "hello"}, "messages", "list"),
    ({"model": "tiny", "messages": [{"role": "doctor", "content": "x"}]}, "messages.0.role", "user"),
    ({"model": "tiny", "messages": OK_MESSAGES, "max_tokens": "ten"}, "max_tokens", "integer"),
    ({"model": "tiny", "messages": OK_MESSAGES, "max_tokens": 0}, "max_tokens", "greater"),
    ({"model": "tiny", "messages": OK_MESSAGES, "temperature": 7}, "temperature", "less"),
    ({"model": "tiny", "messages": OK_MESSAGES, "top_logprobs": 2}, None, "logprobs"),
    ({"model": "tiny", "messages": OK_MESSAGES, "tools": [{"type": "function"}]}, "tools", "not permitted"),
    ({"model": "tiny", "messages": OK_MESSAGES, "frequency_penalty": 0.5}, None, "not supported"),
    ({"messages": OK_MESSAGES}, "model", "required"),
])
def test_wrong_fields_are_400_naming_the_field(server, payload, param, words):
    err = _error(server.post(CHAT, json=payload), 400)
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param
    assert words in err["message"].lower()


@pytest.mark.parametrize(("payload", "param", "words"), [
    ({"model": "tiny", "messages": OK_MESSAGES, "n": 1000}, "n", "between 1 and 4"),
    ({"model": "tiny", "messages": OK_MESSAGES, "stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
    ({"model": "tiny", "messages": OK_MESSAGES * 65}, "messages", "at most 64"),
    ({"model": "tiny", "prompt": "x", "logprobs": 6}, "logprobs", "between 0 and 5"),
])
def test_parameters_over_the_deployments_caps_are_422_naming_the_field(server, payload, param, words):
    path = "/v1/completions" if "prompt" in payload else CHAT
    err = _error(server.post(path, json=payload), 422)
    assert err["param"] == param and err["code"] == "limit_exceeded" and words in err["message"]


def test_malformed_json_and_missing_body(server):
    err = _error(server.post(CHAT, content=b'{"model": "tiny", "messages": [', headers={"content-type": "application/json"}), 400)
    assert err["code"] == "invalid_json" and "malformed JSON" in err["message"]
    err = _error(server.post(CHAT, content=b"", headers={"content-type": "application/json"}), 400)
    assert "body" in err["message"]


def test_unknown_model_is_404_model_not_found(server):
    err = _error(server.post(CHAT, json={"model": "gpt-5", "messages": OK_MESSAGES}), 404)
    assert err["code"] == "model_not_found" and "tiny" in err["message"] and err["param"] == "model"


def test_prompt_longer_than_the_context_names_the_limit(server):
    long = [{"role": "user", "content": "chest pain radiating to the left arm " * 60}]
    err = _error(server.post(CHAT, json={"model": "tiny", "messages": long}), 400)
    assert err["code"] == "context_length_exceeded" and "128 tokens" in err["message"]
    err = _error(server.post("/v1/completions", json={"model": "tiny", "prompt": "fever " * 400}), 400)
    assert err["code"] == "context_length_exceeded" and err["param"] == "prompt"


def test_openai_client_raises_typed_errors(server):
    client = openai.OpenAI(base_url=str(server.base_url).rstrip("/") + "/v1", api_key=server.headers["authorization"][7:], max_retries=0)
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="nope", messages=OK_MESSAGES)
    assert e.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="tiny", messages=[])
    assert e.value.param == "messages"


def test_unknown_route_method_and_case_fields(server):
    assert _error(server.get("/v1/nothing"), 404)["type"] == "not_found_error"
    assert _error(server.get(CHAT), 405)
    err = _error(server.post("/v1/analyze_case", json={"case": "x", "options": {"a": "1", "B": "2"}}), 400)
    assert "capital letters" in err["message"]
    assert _error(server.post("/v1/analyze_case", json={"case": "   "}), 400)["param"] == "case"
    assert _error(server.post("/v1/analyze_case", json={"case": "x", "options": {"A": "only one"}}), 400)
    err = _error(server.post("/v1/completions", json={"model": "tiny", "prompt": ["a", "b"]}), 400)
    assert err["param"] == "prompt"


def test_server_still_answers_after_bad_input(server):
    r = server.post(CHAT, json={"model": "tiny", "messages": OK_MESSAGES, "max_tokens": 4})
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] is not None
