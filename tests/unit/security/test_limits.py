import time

import pytest

from medtune.config.sections.security import SecuritySection
from medtune.security.limits import (
    Caps,
    LimitError,
    RateLimiter,
    apply_caps,
    check_body_size,
)


def _refusal(fn, *args):
    with pytest.raises(LimitError) as info:
        fn(*args)
    return info.value


def test_request_limit_is_per_key_with_retry_after():
    rl = RateLimiter(requests_per_minute=3, tokens_per_minute=1000)
    for _ in range(3):
        rl.admit("alice")
    err = _refusal(rl.admit, "alice")
    assert err.status == 429 and err.field == "requests_per_minute"
    assert 1 <= err.retry_after <= 60 and err.headers() == {"Retry-After": str(err.retry_after)}
    rl.admit("bob")  # another key has its own window


def test_token_limit_refuses_after_the_budget_is_spent():
    rl = RateLimiter(requests_per_minute=100, tokens_per_minute=50)
    rl.admit("k")
    rl.charge_tokens("k", 30)
    rl.admit("k")  # 20 left: admitted
    rl.charge_tokens("k", 45)  # overshoot is capped at what the window holds
    err = _refusal(rl.admit, "k")
    assert err.status == 429 and err.field == "tokens_per_minute" and err.retry_after >= 1


def test_windows_move():
    rl = RateLimiter(requests_per_minute=2, tokens_per_minute=10, window_seconds=1)
    rl.admit("k")
    rl.admit("k")
    assert _refusal(rl.admit, "k").retry_after == 1
    time.sleep(1.1)
    rl.admit("k")


def test_failed_authentications_per_client():
    rl = RateLimiter(10, 10, auth_failures_per_minute=2)
    rl.check_client("10.0.0.9")
    rl.auth_failed("10.0.0.9")
    rl.auth_failed("10.0.0.9")
    err = _refusal(rl.check_client, "10.0.0.9")
    assert err.status == 429 and err.retry_after >= 1
    rl.check_client("10.0.0.10")


def test_body_cap():
    caps = Caps(max_body_bytes=2048)
    check_body_size(2048, caps)
    check_body_size(None, caps)
    assert _refusal(check_body_size, 2049, caps).status == 413


@pytest.mark.parametrize("body,field", [
    ({"n": 5}, "n"), ({"n": 0}, "n"), ({"n": "2"}, "n"), ({"n": True}, "n"), ({"samples": 32}, "samples"),
    ({"top_logprobs": 6}, "top_logprobs"), ({"logprobs": 50}, "logprobs"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"), ({"stop": "x" * 65}, "stop"), ({"stop": [1]}, "stop"),
    ({"messages": [{"role": "user", "content": "hi"}] * 65}, "messages"),
])
def test_out_of_bounds_parameters_are_422_naming_the_field(body, field):
    err = _refusal(apply_caps, body, Caps())
    assert err.status == 422 and err.field == field and field in str(err)


def test_parameters_within_the_caps_pass():
    assert apply_caps({"max_completion_tokens": 10**9, "logprobs": True, "top_logprobs": 5, "stop": "##", "n": 4}, Caps()) is None
    assert apply_caps({"samples": 4}, Caps()) is None  # analyze_case's samples: max_n, as for n


def test_caps_and_limiter_from_section():
    sec = SecuritySection(max_n=2, requests_per_minute=1)
    assert Caps.from_section(sec).max_n == 2
    rl = RateLimiter.from_section(sec)
    rl.admit("k")
    assert _refusal(rl.admit, "k").status == 429
