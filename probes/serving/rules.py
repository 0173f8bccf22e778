"""SRV rules: serving configs against the adapters they route and the base model they serve."""

from __future__ import annotations

from doctor.core.checks import CheckSet
from doctor.core.rules import rule

# Flag of the rules that say whether an engine can load an adapter as it should (the compatibility matrix's
# verdict, `doctor inspect --matrix`): adapter × server × base, not the silent no-op or tokenizer rules.
COMPAT = "compat"

UNPARSEABLE = rule(
    "SRV001",
    "Part of a serving config could not be parsed",
    "error",
    [],
    """
    A command line, CMD/ENTRYPOINT, lora-modules entry or referenced --config file could not be read
    (unterminated quote, invalid JSON, file missing). Doctor does not guess what the server will do with
    it, so that part was not checked — and the server itself will most likely refuse it too.
    """,
    "Fix the quoting or syntax at the line given; `bash -n script.sh` catches shell quoting errors.",
)
UNRESOLVED_VAR = rule(
    "SRV002",
    "Variable in a serving config is not set",
    "warning",
    [],
    """
    The config uses ${VAR} (or $(VAR) in Kubernetes) with no value in the file, its .env, the container
    env or `[serving] env` in the settings, and no `${VAR:-default}`. Doctor does not read the process
    environment or guess; whatever depends on it (a rank cap, an adapter path) was not checked.
    """,
    "Give the variable a default (`${VAR:-16}`), declare it in .env, or set it under [serving] env.",
)
RANK_ABOVE_CAP = rule(
    "SRV003",
    "Adapter rank above the server's max LoRA rank",
    "error",
    ["rank_exceeds_limit", "runtime_incompatible"],
    """
    vLLM compares max(r, *rank_pattern.values()) — and the lora_A tensors' first dimension — with
    --max-lora-rank (default 16) and refuses the adapter: "LoRA rank 64 is greater than max_lora_rank 16"
    (vllm#2847). With --lora-modules that stops server start-up. SGLang sizes its LoRA memory pool by
    --max-lora-rank when it is given (else by the largest adapter in --lora-paths): an adapter's rank must not
    exceed it (SGLang docs, advanced_features/lora.md: "Dynamic LoRA loading").
    """,
    "Raise --max-lora-rank to an allowed value ≥ the adapter's rank, or retrain with a smaller r.",
    flags={COMPAT},
)
CAP_NOT_ALLOWED = rule(
    "SRV004",
    "max-lora-rank value not accepted by this vLLM version",
    "error",
    ["runtime_incompatible"],
    """
    vLLM validates --max-lora-rank against a fixed set: 0.33 accepts 1, 8, 16, 32, 64, 128, 256, 320, 512;
    early releases only 8, 16, 32, 64; later ones up to 256. Any other value fails at start-up.
    """,
    "Use the next allowed value at or above the largest adapter rank.",
)
CPU_LORAS = rule(
    "SRV005",
    "max-cpu-loras is below max-loras",
    "error",
    ["runtime_incompatible"],
    """
    vLLM requires --max-cpu-loras (default: max-loras) ≥ --max-loras (default 1) and refuses to start
    otherwise.
    """,
    "Set --max-cpu-loras to at least --max-loras, or drop it to use the default.",
)
LORA_NOT_ENABLED = rule(
    "SRV006",
    "Adapters configured but LoRA not enabled",
    "error",
    ["runtime_incompatible", "routing_error"],
    "vLLM refuses --lora-modules without --enable-lora; requests for the adapter names fail.",
    "Add --enable-lora (`enable-lora: true` in a --config YAML).",
)
ARCH_NO_LORA = rule(
    "SRV007",
    "Base architecture has no LoRA support in this engine",
    "error",
    ["runtime_incompatible"],
    'vLLM raises "LoRA is not supported for {arch}" for architectures without LoRA layers (e.g. GPT2LMHeadModel).',
    "Serve this base with an engine that supports LoRA for it, or merge the adapter into the base weights.",
)
DORA = rule(
    "SRV008",
    "DoRA adapter on an engine without DoRA",
    "error",
    ["runtime_incompatible"],
    """
    use_dora = true or lora_magnitude_vector tensors. vLLM refuses ("does not yet support DoRA"); LoRAX and
    TGI silently ignore the magnitudes, so the adapter loads and answers wrongly without any error.
    """,
    "Merge the DoRA adapter into the base (merge_and_unload) and serve the merged model, or retrain as plain LoRA.",
    flags={COMPAT},
)
BIAS = rule(
    "SRV009",
    "Adapter trains biases, which the engine refuses",
    "error",
    ["runtime_incompatible"],
    'bias != "none" or lora_bias = true: vLLM refuses the adapter ("Adapter bias is not supported").',
    'Retrain with bias="none" and lora_bias=False, or merge the adapter.',
    flags={COMPAT},
)
MODULES_TO_SAVE = rule(
    "SRV010",
    "Adapter carries full module weights (modules_to_save)",
    "error",
    ["runtime_incompatible"],
    """
    modules_to_save (or saved keys like lm_head.weight / embed_tokens.weight / *.base_layer.weight): vLLM
    accepts only None (0.33: only classifier/score) and fails with "base_model.model.lm_head.weight is
    unsupported LoRA weight" (vllm#9280).
    """,
    "Retrain without modules_to_save (target the layers with LoRA instead), or merge and serve the merged model.",
    flags={COMPAT},
)
INIT_MODIFIES_BASE = rule(
    "SRV011",
    "Adapter init modified the base weights (PiSSA/OLoRA/CorDA/LoftQ)",
    "error",
    ["runtime_incompatible", "base_mismatch"],
    """
    init_lora_weights in {pissa, olora, corda, loftq} subtracts the initial adapter from the base weights,
    so the adapter only works on that modified base; vLLM refuses it.
    """,
    "Convert the adapter to a plain LoRA (PEFT's path_initial_model_for_weight_conversion) or serve the merged model.",
    flags={COMPAT},
)
VOCAB = rule(
    "SRV012",
    "Embedding / vocabulary does not fit the served base",
    "error",
    ["runtime_incompatible", "base_mismatch"],
    """
    Resized vocabularies and embedding LoRA: lora_embedding_A.shape[1] and saved embedding matrices must
    match the base vocab_size (vLLM drops added-token rows), and vLLM limits the base vocabulary it serves
    with LoRA (0.33: 258048).
    """,
    "Serve the base the adapter was trained with (same tokenizer), or retrain without resizing the vocabulary.",
    flags={COMPAT},
)
UNSUPPORTED_KEYS = rule(
    "SRV013",
    "Adapter weights or type the engine cannot load",
    "error",
    ["runtime_incompatible", "target_module_missing"],
    """
    vLLM parses only .lora_A.weight, .lora_B.weight, .lora_embedding_A/B; other keys are "unsupported LoRA
    weight". Target modules outside the architecture's module set ("expected target modules in {...}") and
    peft_type other than LORA are refused too.
    """,
    "Retrain targeting the language model's linear layers only; save with PEFT's default key names.",
    flags={COMPAT},
)
MISSING_FIELDS = rule(
    "SRV014",
    "adapter_config.json lacks required fields",
    "error",
    ["runtime_incompatible", "adapter_unreadable"],
    'vLLM needs r (> 0), lora_alpha and target_modules: "Missing required configuration fields".',
    "Re-save the adapter with PEFT (save_pretrained) so the config is complete.",
    flags={COMPAT},
)
ADAPTER_NOT_FOUND = rule(
    "SRV015",
    "Served adapter not found at its path",
    "error",
    ["routing_error"],
    """
    The path a server routes to holds no adapter_model.{safetensors,bin,pt} (vLLM reads only those names:
    "No adapter found"). A --lora-modules adapter that fails to load stops vLLM start-up; TGI/LoRAX fall back
    to the base model silently.
    """,
    "Point the route at the folder holding adapter_config.json and adapter_model.safetensors.",
)
BASE_NAME = rule(
    "SRV016",
    "Served base model differs from the adapter's base",
    "error",
    ["base_mismatch"],
    """
    The adapter's base_model_name_or_path (and the route's base_model_name) name another model than the one
    the server loads. vLLM never compares them and smaller shapes load silently (vllm#12106): the adapter
    answers with garbage instead of failing.
    """,
    "Serve the base model the adapter was trained on, or retrain the adapter on the served base.",
    flags={COMPAT},
)
BASE_DIMS = rule(
    "SRV017",
    "Adapter tensor shapes do not fit the served base",
    "error",
    ["base_mismatch"],
    "lora_A is [r, in] and lora_B is [out, r]; in/out must equal the base layer's dimensions (config.json).",
    "Serve the base the adapter was trained on (compare config.json hidden_size/intermediate_size/heads).",
    flags={COMPAT},
)
QUANT = rule(
    "SRV018",
    "Quantized base not supported with LoRA by this engine",
    "error",
    ["quantization_incompatible"],
    """
    The base is quantized (config.json quantization_config.quant_method or --quantization/--quantize) with a
    method the engine cannot serve LoRA on — e.g. bitsandbytes was removed from vLLM 0.33's quantization list.
    """,
    "Serve an unquantized (bf16/fp16) base or a method the engine supports (AWQ/GPTQ), or use TGI/LoRAX for bnb.",
)
OUTSIDE_ROOT = rule(
    "SRV019",
    "Serving config points outside the rollout",
    "warning",
    [],
    """
    A path in the config leaves the rollout root (../.., an absolute system path). Doctor does not follow it
    unless `[serving] allow_outside_root = true`, so what it points to was not checked.
    """,
    "Keep served artifacts inside the rollout, or allow outside paths in the settings.",
)
CANNOT_VERIFY = rule(
    "SRV020",
    "Path only exists inside the container",
    "info",
    [],
    """
    A container path (e.g. /models/x) maps to nothing on disk and no compose/Kubernetes volume maps it, or the
    route names a hub id. Doctor cannot check what it holds; it is not reported as missing.
    """,
    "Add a volume mapping (compose `volumes:`, Kubernetes hostPath) so doctor can follow the path.",
)
NAME_CLASH = rule(
    "SRV021",
    "Adapter name clashes with the served model name",
    "error",
    ["routing_error"],
    "vLLM refuses a LoRA module whose name equals the served model name: requests could not tell them apart.",
    "Rename the adapter route (the registry name) or set --served-model-name.",
)
DUPLICATE_ROUTE = rule(
    "SRV022",
    "Adapter name routed twice",
    "error",
    ["routing_error"],
    "Two adapter routes in one server share a name; only one can answer and which one is engine-dependent.",
    "Give each adapter version its own route name, or drop the duplicate.",
)
INVALID_SPEC = rule(
    "SRV023",
    "Adapter route entry is malformed",
    "error",
    ["routing_error"],
    """
    --lora-modules items are `name=path` or a JSON object {"name","path","base_model_name"}; a YAML mapping
    becomes a Python repr, which is not JSON (vllm#9655). LORA_ADAPTERS entries with more than one '=' or
    '@' are invalid.
    """,
    "Write each entry as name=path (or a JSON string in quotes).",
)
SCALING = rule(
    "SRV024",
    "Per-module rank/alpha patterns ignored by this engine",
    "warning",
    ["scaling_mismatch"],
    """
    rank_pattern/alpha_pattern give some modules their own r or lora_alpha. vLLM reads neither (its
    PEFTHelper keeps r and lora_alpha only), LoRAX and TGI ignore them: the adapter loads, and each module
    the patterns cover is scaled by the global alpha/r instead of its own — different outputs, no error.
    """,
    "Serve with vLLM, or retrain with a uniform r/lora_alpha.",
    flags={COMPAT},
)
ROUTE_UNSERVED = rule(
    "SRV025",
    "Router sends a model name that no server serves",
    "error",
    ["routing_error"],
    """
    A routing layer in front of the engines (a LiteLLM proxy `model_list`) maps a public name to a backend
    model name, and no server in the rollout serves that name — neither as its base model nor as an adapter
    route. Requests for the public name fail with "model does not exist" (vLLM answers 404), or reach
    whatever else answers to it.
    """,
    "Point litellm_params.model at a name the server serves (an adapter route or --served-model-name).",
)
ROUTE_TO_BASE = rule(
    "SRV026",
    "Router sends an adapter's name to the base model",
    "error",
    ["routing_error"],
    """
    The public name is an adapter's name (a route a server declares, or an adapter of the rollout), but the
    router sends it to the server's base model. Every request answers from the base: the adapter is served
    as if it did not exist, with no error anywhere.
    """,
    "Send the name to the adapter's route (e.g. hosted_vllm/<adapter route>), not to the base model.",
)
RSLORA_IGNORED = rule(
    "SRV027",
    "Engine ignores rsLoRA scaling: the served update is off by √r",
    "error",
    ["scaling_mismatch", "runtime_incompatible"],
    """
    With use_rslora PEFT scales the update by lora_alpha/√r. Engines that predate rsLoRA support apply
    lora_alpha/r, so the adapter loads without an error and every adapted layer's update is √r times too
    small (r = 16: 4×): outputs drift toward the base model (vllm#6909, lorax#299).
    """,
    "Upgrade the engine (see docs/engine-features.md), or fold the scale into lora_B / retrain without rsLoRA.",
    flags={COMPAT},
)
NON_LORA_TYPE = rule(
    "SRV028",
    "Adapter is not a LoRA adapter (IA3, LoHa, LoKr, AdaLoRA, …)",
    "error",
    ["runtime_incompatible"],
    """
    vLLM, TGI, LoRAX and SGLang serve LoRA adapters only (peft_type LORA). Other PEFT types save other
    tensors (ia3_l, hada_w1_a, lokr_w1, lora_E) that the engine refuses as unsupported LoRA weights.
    """,
    "Merge the adapter into the base (merge_and_unload) and serve the merged model, or retrain as LoRA.",
    flags={COMPAT},
)
MOE_EXPERTS = rule(
    "SRV029",
    "Adapter trains MoE expert modules this engine version cannot serve faithfully",
    "error",
    ["runtime_incompatible"],
    """
    LoRA on fused MoE experts arrived late: vLLM refused expert weights before its FusedMoE LoRA support
    (vllm#21229), then read PEFT's expert lora_B in the wrong order until vllm#31534 ("0 of 100 outputs
    matched" before the fix). TGI and LoRAX ignore modules they have no LoRA layer for.
    """,
    "Serve with a vLLM release that has both fixes, or merge the adapter and serve the merged model.",
    flags={COMPAT},
)
REGEX_TARGETS = rule(
    "SRV030",
    "Engine cannot serve a string (regex) target_modules",
    "error",
    ["runtime_incompatible", "target_module_missing"],
    """
    PEFT accepts target_modules as a regex string (or 'all-linear'). SGLang sizes its LoRA buffers from
    target_modules and treats a string as a list of characters, so such an adapter is rejected at launch
    (verl#7288, SGLang 0.5.8).
    """,
    "List the module names in target_modules (or pass --lora-target-modules explicitly to SGLang).",
    flags={COMPAT},
)
TARGETS_NOT_APPLIED = rule(
    "SRV031",
    "Engine does not apply LoRA to the adapter's target modules",
    "error",
    ["target_module_missing", "runtime_incompatible"],
    """
    The server restricts LoRA to some modules (`--lora-target-modules` on vLLM or SGLang) and the adapter
    adapts others. vLLM loads the adapter and never consults that list when it does: with no overlap every
    answer is byte-identical to the base model (vllm#55193); with partial overlap the skipped modules are
    silently dropped.
    """,
    "Add the adapter's modules to --lora-target-modules (packed names: qkv_proj, gate_up_proj) or drop the flag.",
)
NAMES_MATCH_NO_MODULE = rule(
    "SRV032",
    "Adapter tensors match no module of the served base (silent no-op)",
    "error",
    ["target_module_missing", "base_mismatch"],
    """
    The adapter's tensor names (after base_model.model.) do not name modules of the model the server loads,
    typically a prefix from a wrapper (a doubled model., a PeftModel saved inside another wrapper) or from a
    multimodal tower (language_model.). The engine finds nowhere to put them and answers as the base model
    (vllm#34186, vllm#48019); when only some match, the rest are dropped.
    """,
    "Rename the keys to the base's module names (the expected names are in the finding) and re-save the adapter.",
)
ZERO_B = rule(
    "SRV033",
    "Every lora_B tensor is zero: the served adapter is the base model",
    "error",
    ["dead_adapter"],
    """
    PEFT initialises lora_B to zero; an adapter whose B tensors are all still exactly zero adds B·A = 0 to
    every layer. The server loads it, routes to it and answers exactly like the base model.
    """,
    "Serve the checkpoint that was actually trained (check the save step), or retrain: see the ADP dead-adapter rule.",
)
TOKENIZER_VOCAB = rule(
    "SRV034",
    "Adapter trained with tokens the served tokenizer or embedding lacks",
    "error",
    ["runtime_incompatible", "base_mismatch"],
    """
    The tokenizer saved with the adapter has added tokens (a chat format's <|im_start|>, tool tokens) and
    usually a resized embedding. The server tokenizes with the base tokenizer (or --tokenizer): those
    tokens do not exist there, prompts containing them are split into ordinary pieces, and the model can
    never produce them (peft#1457, LLaMA-Factory#3125). Token ids past the base's embedding rows have no row.
    """,
    "Serve with the adapter's tokenizer (--tokenizer ADAPTER_DIR) and an embedding that has its rows (merge the "
    "resized model), or train without new tokens.",
)
CHAT_TEMPLATE = rule(
    "SRV035",
    "Served chat template differs from the one the adapter was trained with",
    "warning",
    ["runtime_incompatible"],
    """
    The chat template saved with the adapter (tokenizer_config.json chat_template or chat_template.jinja)
    and the served one differ after normalisation (whitespace control, indentation). Chat requests are
    formatted differently from training: role markers, system prompt, generation prompt.
    """,
    "Pass the training template to the server (--chat-template FILE) or save the base's template with the adapter.",
)
EOS_MISMATCH = rule(
    "SRV036",
    "Trained EOS is not where generation stops",
    "error",
    ["runtime_incompatible"],
    """
    The adapter learned to end answers with its tokenizer's eos_token, but generation_config.json of the
    served model stops only at other ids: the model never stops generating after LoRA and runs to
    max_tokens (Qwen3#1064, LLaMA-Factory#7943).
    """,
    "Add the trained EOS id to generation_config.json eos_token_id (a list is allowed), or pass it as a stop id.",
)
UNTRAINED_TOKENS = rule(
    "SRV037",
    "New special tokens with untrained embedding rows",
    "error",
    ["runtime_incompatible"],
    """
    Special tokens were added for training but the adapter neither trains nor saves their embedding rows
    (no embed_tokens / lm_head in modules_to_save, no trainable_token_indices, no embedding LoRA). Their rows
    are the resize-time initialisation or reserved rows that were never trained: the model cannot read or
    emit them meaningfully (peft#1003).
    """,
    "Train with modules_to_save=['embed_tokens', 'lm_head'] or trainable_token_indices for the new tokens.",
)

RULES = (
    UNPARSEABLE,
    UNRESOLVED_VAR,
    RANK_ABOVE_CAP,
    CAP_NOT_ALLOWED,
    CPU_LORAS,
    LORA_NOT_ENABLED,
    ARCH_NO_LORA,
    DORA,
    BIAS,
    MODULES_TO_SAVE,
    INIT_MODIFIES_BASE,
    VOCAB,
    UNSUPPORTED_KEYS,
    MISSING_FIELDS,
    ADAPTER_NOT_FOUND,
    BASE_NAME,
    BASE_DIMS,
    QUANT,
    OUTSIDE_ROOT,
    CANNOT_VERIFY,
    NAME_CLASH,
    DUPLICATE_ROUTE,
    INVALID_SPEC,
    SCALING,
    ROUTE_UNSERVED,
    ROUTE_TO_BASE,
    RSLORA_IGNORED,
    NON_LORA_TYPE,
    MOE_EXPERTS,
    REGEX_TARGETS,
    TARGETS_NOT_APPLIED,
    NAMES_MATCH_NO_MODULE,
    ZERO_B,
    TOKENIZER_VOCAB,
    CHAT_TEMPLATE,
    EOS_MISMATCH,
    UNTRAINED_TOKENS,
)

# One check per rule, registered beside its logic in probes/serving/checks/ (imported by the probe).
CHECKS = CheckSet("serving", RULES)
