"""Base-model structure from config.json alone: a declarative table of module names and shapes.

`architecture_for(config_json)` → `Architecture` (or None for a model_type the table does not know): every
module PEFT can adapt in the `*ForCausalLM` model transformers (v5) builds from that config, by its full
path as `model.named_modules()` spells it (`model.layers.0.self_attn.q_proj`), with in/out features
derived from the config's dimensions, plus the parameters PEFT's `target_parameters` can wrap (MoE
expert stacks `mlp.experts.gate_up_proj` [E, out, in], routers `mlp.gate.weight`). Vision-language
configs (a `text_config`) give the text tower under `model.language_model`; the vision tower and the
projector are not modelled (`Architecture.is_unmodelled(path)` says so).

The table (FAMILIES) was read off transformers' modelling code and is verified against real models
built from transformers' config classes in tests/test_adapter_arch.py. Nothing here imports torch.

Dimension expressions in the table are sums of products of names and integers ("q+2*kv", "2*inter"),
over the names `dims()` derives: hidden, inter, heads, kv_heads, head_dim, q (= heads·head_dim),
kv (= kv_heads·head_dim), vocab, experts, moe_inter, shared_inter, positions, embed_dim.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Module kinds. PEFT's LoRA wraps linear, conv1d (GPT-2's transposed Linear) and embedding modules;
# "param" entries are parameters for `target_parameters`; "container" is a module that holds others
# (a router or an expert stack): target_modules may not name it.
LINEAR, CONV1D, EMBEDDING, PARAM, CONTAINER = "linear", "conv1d", "embedding", "param", "container"
ADAPTABLE = (LINEAR, CONV1D, EMBEDDING)


@dataclass(frozen=True)
class Spec:
    """One base module (or parameter) and its shape.

    linear/conv1d: in_features → out_features (Conv1D stores its weight [in, out]: fan_in_fan_out).
    embedding: in_features = num_embeddings (vocab), out_features = embedding_dim.
    param: the parameter's [experts, out, in] (experts = 1 for a 2-D weight [out, in]).
    """

    path: str
    kind: str
    in_features: int
    out_features: int
    layer: int | None = None
    experts: int = 1
    owner: str = ""  # param: the module that holds it (where PEFT's ParamWrapper sits)

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def fan_in_fan_out(self) -> bool:
        return self.kind == CONV1D

    @property
    def shape(self) -> tuple[int, ...]:
        """The base weight's shape as stored in the checkpoint."""
        if self.kind == CONV1D:
            return (self.in_features, self.out_features)
        if self.kind == EMBEDDING:
            return (self.in_features, self.out_features)
        if self.kind == PARAM and self.experts > 1:
            return (self.experts, self.out_features, self.in_features)
        return (self.out_features, self.in_features)


# (relative path inside a decoder layer, kind, in expr, out expr)
Row = tuple[str, str, str, str]

_LLAMA_ATTN: tuple[Row, ...] = (
    ("self_attn.q_proj", LINEAR, "hidden", "q"),
    ("self_attn.k_proj", LINEAR, "hidden", "kv"),
    ("self_attn.v_proj", LINEAR, "hidden", "kv"),
    ("self_attn.o_proj", LINEAR, "q", "hidden"),
)
_LLAMA_MLP: tuple[Row, ...] = (
    ("mlp.gate_proj", LINEAR, "hidden", "inter"),
    ("mlp.up_proj", LINEAR, "hidden", "inter"),
    ("mlp.down_proj", LINEAR, "inter", "hidden"),
)
# transformers v5 fuses the experts into stacked parameters [E, out, in]; the router is a module with a weight.
_ROUTER: tuple[Row, ...] = (
    ("mlp.gate", CONTAINER, "hidden", "experts"),
    ("mlp.gate.weight", PARAM, "hidden", "experts"),
)
_EXPERTS: tuple[Row, ...] = (
    ("mlp.experts", CONTAINER, "hidden", "hidden"),
    ("mlp.experts.gate_up_proj", PARAM, "hidden", "2*moe_inter"),
    ("mlp.experts.down_proj", PARAM, "moe_inter", "hidden"),
)
_QWEN2_SHARED: tuple[Row, ...] = (
    ("mlp.shared_expert.gate_proj", LINEAR, "hidden", "shared_inter"),
    ("mlp.shared_expert.up_proj", LINEAR, "hidden", "shared_inter"),
    ("mlp.shared_expert.down_proj", LINEAR, "shared_inter", "hidden"),
    ("mlp.shared_expert_gate", LINEAR, "hidden", "1"),
)


@dataclass(frozen=True)
class Family:
    """How one family lays out its causal LM. `root` holds the embedding and the decoder layers
    (`{root}.{layers}.{i}.{row}`); `head` is the output embedding (all-linear leaves it out)."""

    name: str
    model_types: tuple[str, ...]
    block: tuple[Row, ...]
    root: str = "model"
    layers: str = "layers"
    embed: tuple[tuple[str, str, str], ...] = (("embed_tokens", "vocab", "hidden"),)
    head: str = "lm_head"
    head_in: str = "hidden"
    top: tuple[tuple[str, str, str, str], ...] = ()  # extra modules under root: (name, kind, in, out)
    sparse_block: tuple[Row, ...] = ()  # a MoE layer's rows (replace `block`'s MLP rows)
    dims: Callable[[dict[str, Any], dict[str, int]], None] | None = None  # family-specific dimensions


def _falcon_dims(cfg: dict[str, Any], d: dict[str, int]) -> None:
    heads = d["heads"]
    if cfg.get("new_decoder_architecture"):
        d["kv_heads"] = _int(cfg, "num_kv_heads") or heads
    elif cfg.get("multi_query", True):
        d["kv_heads"] = 1
    else:
        d["kv_heads"] = heads
    d["kv"] = d["kv_heads"] * d["head_dim"]
    d["inter"] = _int(cfg, "ffn_hidden_size") or 4 * d["hidden"]


def _gpt2_dims(cfg: dict[str, Any], d: dict[str, int]) -> None:
    d["inter"] = _int(cfg, "n_inner") or 4 * d["hidden"]
    d["positions"] = _int(cfg, "n_positions") or 1024


def _opt_dims(cfg: dict[str, Any], d: dict[str, int]) -> None:
    d["inter"] = _int(cfg, "ffn_dim") or 4 * d["hidden"]
    d["embed_dim"] = _int(cfg, "word_embed_proj_dim") or d["hidden"]
    d["positions"] = (_int(cfg, "max_position_embeddings") or 2048) + 2  # OPT's learned offset of 2


# model_types whose causal LM is laid out like Llama's (q/k/v/o_proj, gate/up/down_proj, model.layers).
LLAMA_TYPES = (
    "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "olmo", "olmo2", "granite",
    "smollm3", "ministral", "cohere", "helium",
)  # fmt: skip
FAMILIES: tuple[Family, ...] = (
    Family("llama", LLAMA_TYPES, _LLAMA_ATTN + _LLAMA_MLP),
    Family("mixtral", ("mixtral",), _LLAMA_ATTN + _LLAMA_MLP, sparse_block=_LLAMA_ATTN + _ROUTER + _EXPERTS),
    Family(
        "qwen2_moe",
        ("qwen2_moe",),
        _LLAMA_ATTN + _LLAMA_MLP,
        sparse_block=_LLAMA_ATTN + _ROUTER + _EXPERTS + _QWEN2_SHARED,
    ),
    Family("qwen3_moe", ("qwen3_moe",), _LLAMA_ATTN + _LLAMA_MLP, sparse_block=_LLAMA_ATTN + _EXPERTS + _ROUTER),
    Family(
        "phi",
        ("phi",),
        (
            ("self_attn.q_proj", LINEAR, "hidden", "q"),
            ("self_attn.k_proj", LINEAR, "hidden", "kv"),
            ("self_attn.v_proj", LINEAR, "hidden", "kv"),
            ("self_attn.dense", LINEAR, "q", "hidden"),
            ("mlp.fc1", LINEAR, "hidden", "inter"),
            ("mlp.fc2", LINEAR, "inter", "hidden"),
        ),
    ),
    Family(
        "phi3",
        ("phi3",),
        (
            ("self_attn.o_proj", LINEAR, "q", "hidden"),
            ("self_attn.qkv_proj", LINEAR, "hidden", "q+2*kv"),
            ("mlp.gate_up_proj", LINEAR, "hidden", "2*inter"),
            ("mlp.down_proj", LINEAR, "inter", "hidden"),
        ),
    ),
    Family(
        "gpt2",
        ("gpt2",),
        (
            ("attn.c_attn", CONV1D, "hidden", "3*hidden"),
            ("attn.c_proj", CONV1D, "hidden", "hidden"),
            ("mlp.c_fc", CONV1D, "hidden", "inter"),
            ("mlp.c_proj", CONV1D, "inter", "hidden"),
        ),
        root="transformer",
        layers="h",
        embed=(("wte", "vocab", "hidden"), ("wpe", "positions", "hidden")),
        dims=_gpt2_dims,
    ),
    Family(
        "gpt_neox",
        ("gpt_neox",),
        (
            ("attention.query_key_value", LINEAR, "hidden", "3*hidden"),
            ("attention.dense", LINEAR, "hidden", "hidden"),
            ("mlp.dense_h_to_4h", LINEAR, "hidden", "inter"),
            ("mlp.dense_4h_to_h", LINEAR, "inter", "hidden"),
        ),
        root="gpt_neox",
        embed=(("embed_in", "vocab", "hidden"),),
    ),
    Family(
        "falcon",
        ("falcon",),
        (
            ("self_attention.query_key_value", LINEAR, "hidden", "q+2*kv"),
            ("self_attention.dense", LINEAR, "q", "hidden"),
            ("mlp.dense_h_to_4h", LINEAR, "hidden", "inter"),
            ("mlp.dense_4h_to_h", LINEAR, "inter", "hidden"),
        ),
        root="transformer",
        layers="h",
        embed=(("word_embeddings", "vocab", "hidden"),),
        dims=_falcon_dims,
    ),
    Family(
        "opt",
        ("opt",),
        (
            ("self_attn.k_proj", LINEAR, "hidden", "hidden"),
            ("self_attn.v_proj", LINEAR, "hidden", "hidden"),
            ("self_attn.q_proj", LINEAR, "hidden", "hidden"),
            ("self_attn.out_proj", LINEAR, "hidden", "hidden"),
            ("fc1", LINEAR, "hidden", "inter"),
            ("fc2", LINEAR, "inter", "hidden"),
        ),
        root="model.decoder",
        embed=(("embed_tokens", "vocab", "embed_dim"), ("embed_positions", "positions", "hidden")),
        head_in="embed_dim",
        top=(("project_out", LINEAR, "hidden", "embed_dim"), ("project_in", LINEAR, "embed_dim", "hidden")),
        dims=_opt_dims,
    ),
)
BY_MODEL_TYPE: dict[str, Family] = {t: f for f in FAMILIES for t in f.model_types}
# Path segments of a vision-language model's parts other than the text tower.
_VISION = re.compile(
    r"(?:^|\.)(?:vision_tower|vision_model|visual|multi_modal_projector|vision_embed_tokens|mm_projector)(?:\.|$)"
)


def _int(cfg: dict[str, Any], *keys: str) -> int | None:
    for k in keys:
        v = cfg.get(k)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return None


def dims(cfg: dict[str, Any], family: Family | None = None) -> dict[str, int]:
    """The dimensions a family's expressions use (missing ones are left out)."""
    d: dict[str, int] = {}
    for name, keys in (
        ("hidden", ("hidden_size", "n_embd", "d_model")),
        ("heads", ("num_attention_heads", "n_head")),
        ("layers", ("num_hidden_layers", "n_layer", "num_layers")),
        ("vocab", ("vocab_size",)),
        ("inter", ("intermediate_size", "n_inner", "ffn_dim", "ffn_hidden_size")),
        ("experts", ("num_local_experts", "num_experts", "n_routed_experts")),
        ("moe_inter", ("moe_intermediate_size",)),
        ("shared_inter", ("shared_expert_intermediate_size",)),
        ("positions", ("max_position_embeddings", "n_positions")),
    ):
        v = _int(cfg, *keys)
        if v is not None:
            d[name] = v
    if "hidden" in d and "heads" in d:
        d["kv_heads"] = _int(cfg, "num_key_value_heads", "n_head_kv") or d["heads"]
        d["head_dim"] = _int(cfg, "head_dim") or d["hidden"] // d["heads"]
        d["q"] = d["heads"] * d["head_dim"]
        d["kv"] = d["kv_heads"] * d["head_dim"]
    if "inter" in d and "moe_inter" not in d:
        d["moe_inter"] = d["inter"]  # Mixtral: the experts use intermediate_size
    if "hidden" in d:
        d.setdefault("embed_dim", d["hidden"])
    if family is not None and family.dims is not None and "hidden" in d and "heads" in d:
        family.dims(cfg, d)
    return d


def _eval(expr: str, d: dict[str, int]) -> int | None:
    """'q+2*kv' over the dimension names; None when one is missing."""
    total = 0
    for term in expr.split("+"):
        prod = 1
        for factor in term.split("*"):
            factor = factor.strip()
            if factor.isdigit():
                prod *= int(factor)
            elif factor in d:
                prod *= d[factor]
            else:
                return None
        total += prod
    return total


def _sparse_layers(cfg: dict[str, Any], family: Family, n_layers: int) -> set[int]:
    """Which decoder layers are MoE layers (Qwen-MoE: every decoder_sparse_step-th, minus mlp_only_layers)."""
    if not family.sparse_block or not _int(cfg, "num_local_experts", "num_experts"):
        return set()
    if family.name == "mixtral":
        return set(range(n_layers))
    step = _int(cfg, "decoder_sparse_step") or 1
    only = cfg.get("mlp_only_layers") or []
    only = {x for x in only if isinstance(x, int)} if isinstance(only, list) else set()
    return {i for i in range(n_layers) if i not in only and (i + 1) % step == 0}


@dataclass
class Architecture:
    """The adaptable modules and parameters of one base model, by full path (see the module docstring)."""

    model_type: str
    family: str
    dims: dict[str, int]
    modules: dict[str, Spec] = field(default_factory=dict)  # path → Spec, in model order (modules and params)
    root: str = "model"  # where the decoder layers sit (`model.language_model` for a VLM's text tower)
    layers_attr: str = "layers"
    head: str = "lm_head"
    vision: bool = False  # a VLM: paths outside the text tower exist but are not modelled
    _by_layer: dict[tuple[int, str], Spec] = field(default_factory=dict, repr=False)
    _by_top: dict[str, Spec] = field(default_factory=dict, repr=False)

    @property
    def hidden(self) -> int | None:
        return self.dims.get("hidden")

    @property
    def num_layers(self) -> int | None:
        return self.dims.get("layers")

    @property
    def vocab(self) -> int | None:
        return self.dims.get("vocab")

    def specs(self, *kinds: str) -> list[Spec]:
        return [s for s in self.modules.values() if not kinds or s.kind in kinds]

    def module_names(self) -> set[str]:
        """Short names of every adaptable module (q_proj, c_attn, lm_head, …)."""
        return {s.name for s in self.modules.values() if s.kind in ADAPTABLE}

    def linear_paths(self) -> list[str]:
        """What PEFT's `all-linear` expands to: every Linear/Conv1D except the output embedding."""
        return [p for p, s in self.modules.items() if s.kind in (LINEAR, CONV1D) and p != self.head]

    def is_unmodelled(self, path: str) -> bool:
        """A VLM's vision tower / projector: real modules this table does not describe."""
        return self.vision and _VISION.search(path) is not None

    def locate(self, path: str) -> Spec | None:
        """The base module at `path` as saved in an adapter (PEFT's `base_model.model.` stripped). Exact paths
        first; then by (layer index, path inside the layer) or by the top-level name, so an adapter trained on
        the bare `AutoModel`, a sequence-classification head or an older transformers layout (a VLM's
        `language_model.model.layers…`) still finds its module."""
        s = self.modules.get(path)
        if s is not None or self.is_unmodelled(path):
            return s
        m = re.search(rf"(?:^|\.){re.escape(self.layers_attr)}\.(\d+)\.(.+)$", path)
        if m:
            return self._by_layer.get((int(m.group(1)), m.group(2)))
        return self._by_top.get(path.rsplit(".", 1)[-1])


# transformers v4 kept MoE experts as one Linear each; adapters trained then carry per-expert tensors that peft
# (0.21) converts at load time onto the v5 stacked parameters (peft.utils.transformers_weight_conversion).
# family → [(pattern of the path inside a layer, in expr, out expr, v5 parameter inside the layer)]
LEGACY_EXPERTS: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "mixtral": (
        (r"block_sparse_moe\.experts\.\d+\.w[13]", "hidden", "moe_inter", "mlp.experts.gate_up_proj"),
        (r"block_sparse_moe\.experts\.\d+\.w2", "moe_inter", "hidden", "mlp.experts.down_proj"),
        (r"block_sparse_moe\.gate", "hidden", "experts", "mlp.gate.weight"),
    ),
    "qwen3_moe": (
        (r"mlp\.experts\.\d+\.(?:gate|up)_proj", "hidden", "moe_inter", "mlp.experts.gate_up_proj"),
        (r"mlp\.experts\.\d+\.down_proj", "moe_inter", "hidden", "mlp.experts.down_proj"),
        (r"mlp\.gate", "hidden", "experts", "mlp.gate.weight"),
    ),
}


def legacy_expert(arch: Architecture, path: str) -> tuple[Spec, str] | None:
    """A transformers-v4 per-expert Linear (or v4 router Linear) at `path`: (its Spec, the v5 parameter path
    peft converts it onto), or None."""
    rows = LEGACY_EXPERTS.get(arch.family)
    if not rows:
        return None
    m = re.search(rf"(?:^|\.){re.escape(arch.layers_attr)}\.(\d+)\.(.+)$", path)
    if not m:
        return None
    layer, rel = int(m.group(1)), m.group(2)
    for pattern, in_e, out_e, v5 in rows:
        if re.fullmatch(pattern, rel):
            param = arch._by_layer.get((layer, v5))
            i, o = _eval(in_e, arch.dims), _eval(out_e, arch.dims)
            if param is None or i is None or o is None:
                return None
            return Spec(path, LINEAR, i, o, layer), param.path
    return None


def architecture_for(config_json: dict[str, Any]) -> Architecture | None:
    """The Architecture for a base model's config.json (a parsed dict); None when its model_type (or a
    VLM's text_config.model_type) is not in the table or its dimensions are missing."""
    if not isinstance(config_json, dict):
        return None
    cfg, root_prefix, vision = config_json, "", False
    tc = config_json.get("text_config")
    if isinstance(tc, dict) and (
        "hidden_size" not in config_json or config_json.get("model_type") not in BY_MODEL_TYPE
    ):
        cfg, vision = tc, True
    model_type = cfg.get("model_type")
    if vision and model_type not in BY_MODEL_TYPE:
        model_type = {"gemma3": "gemma3_text"}.get(str(config_json.get("model_type")), model_type)
    family = BY_MODEL_TYPE.get(str(model_type)) if model_type is not None else None
    if family is None:
        return None
    d = dims(cfg, family)
    n_layers = d.get("layers")
    if not n_layers or "hidden" not in d or "heads" not in d:
        return None
    root = family.root
    if vision:
        root_prefix = "model.language_model"
        root = root_prefix
    arch = Architecture(
        model_type=str(model_type), family=family.name, dims=d, root=root, layers_attr=family.layers,
        head=family.head, vision=vision,
    )  # fmt: skip

    def add(path: str, kind: str, in_e: str, out_e: str, layer: int | None, rel: str) -> None:
        i, o = _eval(in_e, d), _eval(out_e, d)
        if i is None or o is None:
            return
        experts = 1
        owner = ""
        if kind == PARAM:
            owner = path.rsplit(".", 1)[0]
            if rel.startswith("mlp.experts."):
                experts = d.get("experts", 1)
        spec = Spec(path, kind, i, o, layer, experts, owner)
        arch.modules[path] = spec
        if layer is not None:
            arch._by_layer[(layer, rel)] = spec
        else:
            arch._by_top[rel] = spec

    for name, rows, cols in family.embed:
        add(f"{root}.{name}", EMBEDDING, rows, cols, None, name)
    sparse = _sparse_layers(cfg, family, n_layers)
    for i in range(n_layers):
        for rel, kind, in_e, out_e in family.sparse_block if i in sparse else family.block:
            add(f"{root}.{family.layers}.{i}.{rel}", kind, in_e, out_e, i, rel)
    if family.name == "opt" and d.get("embed_dim") != d.get("hidden"):
        for name, kind, in_e, out_e in family.top:
            add(f"{root}.{name}", kind, in_e, out_e, None, name)
    add(family.head, LINEAR, family.head_in, "vocab", None, family.head)
    return arch
