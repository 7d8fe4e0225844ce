"""A tiny Qwen2-shaped model with random weights and a locally trained tokenizer.

No model hub is reachable from the machines this project is built and tested on, so the tests
and the CPU benchmark build their own model: the real architecture and the real vLLM engine,
at a size that starts in seconds on a CPU. Its output is gibberish, which is exactly what the
verification stage must reject with the right reasons.
"""

from __future__ import annotations

import json
from pathlib import Path

# Qwen3's chat template, reduced to what groundtrace uses: user/assistant turns, a generation
# prompt, and ``enable_thinking`` (False pre-fills an empty think block, as Qwen3 does).
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]

_CORPUS = [
    "def main_solution(n):\n    total = 0\n    for i in range(n):\n        total += i\n    return total\n",
    "Let me trace the code step by step. First, the function is called with the input values.",
    "The loop runs over each element, and the running total is updated after every step.",
    "So the final answer is 42. The returned value is a list of numbers [1, 2, 3] and a dict {'a': 1}.",
    " >>> Call to main_solution\n ...... x = 3\n    1 | def main_solution(x):\n <<< Return value",
    "Given a question, an input, solution code and an execution trace, translate it into reasoning.",
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 _=+-*/%<>()[]{}:;,.'\"!?#|\n\t",
]


def build_tiny_model(folder: str | Path, *, vocab_size: int = 2048, hidden: int = 64,
                     layers: int = 2, heads: int = 2, head_dim: int = 32,
                     max_positions: int = 8192, seed: int = 0) -> Path:
    """Write config, random bf16 weights and a BPE tokenizer with a chat template to ``folder``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(SPECIAL_TOKENS), special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS * 20, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=max(vocab_size, len(fast)), hidden_size=hidden, intermediate_size=hidden * 2,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
        head_dim=head_dim, max_position_embeddings=max_positions, tie_word_embeddings=True,
        eos_token_id=fast.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=fast.convert_tokens_to_ids("<|endoftext|>"),
        bos_token_id=None, torch_dtype="bfloat16",
    )
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    (folder / "generation_config.json").write_text(json.dumps({
        "eos_token_id": config.eos_token_id, "pad_token_id": config.pad_token_id,
    }))
    return folder


if __name__ == "__main__":
    import sys

    print(build_tiny_model(sys.argv[1] if len(sys.argv) > 1 else "tiny-model"))
