"""A tiny causal LM built in seconds (2 layers, hidden 64) with a tokenizer trained on the fly.

No download: the tokenizer is a byte-level BPE learned from the sample set, the model a seeded random Llama.
"""

from __future__ import annotations

from pathlib import Path


def build_tiny_model(out_dir: Path, vocab_size: int = 600, seed: int = 0) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from cbt.io import load_sample
    from cbt.prompter import Prompter

    out_dir.mkdir(parents=True, exist_ok=True)
    p = Prompter()
    corpus = [p.model_prompt(p.instruction, r.question + "\n" + r.description) + r.answer for r in load_sample()]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    fast.save_pretrained(out_dir)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, max_position_embeddings=2048, bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id, tie_word_embeddings=False,
        initializer_range=0.2,  # a frozen LM head of larger scale lets a LoRA adapter move the logits
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(out_dir)
    return out_dir
