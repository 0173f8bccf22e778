"""Adapter scan at disk speed: `doctor check` on a 7B-class LoRA adapter vs two peers.

Builds a Llama-2-7B-shaped adapter (32 layers x q/k/v/o/gate/up/down, r = 64, seeded random factors;
~320 MB) in fp16 (written with safetensors.numpy) and in bf16 (numpy has no bfloat16, so that file
is written by hand in the same format), then times, each in a fresh subprocess with its peak RSS
taken from os.wait4:

  doctor   `python -m doctor check DIR --format json` (full scan: non-finite, update norms,
           effective ranks); falls back to the adapter probe through doctor.engine when the CLI
           is missing or broken.
  (a)      safetensors.numpy.load_file(DIR/adapter_model.safetensors): reading the file once.
  (b)      the usual peer: safetensors.torch.load_file, then for each module the dense ΔW = B·A
           and torch.linalg.svd on it. Too slow to run on all 224 modules here, so it runs on one
           module of each shape (q/k/v/o 4096x4096, gate/up 11008x4096, down 4096x11008) and
           extrapolates: load time + Σ_shape (count x measured time). Said so in the output.

Targets: doctor ≤ 1.5x (a); far faster than (b); peak RSS ≤ 2 x largest tensor + 150 MB.

    .venv/bin/python bench/adapter_scan.py [--keep DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
HIDDEN, INTER, LAYERS, R = 4096, 11008, 32, 64
SHAPES = {  # name: (in, out)
    "q_proj": (HIDDEN, HIDDEN),
    "k_proj": (HIDDEN, HIDDEN),
    "v_proj": (HIDDEN, HIDDEN),
    "o_proj": (HIDDEN, HIDDEN),
    "gate_proj": (HIDDEN, INTER),
    "up_proj": (HIDDEN, INTER),
    "down_proj": (INTER, HIDDEN),
}
BLOCK = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn"}


def _key(layer: int, mod: str, ab: str) -> str:
    return f"base_model.model.model.layers.{layer}.{BLOCK.get(mod, 'mlp')}.{mod}.lora_{ab}.weight"


def tensors(seed: int = 0):
    rng = np.random.default_rng(seed)
    for layer in range(LAYERS):
        for mod, (din, dout) in SHAPES.items():
            yield _key(layer, mod, "A"), rng.standard_normal((R, din), dtype=np.float32) * np.float32(1 / np.sqrt(din))
            yield _key(layer, mod, "B"), rng.standard_normal((dout, R), dtype=np.float32) * np.float32(1e-3)


def write_config(d: Path) -> None:
    cfg = {
        "peft_type": "LORA",
        "r": R,
        "lora_alpha": 128,
        "target_modules": list(SHAPES),
        "base_model_name_or_path": "base",
        "bias": "none",
        "task_type": "CAUSAL_LM",
    }
    (d / "adapter_config.json").write_text(json.dumps(cfg, indent=2))
    # The base's config.json (Llama-2-7B's numbers) beside it, so the scan also resolves every tensor to its
    # base module through the architecture table (probes/common/peft/arch.py), as a real rollout does.
    base = {
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": HIDDEN,
        "intermediate_size": INTER, "num_attention_heads": 32, "num_key_value_heads": 32,
        "num_hidden_layers": LAYERS, "vocab_size": 32000,
    }  # fmt: skip
    (d / "base").mkdir(exist_ok=True)
    (d / "base" / "config.json").write_text(json.dumps(base, indent=2))


def build_fp16(d: Path) -> None:
    from safetensors.numpy import save_file

    d.mkdir(parents=True, exist_ok=True)
    save_file({k: v.astype(np.float16) for k, v in tensors()}, str(d / "adapter_model.safetensors"))
    write_config(d)


def build_bf16(d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True)
    items = [(k, (v.view(np.uint32) >> 16).astype(np.uint16), v.shape) for k, v in tensors()]
    header, off = {}, 0
    for k, u, shape in items:
        header[k] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + u.nbytes]}
        off += u.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with (d / "adapter_model.safetensors").open("wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
        for _, u, _ in items:
            fh.write(u.tobytes())
    write_config(d)


_WRAP = (
    "import os,sys,time,json,subprocess;t=time.perf_counter();p=subprocess.Popen(sys.argv[1:]);"
    "_,st,ru=os.wait4(p.pid,0);print(json.dumps({'wall':time.perf_counter()-t,'rss_mb':ru.ru_maxrss/1024,"
    "'rc':os.waitstatus_to_exitcode(st)}),file=sys.stderr)"
)


def measure(cmd: list[str], repeat: int) -> dict:
    walls, rss = [], []
    for _ in range(repeat):
        p = subprocess.run([PY, "-c", _WRAP, *cmd], cwd=ROOT, capture_output=True, text=True)
        info = json.loads(p.stderr.strip().splitlines()[-1])
        if info["rc"] not in (0, 1):
            raise RuntimeError(f"{' '.join(cmd[:5])} exited {info['rc']}: {p.stderr[-2000:]}\n{p.stdout[-500:]}")
        walls.append(info["wall"])
        rss.append(info["rss_mb"])
    return {"wall": min(walls), "median": statistics.median(walls), "rss_mb": max(rss), "stdout": p.stdout}


DOCTOR_FALLBACK = (
    "import sys,json;from pathlib import Path;from doctor.engine import scan;from doctor.core.settings import Settings;"
    "from probes.adapter import PROBES;r=scan([Path(sys.argv[1])],Settings(),probes=PROBES);"
    "print(json.dumps({'findings':[f.rule for f in r.findings],'facts':r.artifacts[0].facts.get('scan_seconds')}))"
)
LOAD_A = "import sys;from safetensors.numpy import load_file;d=load_file(sys.argv[1]);print(len(d))"
PEER_B = r"""
import sys, time, json, torch
from safetensors.torch import load_file
torch.set_num_threads(int(sys.argv[2]))
t = time.perf_counter(); sd = load_file(sys.argv[1]); load = time.perf_counter() - t
per = {}
for mod in ("q_proj", "gate_proj", "down_proj"):
    blk = "self_attn" if mod == "q_proj" else "mlp"
    a = sd[f"base_model.model.model.layers.0.{blk}.{mod}.lora_A.weight"].float()
    b = sd[f"base_model.model.model.layers.0.{blk}.{mod}.lora_B.weight"].float()
    t = time.perf_counter(); dw = b @ a; s = torch.linalg.svd(dw, full_matrices=False).S
    per[mod] = time.perf_counter() - t
print(json.dumps({"load": load, "per_module": per}))
"""


def doctor_cmd(d: Path) -> list[str]:
    cli = [PY, "-m", "doctor", "check", str(d), "--format", "json", "--fail-on", "never"]
    p = subprocess.run(cli, cwd=ROOT, capture_output=True, text=True)
    if p.returncode == 0 and '"findings"' in p.stdout:
        return cli
    print(f"  (CLI unavailable: rc {p.returncode}; {p.stderr.strip()[-200:]!r}; using doctor.engine + adapter probe)")
    return [PY, "-c", DOCTOR_FALLBACK, str(d)]


def bench_one(label: str, d: Path, repeat: int, peer: bool, a_file: Path | None = None) -> dict:
    """a_file: the file (a) loads — numpy has no bfloat16, so for bf16 it is the fp16 file (same bytes)."""
    f = d / "adapter_model.safetensors"
    size = f.stat().st_size
    largest = max(R * INTER * 2, R * HIDDEN * 2)
    subprocess.run(["cat", str(f)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    base = measure([PY, "-c", "import numpy"], repeat)
    a = measure([PY, "-c", LOAD_A, str(a_file or f)], repeat)
    dcmd = doctor_cmd(d)
    doc = measure(dcmd, repeat)
    startup_doctor = measure([PY, "-c", "import doctor.engine, probes.adapter"], repeat)
    res = {
        "label": label, "size_mb": size / 1e6, "python_numpy_start": base["wall"],
        "a_wall": a["wall"], "a_rss": a["rss_mb"], "doc_wall": doc["wall"], "doc_rss": doc["rss_mb"],
        "doc_start": startup_doctor["wall"], "rss_limit": 2 * largest / 2**20 + 150,
    }  # fmt: skip
    try:
        facts = json.loads(doc["stdout"])
        if "artifacts" in facts:
            res["scan_seconds"] = facts["artifacts"][0]["facts"].get("scan_seconds")
            res["findings"] = [x["rule"] for x in facts["findings"]]
        else:
            res["scan_seconds"], res["findings"] = facts.get("facts"), facts.get("findings")
    except ValueError:
        pass
    if peer:
        threads = os.cpu_count() or 1
        p = subprocess.run([PY, "-c", PEER_B, str(f), str(threads)], cwd=ROOT, capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(p.stderr[-2000:])
        info = json.loads(p.stdout.strip().splitlines()[-1])
        counts = {"q_proj": 4 * LAYERS, "gate_proj": 2 * LAYERS, "down_proj": LAYERS}  # q≈k≈v≈o, gate≈up
        res["b_load"] = info["load"]
        res["b_per_module"] = info["per_module"]
        res["b_wall_est"] = info["load"] + sum(info["per_module"][m] * c for m, c in counts.items())
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keep", type=Path, help="build the adapters here and keep them")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-peer", action="store_true", help="skip peer (b) (torch + dense SVD)")
    args = ap.parse_args()
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="adapter-bench-"))
    results = []
    try:
        for label, build, peer in (("fp16", build_fp16, not args.no_peer), ("bf16", build_bf16, False)):
            d = tmp / f"llama2-7b-r64-{label}"
            t = time.perf_counter()
            if not (d / "adapter_model.safetensors").exists():
                build(d)
            print(f"{label}: built {d} in {time.perf_counter() - t:.1f}s")
            fp16 = tmp / "llama2-7b-r64-fp16" / "adapter_model.safetensors"
            results.append(bench_one(label, d, args.repeat, peer, None if label == "fp16" else fp16))
        if not args.keep:
            shutil.rmtree(tmp / "llama2-7b-r64-bf16", ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(f"Llama-2-7B-shaped LoRA, r={R}, 32 layers x 7 modules = 224 modules; cores: {os.cpu_count()}")
    for r in results:
        print(f"\n[{r['label']}] {r['size_mb']:.0f} MB  (best of {args.repeat}, each a fresh process, page cache warm)")
        print(f"  python + numpy start-up            {r['python_numpy_start']:7.2f} s")
        print(f"  (a) safetensors.numpy.load_file    {r['a_wall']:7.2f} s   peak RSS {r['a_rss']:6.0f} MB")
        print(f"  doctor check (full scan)           {r['doc_wall']:7.2f} s   peak RSS {r['doc_rss']:6.0f} MB")
        print(f"      of which doctor start-up       {r['doc_start']:7.2f} s   in-probe {r.get('scan_seconds')}")
        print(f"      findings: {r.get('findings')}")
        ratio_a = r["doc_wall"] / r["a_wall"]
        print(
            f"  ratio doctor / (a)                 {ratio_a:7.2f}x   target ≤ 1.5x  "
            f"{'OK' if ratio_a <= 1.5 else 'MISS'}"
        )
        print(
            f"  peak RSS {r['doc_rss']:.0f} MB vs limit 2 x largest tensor + 150 MB = {r['rss_limit']:.0f} MB  "
            f"{'OK' if r['doc_rss'] <= r['rss_limit'] else 'MISS'}"
        )
        if "b_wall_est" in r:
            per = ", ".join(f"{k} {v:.2f}s" for k, v in r["b_per_module"].items())
            print(
                f"  (b) torch load + dense B·A + svd   {r['b_wall_est']:7.1f} s   EXTRAPOLATED: load {r['b_load']:.2f}s"
            )
            print(f"      + measured on 1 module per shape ({per}) x 128 q/k/v/o, 64 gate/up, 32 down")
            print(f"  ratio (b) / doctor                 {r['b_wall_est'] / r['doc_wall']:7.0f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
