"""Shared pieces of the fuzz suite (tests/test_fuzz_*.py): seeds of every input kind, mutation strategies,
and the harness that runs doctor's scan on one mutated file with the suite's properties checked.

Properties, for every input: no traceback escapes (no exception, no DOC002), no hang (an alarm), every
unreadable input is a DOC001 naming the file, and nothing outside the target folder is read or written
(an audit hook watches every open/rename/remove while the scan runs).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from tests.conftest import REPO, ROLLOUTS

HEALTHY = ROLLOUTS / "healthy"
TIMEOUT_S = 20  # per input; a hang is a failure, not a slow test

COMPOSE_SEED = """\
services:
  vllm:
    image: vllm/vllm-openai:v0.6.3
    environment:
      MAX_RANK: "16"
    command: >
      --model peft-doctor/tiny-base-v2 --enable-lora --max-lora-rank ${MAX_RANK:-16}
      --lora-modules support-bot=/adapters/support
    volumes:
      - ../adapter:/adapters/support
"""


def _jsonl_seed() -> bytes:
    state = json.loads((HEALTHY / "train" / "trainer_state.json").read_text())
    return "".join(json.dumps(e) + "\n" for e in state["log_history"][:40]).encode()


def _eval_jsonl_seed() -> bytes:
    lines = (HEALTHY / "eval" / "candidate.csv").read_text().splitlines()
    head = lines[0].split(",")
    rows = [dict(zip(head, line.split(","))) for line in lines[1:60]]
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@dataclass(frozen=True)
class Kind:
    """One input kind: where it sits in a rollout, its seed, how to parse/dump it for structured mutation,
    and companion files copied beside it (an adapter config needs weights to be an adapter)."""

    name: str
    dest: str
    seed: Callable[[], bytes]
    fmt: str  # json | jsonl | yaml | toml | csv | binary
    companions: tuple[tuple[str, str], ...] = ()


def _file(rel: str) -> Callable[[], bytes]:
    return lambda: (HEALTHY / rel).read_bytes()


_TFEVENTS = next((HEALTHY / "train" / "runs").glob("events.out.tfevents.*")).name
KINDS = {
    k.name: k
    for k in (
        Kind("trainer_state", "train/trainer_state.json", _file("train/trainer_state.json"), "json"),
        Kind("training_args", "train/training_args.json", _file("train/training_args.json"), "json"),
        Kind("trainer_log", "train/trainer_log.jsonl", _jsonl_seed, "jsonl"),
        Kind("tfevents", f"train/runs/{_TFEVENTS}", _file(f"train/runs/{_TFEVENTS}"), "binary"),
        Kind(
            "adapter_config",
            "adapter/adapter_config.json",
            _file("adapter/adapter_config.json"),
            "json",
            (("adapter/adapter_model.safetensors", "adapter/adapter_model.safetensors"),),
        ),
        Kind(
            "safetensors",
            "adapter/adapter_model.safetensors",
            _file("adapter/adapter_model.safetensors"),
            "safetensors",
            (("adapter/adapter_config.json", "adapter/adapter_config.json"),),
        ),
        Kind("vllm_yaml", "serving/vllm.yaml", _file("serving/vllm.yaml"), "yaml"),
        Kind("compose", "serving/compose.yaml", lambda: COMPOSE_SEED.encode(), "yaml"),
        Kind("registry", "registry.yaml", _file("registry.yaml"), "yaml"),
        Kind("manifest", "rollout.toml", _file("rollout.toml"), "toml"),
        Kind("eval_csv", "eval/candidate.csv", _file("eval/candidate.csv"), "csv"),
        Kind("eval_jsonl", "eval/candidate.jsonl", _eval_jsonl_seed, "jsonl"),
    )
}

# ----------------------------------------------------------------------------------------- strategies
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)),
    max_leaves=12,
)


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in list(obj.items())[:50]:
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:20]):
            out += _paths(v, (*prefix, i))
    return out


def _set(obj: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    parent = obj
    for p in path[:-1]:
        parent = parent[p]
    parent[path[-1]] = value
    return obj


@st.composite
def structured(draw: st.DrawFn, obj: Any) -> Any:
    """The parsed seed with 1-3 of its values (at any depth) replaced, deleted or wrapped."""
    obj = json.loads(json.dumps(obj, default=str))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(obj)
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "delete", "wrap"]))
        if action == "delete" and path:
            parent = obj
            for p in path[:-1]:
                parent = parent[p]
            del parent[path[-1]]
        elif action == "wrap":
            cur = obj
            for p in path:
                cur = cur[p]
            obj = _set(obj, path, [cur] if draw(st.booleans()) else {"x": cur})
        else:
            obj = _set(obj, path, draw(values))
    return obj


@st.composite
def byte_mutation(draw: st.DrawFn, seed: bytes) -> bytes:
    """Random bytes, or the seed truncated, with bytes flipped, a chunk inserted or duplicated."""
    how = draw(st.sampled_from(["random", "truncate", "flip", "insert", "duplicate", "deep"]))
    if how == "random":
        return draw(st.binary(max_size=4096))
    data = bytearray(seed)
    if how == "truncate":
        return bytes(data[: draw(st.integers(0, len(data)))])
    if how == "flip":
        for _ in range(draw(st.integers(1, 8))):
            if data:
                data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    pos = draw(st.integers(0, len(data)))
    if how == "insert":
        return bytes(data[:pos] + draw(st.binary(min_size=1, max_size=64)) + data[pos:])
    if how == "deep":
        n = draw(st.sampled_from([600, 5000, 200_000]))
        return bytes(data[:pos]) + b"[" * n + b"]" * n + bytes(data[pos:])
    end = draw(st.integers(pos, min(len(data), pos + 256)))
    return bytes(data[:end] + data[pos:end] * draw(st.integers(1, 50)) + data[end:])


def parse_seed(kind: Kind, raw: bytes) -> Any:
    if kind.fmt == "json":
        return json.loads(raw)
    if kind.fmt == "yaml":
        return yaml.safe_load(raw)
    if kind.fmt == "jsonl":
        return [json.loads(line) for line in raw.splitlines() if line.strip()]
    if kind.fmt == "safetensors":
        n = int.from_bytes(raw[:8], "little")
        return json.loads(raw[8 : 8 + n])
    return None


def dump(kind: Kind, obj: Any, raw: bytes) -> bytes:
    if kind.fmt == "json":
        return json.dumps(obj).encode()
    if kind.fmt == "yaml":
        return yaml.safe_dump(obj, allow_unicode=True).encode()
    if kind.fmt == "jsonl":
        items = obj if isinstance(obj, list) else [obj]
        return "".join(json.dumps(x) + "\n" for x in items).encode()
    if kind.fmt == "safetensors":  # a mutated header over the seed's tensor bytes
        n = int.from_bytes(raw[:8], "little")
        header = json.dumps(obj).encode()
        return len(header).to_bytes(8, "little") + header + raw[8 + n :]
    return raw


def inputs(kind: Kind) -> st.SearchStrategy[bytes]:
    raw = kind.seed()
    byte_level = byte_mutation(raw) if kind.fmt != "safetensors" else byte_mutation(raw[:8192])
    parsed = parse_seed(kind, raw)
    if parsed is None:
        return byte_level
    return st.one_of(byte_level, structured(parsed).map(lambda o: dump(kind, o, raw)))


# ---------------------------------------------------------------------------------------------- harness
class _Audit:
    """Every file opened, renamed or removed while `active` (sys.addaudithook cannot be removed: one)."""

    active = False
    events: list[tuple[str, str, str]] = []  # (event, path, mode)

    @classmethod
    def hook(cls, event: str, args: tuple) -> None:
        if not cls.active:
            return
        if event == "open":
            path, mode = args[0], args[1] or "r"
            if isinstance(path, int):
                return
            cls.events.append((event, os.fsdecode(path), str(mode)))
        elif event in ("os.rename", "os.replace", "os.remove", "os.rmdir", "os.mkdir", "shutil.rmtree"):
            cls.events.append((event, os.fsdecode(args[0]), "w"))


_installed = False


def _install() -> None:
    global _installed
    if not _installed:
        sys.addaudithook(_Audit.hook)
        _installed = True


# Reading these is the interpreter and doctor itself (imports, playbooks), not the input's business.
_ALLOWED_READ = tuple(
    str(Path(p).resolve())
    for p in {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        str(REPO / "doctor"),
        str(REPO / "probes"),
        str(REPO / "playbooks"),
        "/proc",
        "/dev/null",
        "/usr/lib",
        "/usr/share",
        "/etc/localtime",
    }
)


@dataclass
class Outcome:
    findings: list[Any]
    outside: list[tuple[str, str, str]]


class Hang(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise Hang(f"no result within {TIMEOUT_S} s")


def run_one(kind: Kind, data: bytes) -> Outcome:
    """Write `data` as `kind` into a fresh folder (companions beside it) and scan it; no exception
    (including a hang) may escape."""
    from doctor.core.settings import Settings
    from doctor.engine import scan

    _install()
    with tempfile.TemporaryDirectory(prefix="doctor-fuzz-") as tmp:
        root = Path(tmp) / "rollout"
        for src, dest in kind.companions:
            (root / dest).parent.mkdir(parents=True, exist_ok=True)
            (root / dest).write_bytes((HEALTHY / src).read_bytes())
        target = root / kind.dest
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        real_root = str(root.resolve())
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(TIMEOUT_S)
        _Audit.events = []
        _Audit.active = True
        try:
            report = scan([root], Settings())
        finally:
            _Audit.active = False
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
        outside = []
        for event, path, mode in _Audit.events:
            resolved = str(Path(os.path.abspath(path)))
            inside = resolved == real_root or resolved.startswith(real_root + os.sep)
            writes = event != "open" or any(c in mode for c in "wax+")
            if inside:
                continue
            if writes or not resolved.startswith(_ALLOWED_READ):
                outside.append((event, path, mode))
        return Outcome(report.findings, outside)


def check_properties(kind: Kind, data: bytes, record: list | None = None) -> None:
    out = run_one(kind, data)
    crashed = [f for f in out.findings if f.rule == "DOC002"]
    assert not crashed, f"{kind.name}: DOC002 {[f.message for f in crashed]}"
    for f in out.findings:
        if f.rule == "DOC001":
            assert f.path is not None and f.message.strip(), f
            assert f.message.startswith(f.path.name) or f.path.name in f.message, f.message
    assert not out.outside, f"{kind.name}: touched outside the target: {out.outside[:5]}"
    if record is not None:
        record.append((kind.name, sorted({f.rule for f in out.findings})))
