"""Tokenizer and chat-template lineage with files written by transformers + peft themselves.

The demo world's tiny base is served with its own tokenizer; adapters are trained-side folders holding the
tokenizer they were trained with.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from doctor.core.settings import Settings
from doctor.engine import check

pytestmark = pytest.mark.slow  # loads the tiny base with transformers and saves three adapters

BASE = Path(__file__).resolve().parent.parent / "fixtures" / "models" / "tiny-base"
TEMPLATE = (
    "{% for m in messages %}\n"
    "  {{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}\n"
    "{% endfor %}\n"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}\n"
)


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("tok")
    torch.manual_seed(0)
    qv = ["q_proj", "v_proj"]

    def adapter(name: str, tokenizer, resize: bool) -> None:
        model = AutoModelForCausalLM.from_pretrained(BASE)
        extra = {}
        if resize:
            model.resize_token_embeddings(len(tokenizer))
            extra = {"modules_to_save": ["embed_tokens", "lm_head"]}
        pm = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=qv, **extra))
        with torch.no_grad():
            for n, p in pm.named_parameters():
                if "lora_B" in n:
                    p.normal_(std=0.02)
        pm.save_pretrained(out / name)
        tokenizer.save_pretrained(out / name)

    # 1. chat format: two added special tokens, EOS <|im_end|>, a chat template, resized embedding
    chat = AutoTokenizer.from_pretrained(BASE)
    chat.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    chat.eos_token = "<|im_end|>"
    chat.chat_template = TEMPLATE
    adapter("chat", chat, resize=True)
    # 2. the same tokens added, but the embedding neither resized-and-saved nor trained
    adapter("untrained", chat, resize=False)
    # 3. trained with the base tokenizer unchanged
    adapter("plain", AutoTokenizer.from_pretrained(BASE), resize=False)
    return out


def serve(tmp: Path, made: Path, case: str, *, served_template: str | None = None):
    root = tmp / case
    shutil.copytree(BASE, root / "models" / "base")
    if served_template is not None:
        (root / "models" / "base" / "chat_template.jinja").write_text(served_template)
    shutil.copytree(made / case, root / "adapter")
    (root / "serve.sh").write_text(
        "vllm serve models/base --enable-lora --max-lora-rank 8 --lora-modules bot=./adapter\n"
    )
    report = check([root], Settings())
    return {f.rule: f for f in report.findings if f.rule in ("SRV034", "SRV035", "SRV036", "SRV037")}


def test_added_tokens_and_resized_embedding_served_with_the_base_tokenizer(tmp_path, made):
    got = serve(tmp_path, made, "chat")
    f = got["SRV034"]
    assert f.severity.value == "error"
    assert "2 added token(s) ['<|im_start|>', '<|im_end|>'] (ids [384, 385])" in f.message
    assert "vocabulary 386 vs 384" in f.message and "embedding has 386 rows, the base 384" in f.message
    # and it ends answers with <|im_end|>, which generation_config.json (eos 2) does not stop at
    assert "trained EOS '<|im_end|>' (id 385)" in got["SRV036"].message and "[2]" in got["SRV036"].message
    assert "SRV037" not in got  # the resized rows were trained and saved (modules_to_save)
    assert "trained with a chat template (chat_template.jinja) but the served tokenizer" in got["SRV035"].message


def test_changed_chat_template_shows_the_first_differing_line(tmp_path, made):
    served = TEMPLATE.replace("'<|im_end|>\\n'", "'</s>\\n'")
    f = serve(tmp_path, made, "chat", served_template=served)["SRV035"]
    assert "normalized line 2" in f.message
    assert f.evidence["trained"].endswith("'<|im_end|>\\n' }}")
    assert f.evidence["served"].endswith("'</s>\\n' }}")
    # whitespace control and indentation alone are no difference
    same = TEMPLATE.replace("  {{-", "{{").replace("{%- if", "{% if")
    assert "SRV035" not in serve(tmp_path / "same", made, "chat", served_template=same)


def test_new_special_tokens_without_trained_rows(tmp_path, made):
    got = serve(tmp_path, made, "untrained")
    f = got["SRV037"]
    assert "2 new special token(s) ['<|im_start|>', '<|im_end|>'] (ids [384, 385])" in f.message
    assert "ids ≥ 384 have no embedding row and the adapter saves none" in got["SRV034"].message


def test_base_tokenizer_adapter_is_clean(tmp_path, made):
    assert serve(tmp_path, made, "plain") == {}
