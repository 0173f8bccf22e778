"""Hostile or damaged adapter files, pickles that must never load, bounded memory, and the factor math."""

from __future__ import annotations

import json
import pickle
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from doctor.core.settings import Settings
from doctor.engine import scan
from probes.adapter import PROBES
from probes.adapter.stats import factor_stats, module_numbers
from probes.common.safetensors_io import Unreadable, read_header

CFG = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"], "base_model_name_or_path": "x/y"}


def _folder(tmp: Path, header_bytes: bytes, body: bytes = b"", cfg: dict | None = None) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "adapter_config.json").write_text(json.dumps(cfg or CFG))
    (tmp / "adapter_model.safetensors").write_bytes(header_bytes + body)
    return tmp


def _st(header: dict, body: bytes) -> tuple[bytes, bytes]:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw, body


def findings(path: Path) -> dict:
    report = scan([path], Settings(), probes=PROBES)
    assert not any(f.rule.startswith("DOC") for f in report.findings), [f.message for f in report.findings]
    return {f.rule: f for f in report.findings}


def test_header_length_near_2_64_is_refused_without_allocating(tmp_path):
    d = _folder(tmp_path / "a", struct.pack("<Q", 2**64 - 17), b"{}")
    tracemalloc.start()
    by = findings(d)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "absurd" in by["ADP001"].message and str(2**64 - 17) in by["ADP001"].message
    assert peak < 5 << 20


@pytest.mark.parametrize(
    ("header", "body", "expect"),
    [
        (
            {"a.lora_A.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
             "a.lora_B.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [8, 24]}},
            b"\0" * 24, "overlap",
        ),
        ({"t": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8, "beyond"),
        ({"t": {"dtype": "Q9", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 16, "unknown dtype"),
        ({"t": {"dtype": "F32", "shape": [5], "data_offsets": [0, 16]}}, b"\0" * 16, "span 16 bytes"),
        ({"t": {"dtype": "F32", "shape": [4], "data_offsets": [16, 0]}}, b"\0" * 16, "not ordered"),
    ],
)  # fmt: skip
def test_bad_headers_are_findings(tmp_path, header, body, expect):
    h, b = _st(header, body)
    by = findings(_folder(tmp_path / "a", h, b))
    assert expect in by["ADP001"].message
    with pytest.raises(Unreadable):
        read_header(tmp_path / "a" / "adapter_model.safetensors")


def test_tiny_and_non_json_files(tmp_path):
    assert "at least" in findings(_folder(tmp_path / "a", b"\1\2"))["ADP001"].message
    assert "not valid JSON" in findings(_folder(tmp_path / "b", struct.pack("<Q", 4), b"{{{{"))["ADP001"].message


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_is_never_loaded(tmp_path):
    marker = tmp_path / "PWNED"
    d = tmp_path / "adapter"
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps(CFG))
    (d / "adapter_model.bin").write_bytes(pickle.dumps({"w": _Evil(marker)}))
    by = findings(d)
    assert not marker.exists()
    f = by["ADP002"]
    assert "unsafe_format" in f.symptoms and "not loaded" in f.message and "safe_serialization" in f.fix
    assert "ADP001" not in by


def test_memory_bounded_on_larger_adapter(tmp_path):
    """A 17 MB fp16 adapter is scanned with a traced peak far below its size (one tensor at a time)."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    d = tmp_path / "big"
    d.mkdir()
    sd, hidden, r = {}, 2048, 64
    for layer in range(8):
        for m in ("q_proj", "k_proj", "v_proj", "o_proj"):
            p = f"base_model.model.model.layers.{layer}.self_attn.{m}"
            sd[f"{p}.lora_A.weight"] = rng.standard_normal((r, hidden), dtype=np.float32).astype(np.float16)
            sd[f"{p}.lora_B.weight"] = (rng.standard_normal((hidden, r), dtype=np.float32) * 1e-3).astype(np.float16)
    save_file(sd, str(d / "adapter_model.safetensors"))
    size = (d / "adapter_model.safetensors").stat().st_size
    del sd
    cfg = {**CFG, "r": r, "lora_alpha": 2 * r, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
    (d / "adapter_config.json").write_text(json.dumps(cfg))
    tracemalloc.start()
    report = scan([d], Settings(), probes=PROBES)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    largest = hidden * r * 4  # one tensor as float32
    assert size > 15e6 and peak < 4 * largest + (4 << 20), (peak, largest)
    rows = report.artifacts[0].facts["layers"]
    assert len(rows) == 32 and all(r["effective_rank"] > 30 for r in rows)


def test_factor_math_matches_dense_svd():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((6, 40)).astype(np.float32)
    b = (rng.standard_normal((30, 6)) @ np.diag([5, 3, 1, 0.1, 0, 0])).astype(np.float32)
    n = module_numbers(factor_stats(a, True).gram, factor_stats(b, False).gram, 0.5)
    dense = 0.5 * (b.astype(np.float64) @ a.astype(np.float64))
    s = np.linalg.svd(dense / 0.5, compute_uv=False)
    assert n.update_norm == pytest.approx(np.linalg.norm(dense), rel=1e-4)
    assert np.allclose(n.singular[:4], s[:4], rtol=1e-3)
    assert n.rank90 == int(np.searchsorted(np.cumsum(s**2) / np.sum(s**2), 0.9) + 1)
    bad = a.copy()
    bad[0, 0] = np.nan
    assert factor_stats(bad, True).non_finite == 1


def test_half_precision_reads_are_exact_for_every_bit_pattern(tmp_path):
    """fp16 goes through bit arithmetic (NaN/Inf through the table) and bf16 through a shift: both must equal
    the reference conversion for all 65,536 patterns, and 65504 (largest finite fp16) must stay finite."""
    from probes.common.safetensors_io import TensorReader

    bits = np.arange(65536, dtype=np.uint16)
    finite16 = bits[np.isfinite(bits.view(np.float16))]
    ref16 = bits.view(np.float16).astype(np.float32)
    ref_bf16 = (bits.astype(np.uint32) << 16).view(np.float32)
    tensors = {"all_f16": ("F16", bits), "finite_f16": ("F16", finite16), "all_bf16": ("BF16", bits)}
    header, off = {}, 0
    for name, (dtype, arr) in tensors.items():
        header[name] = {"dtype": dtype, "shape": [arr.size], "data_offsets": [off, off + arr.nbytes]}
        off += arr.nbytes
    head, body = _st(header, b"".join(arr.tobytes() for _, arr in tensors.values()))
    path = tmp_path / "half.safetensors"
    path.write_bytes(head + body)
    infos, _, size = read_header(path)
    with TensorReader(path, size) as rd:
        assert np.array_equal(rd.f32(infos["all_f16"]), ref16, equal_nan=True)
        got = rd.f32(infos["finite_f16"])
        assert np.array_equal(got, finite16.view(np.float16).astype(np.float32)) and got.max() == 65504.0
        assert np.array_equal(rd.f32(infos["all_bf16"]), ref_bf16, equal_nan=True)
