"""Length cap and rate limits (cbt/limits.py), and their order against the crisis check in chat and compare."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from cbt.backends.base import GenParams
from cbt.backends.registry import BackendManager
from cbt.backends.retrieval import RetrievalBackend
from cbt.chat import respond
from cbt.compare import compare
from cbt.io import load_sample
from cbt.limits import (
    GenerationLimiter,
    InputTooLong,
    KeyedBuckets,
    RateLimited,
    check_length,
    crisis_scan_text,
    max_message_chars,
    parse_rate,
    request_keys,
)
from cbt.safety import crisis_reply

GREEDY = GenParams(max_new_tokens=64, temperature=0.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_refills_at_the_rate() -> None:
    clock = Clock()
    b = KeyedBuckets(per_minute=6, burst=3, clock=clock)  # one token every 10 s
    assert [b.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.take("a") == pytest.approx(10.0)
    assert b.take("b") == 0.0  # keys are independent
    clock.now += 5
    assert b.take("a") == pytest.approx(5.0)
    clock.now += 5
    assert b.take("a") == 0.0
    clock.now += 3600  # refill stops at the burst
    assert [b.take("a") for _ in range(4)][-1] > 0


def test_bucket_forgets_the_oldest_idle_keys() -> None:
    clock = Clock()
    b = KeyedBuckets(per_minute=1, burst=1, clock=clock, max_keys=2)
    b.take("a"), b.take("b"), b.take("c")
    assert len(b._buckets) == 2 and "a" not in b._buckets


def test_zero_rate_means_no_limit() -> None:
    b = KeyedBuckets(per_minute=0, burst=0)
    assert all(b.take("x") == 0.0 for _ in range(1000))


def test_bucket_is_exact_under_threads() -> None:
    b = KeyedBuckets(per_minute=1e-9, burst=50)
    granted = []

    def worker() -> None:
        for _ in range(20):
            if b.take("k") == 0.0:
                granted.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 50


def test_limiter_needs_both_session_and_client_tokens() -> None:
    clock = Clock()
    lim = GenerationLimiter(KeyedBuckets(60, 2, clock), KeyedBuckets(60, 3, clock))
    lim.check("s1", "ip")
    lim.check("s1", "ip")
    with pytest.raises(RateLimited, match=r"please wait 1 s") as err:
        lim.check("s1", "ip")  # the session is out
    assert err.value.retry_after == pytest.approx(1.0)
    lim.check("s2", "ip")  # a new session on the same client: the client bucket still has one
    with pytest.raises(RateLimited):
        lim.check("s3", "ip")  # now the client is out, whatever the session
    clock.now += 1
    lim.check("s3", "ip")


def test_limits_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CBT_RATE_SESSION", "2:1")
    monkeypatch.setenv("CBT_RATE_CLIENT", "0")
    lim = GenerationLimiter.from_env()
    assert (lim.session.rate, lim.session.burst, lim.client.rate) == (2 / 60, 1.0, 0.0)
    monkeypatch.setenv("CBT_RATE_SESSION", "fast")
    with pytest.raises(ValueError, match="'fast': expected PER_MINUTE"):
        GenerationLimiter.from_env()
    with pytest.raises(ValueError, match="burst >= 1"):
        parse_rate("10:0")
    monkeypatch.setenv("CBT_MAX_MESSAGE_CHARS", "50")
    assert max_message_chars() == 50
    with pytest.raises(InputTooLong, match="51 characters \\(at most 50\\)"):
        check_length("x" * 51)


def test_request_keys_session_client_and_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    req = SimpleNamespace(
        session_hash="abc", client=SimpleNamespace(host="10.0.0.5"), headers={"x-forwarded-for": "1.2.3.4, 10.0.0.1"}
    )
    monkeypatch.delenv("CBT_TRUST_PROXY", raising=False)
    assert request_keys(req) == ("abc", "10.0.0.5")  # a forged header is ignored without a proxy
    monkeypatch.setenv("CBT_TRUST_PROXY", "1")
    assert request_keys(req) == ("abc", "10.0.0.1")  # the address the one trusted proxy appended
    monkeypatch.setenv("CBT_TRUST_PROXY", "2")
    assert request_keys(req) == ("abc", "1.2.3.4")
    plain = SimpleNamespace(session_hash=None, client=SimpleNamespace(host="10.0.0.7"), headers={})
    assert request_keys(plain) == ("client:10.0.0.7", "10.0.0.7")
    assert request_keys(None) == ("local", "local")


def test_crisis_scan_reads_head_and_tail_of_huge_text() -> None:
    text = "我不想活了" + "今天天气不错。" * 10_000 + "药都攒好了"
    scanned = crisis_scan_text(text)
    assert len(scanned) <= 20_001 and scanned.startswith("我不想活了") and scanned.endswith("药都攒好了")


class Exploding(RetrievalBackend):
    def stream(self, messages, params):
        raise AssertionError("the model must not be called")


def refuse() -> None:
    raise RateLimited("too many requests: please wait 9 s before asking again", 9)


def test_crisis_reply_beats_length_cap_rate_limit_and_missing_backbone() -> None:
    def no_backbone():
        raise RuntimeError("backbone 'x' is loading")

    long_crisis = "最近压力很大。" * 400 + "我真的不想活了，药都攒好了"
    assert len(long_crisis) > 2000
    for backend in (Exploding(load_sample()), no_backbone):
        (turn,) = respond(long_crisis, [], backend, "", GREEDY, allow=refuse)
        assert turn.crisis and turn.reply == crisis_reply("zh")


def test_over_long_and_rate_limited_messages_are_refused_before_the_model() -> None:
    with pytest.raises(InputTooLong, match="2001 characters"):
        list(respond("字" * 2001, [], Exploding(load_sample()), "", GREEDY))
    with pytest.raises(RateLimited, match="wait 9 s"):
        list(respond("考研又失败了，我是不是一无是处？", [], Exploding(load_sample()), "", GREEDY, allow=refuse))
    calls = []
    turns = list(
        respond(
            load_sample()[0].question, [], RetrievalBackend(load_sample()), "", GREEDY, allow=lambda: calls.append(1)
        )
    )
    assert calls == [1] and turns[-1].done and turns[-1].reply


def test_compare_checks_crisis_first_then_cap_then_rate(tmp_path: Path) -> None:
    cfg = tmp_path / "b.yaml"
    cfg.write_text("backbones:\n  r1: {type: retrieval, label: R1}\n  r2: {type: retrieval, label: R2}\n")
    manager = BackendManager.from_config(cfg).start(background=False)
    cols, crisis = compare(manager, ["r1", "r2"], "我想自杀", "字" * 3000, GREEDY, allow=refuse)
    assert cols == [] and "12356" in crisis
    with pytest.raises(InputTooLong):
        compare(manager, ["r1", "r2"], "考研失败", "字" * 3000, GREEDY)
    with pytest.raises(RateLimited):
        compare(manager, ["r1", "r2"], "考研失败", "家里人很失望", GREEDY, allow=refuse)
    cols, crisis = compare(manager, ["r1", "r2"], "考研失败", "家里人很失望", GREEDY, allow=lambda: None)
    assert crisis is None and all(c.reply for c in cols)
