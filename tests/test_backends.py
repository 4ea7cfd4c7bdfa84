"""Backends (retrieval, openai against a loopback server, hf with a tiny model), registry and chat turns."""

from __future__ import annotations

from pathlib import Path

import pytest

from cbt.backends.base import GenParams
from cbt.backends.hf import HFBackend
from cbt.backends.openai_backend import OpenAIBackend
from cbt.backends.registry import BackendManager, expand, load_specs
from cbt.backends.retrieval import RetrievalBackend
from cbt.chat import flatten_history, respond
from cbt.compare import compare
from cbt.io import load_sample
from cbt.safety import crisis_reply
from tests.fake_openai import FakeOpenAI

GREEDY = GenParams(max_new_tokens=24, temperature=0.0)
USER = [{"role": "user", "content": "考研失败了，我是不是一无是处？"}]


def test_retrieval_finds_the_record_of_its_own_question() -> None:
    records = load_sample()
    backend = RetrievalBackend(records)
    for r in records[:30]:
        found, score = backend.nearest(r.question + r.description)
        assert found.id == r.id and score > 0.99
    reply = "".join(backend.stream([{"role": "user", "content": records[5].question}], GREEDY))
    assert reply == backend.nearest(records[5].question)[0].answer


def test_openai_backend_streams_from_a_loopback_server() -> None:
    with FakeOpenAI() as server:
        backend = OpenAIBackend(server.base_url, "m", api_key="x")
        pieces = list(backend.stream(USER, GREEDY))
    assert len(pieces) > 3
    assert "".join(pieces) == server.answer_for(USER[0]["content"])


def test_hf_backend_stream_batch_and_left_padding(tiny_model_dir: Path) -> None:
    backend = HFBackend(str(tiny_model_dir), device="cpu")
    other = [{"role": "user", "content": "我总是失眠"}]
    streamed = "".join(backend.stream(USER, GREEDY)).strip()
    singles = [backend.generate_batch([m], GREEDY)[0] for m in (USER, other)]
    assert streamed == singles[0] and streamed
    assert backend.generate_batch([USER, other], GREEDY) == singles  # left padding changes nothing


def test_hf_backend_loads_a_lora_adapter(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    torch.manual_seed(1)
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    with_adapter = HFBackend(str(tiny_model_dir), adapter=str(tmp_path / "adapter"), device="cpu")
    plain = HFBackend(str(tiny_model_dir), device="cpu")
    live = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tmp_path / "adapter")
    prompt = with_adapter.prompter.chat_prompt(USER)
    from transformers import AutoTokenizer

    plain_tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = plain_tok(prompt, return_tensors="pt")
    with torch.no_grad():
        ref = live.generate(
            **ids, max_new_tokens=24, do_sample=False, repetition_penalty=1.1, pad_token_id=plain_tok.pad_token_id
        )
    expected = plain_tok.decode(ref[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).strip()
    assert with_adapter.generate_batch([USER], GREEDY) == [expected]  # merged at load, same output
    assert with_adapter.generate_batch([USER], GREEDY) != plain.generate_batch([USER], GREEDY)


def test_registry_expands_env_and_reports_why_a_backbone_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TINY", str(tiny_model_dir))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert expand("${NOPE:-fallback}") == "fallback" and expand("${TINY}") == str(tiny_model_dir)
    cfg = tmp_path / "b.yaml"
    cfg.write_text(
        "default: tiny\nbackbones:\n"
        "  tiny: {type: hf, label: Tiny, model: '${TINY}', device: cpu}\n"
        "  missing: {type: hf, label: Missing, model: /nonexistent/model}\n"
        "  adapterless: {type: hf, label: A, model: '${TINY}', adapter: /nonexistent/adapter}\n"
        "  openai: {type: openai, label: O, base_url: '${OPENAI_BASE_URL:-}', model: m}\n"
        "  retrieval: {type: retrieval, label: R}\n",
        encoding="utf-8",
    )
    manager = BackendManager.from_config(cfg).start(background=False)
    st = manager.status
    assert st["tiny"].state == st["retrieval"].state == "ready"
    assert st["missing"].state == "unavailable" and "/nonexistent/model" in st["missing"].message
    assert "adapter not found" in st["adapterless"].message and "OPENAI_BASE_URL" in st["openai"].message
    assert manager.preferred() == "tiny"
    with pytest.raises(RuntimeError, match="unavailable"):
        manager.get("missing")
    bad = tmp_path / "bad.yaml"
    bad.write_text("backbones:\n  x: {type: magic, label: X}\n")
    with pytest.raises(ValueError, match="unknown type 'magic'"):
        load_specs(bad)


def test_shipped_backbones_file_has_the_contract_ids() -> None:
    specs, default = load_specs(Path(__file__).resolve().parents[1] / "configs" / "backbones.yaml")
    assert {"cbt-mini", "gemma-270m-base", "retrieval", "cbt-llm", "openai"} <= {s.id for s in specs}
    assert default == "cbt-mini"


# ---------------------------------------------------------------- chat turns


def test_crisis_message_never_reaches_the_model() -> None:
    class Exploding(RetrievalBackend):
        def stream(self, messages, params):
            raise AssertionError("the model must not be called on a crisis message")

    turns = list(respond("我不想活了，药都攒好了", [], Exploding(load_sample()), "", GREEDY))
    assert len(turns) == 1 and turns[0].crisis and turns[0].reply == crisis_reply("zh")
    (en,) = respond("I want to kill myself", [], Exploding(load_sample()), "", GREEDY)
    assert en.reply == crisis_reply("en")


def test_reply_streams_with_sections_and_distortions() -> None:
    backend = RetrievalBackend(load_sample())
    turns = list(respond(load_sample()[0].question, [], backend, "system", GREEDY))
    final = turns[-1]
    assert final.done and not final.crisis and "".join(t for t, _ in final.pieces) == final.reply
    assert {label for _, label in final.pieces if label} and final.structure_score > 0.5
    with pytest.raises(ValueError, match="too long"):
        list(respond("字" * 2001, [], backend, "", GREEDY))


def test_history_from_gradio_is_flattened() -> None:
    hist = [{"role": "user", "content": [{"type": "text", "text": "你好"}]}, {"role": "assistant", "content": "嗯"}]
    assert flatten_history(hist) == [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "嗯"}]


def test_compare_asks_each_backbone_and_survives_a_broken_one(tmp_path: Path) -> None:
    cfg = tmp_path / "b.yaml"
    cfg.write_text(
        "backbones:\n  retrieval: {type: retrieval, label: R}\n  gone: {type: hf, label: G, model: /nonexistent}\n"
    )
    manager = BackendManager.from_config(cfg).start(background=False)
    rec = load_sample()[3]
    cols, crisis = compare(manager, ["retrieval", "gone"], rec.question, rec.description, GREEDY)
    assert crisis is None and cols[0].reply and cols[0].structure_score > 0 and cols[0].latency_s >= 0
    assert cols[1].error and not cols[1].reply
    cols, crisis = compare(manager, ["retrieval", "gone"], "我想自杀", "", GREEDY)
    assert cols == [] and "12356" in crisis
    with pytest.raises(ValueError, match="2 to 4"):
        compare(manager, ["retrieval"], "q", "d", GREEDY)
