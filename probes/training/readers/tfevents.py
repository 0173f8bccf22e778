"""TensorBoard event files. TFRecord framing is read here, streaming, in chunks; each record is decoded
with tensorboard's own generated protobuf class (event_pb2; ~40 ms to import, and only when an event
file is present). Scalars come from simple_value (torch / tensorboardX / HF callback) or a scalar tensor
(TF2 summaries)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from probes.training import trainers
from probes.training.series import Series, eval_arrays, from_columns

_HEADER = struct.Struct("<Q")
CHUNK = 8 * 1024 * 1024

TAGS = {
    "loss": ("train/loss", "loss", "train_loss", "loss/train", "Loss/train", "train/train_loss"),
    "grad_norm": ("train/grad_norm", "grad_norm", "train/gradient_norm", "grad_norm/total"),
    "learning_rate": ("train/learning_rate", "learning_rate", "lr", "train/lr", "lr/group_0"),
    "epoch": ("train/epoch", "epoch"),
}


def _event_class():
    from tensorboard.compat.proto import event_pb2  # lazy: only when an event file is read

    return event_pb2.Event


class RecordReader:
    """Iterate the payloads of complete TFRecord records from `offset`, reading in chunks. After the
    loop `offset` is the byte after the last complete record (a live file's partial record waits).
    CRCs are not verified (speed); lengths are sanity-checked."""

    def __init__(self, path: Path, offset: int = 0, s: Series | None = None, final: bool = True) -> None:
        self.path, self.offset, self.s, self.final = path, offset, s, final

    def __iter__(self):
        s = self.s
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            buf = b""
            base = self.offset
            while True:
                chunk = fh.read(CHUNK)
                if chunk:
                    buf += chunk
                pos, n = 0, len(buf)
                while n - pos >= 12:
                    (length,) = _HEADER.unpack_from(buf, pos)
                    if length > 1 << 30:
                        if s is not None:
                            s.problem(
                                "doc",
                                f"byte {base + pos}",
                                f"corrupt record header at byte {base + pos} (length {length}); rest of file skipped",
                            )
                        self.offset = base + pos
                        return
                    end = pos + 12 + length + 4
                    if end > n:
                        break
                    yield buf[pos + 12 : pos + 12 + length]
                    pos = end
                buf = buf[pos:]
                base += pos
                self.offset = base
                if not chunk:
                    if buf and s is not None and self.final:
                        s.problem("entry", f"byte {base}", f"last record is incomplete ({len(buf)} bytes); skipped")
                    return


class ScalarCollector:
    """Accumulates tag -> (steps, values) from event payloads; reusable by the watcher."""

    def __init__(self) -> None:
        self.tags: dict[str, tuple[list[int], list[float]]] = {}
        self.wall: list[float] = []
        self.bad = 0
        self._Event = _event_class()

    def feed(self, payload: bytes) -> None:
        try:
            ev = self._Event.FromString(payload)
        except Exception:
            self.bad += 1
            return
        if not ev.HasField("summary"):
            return
        step = ev.step
        for v in ev.summary.value:
            kind = v.WhichOneof("value")
            if kind == "simple_value":
                x = v.simple_value
            elif kind == "tensor":
                t = v.tensor
                if t.float_val:
                    x = t.float_val[0]
                elif t.double_val:
                    x = t.double_val[0]
                elif t.tensor_content and t.dtype in (1, 2):
                    x = float(np.frombuffer(t.tensor_content, dtype=np.float32 if t.dtype == 1 else np.float64)[0])
                else:
                    continue
            else:
                continue
            entry = self.tags.get(v.tag)
            if entry is None:
                entry = self.tags[v.tag] = ([], [])
            entry[0].append(step)
            entry[1].append(x)

    def series(self, s: Series, overrides: dict[str, str] | None = None) -> Series:
        chosen: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for field, names in TAGS.items():
            want = (overrides or {}).get(field)
            for name in (want,) if want else names:
                if name in self.tags:
                    st, va = self.tags[name]
                    chosen[field] = (np.asarray(st, dtype=np.int64), np.asarray(va, dtype=np.float64))
                    break
        s.meta["tags"] = sorted(self.tags)
        if self.bad:
            s.problem("entry", "", f"{self.bad} event records could not be decoded; skipped")
        train_steps = [a[0] for k, a in chosen.items() if k in ("loss", "grad_norm")]
        if train_steps:
            steps = train_steps[0] if len(train_steps) == 1 else np.union1d(*train_steps)
            if steps.size > 1 and not bool(np.all(steps[1:] > steps[:-1])):
                steps = np.unique(steps)
        else:
            steps = np.zeros(0, dtype=np.int64)
        cols, present = {}, {}
        for field in ("loss", "grad_norm", "learning_rate", "epoch"):
            col = np.full(steps.size, np.nan)
            pres = np.zeros(steps.size, dtype=bool)
            if field in chosen and steps.size:
                st, va = chosen[field]
                if st.size > 1 and not bool(np.all(st[1:] > st[:-1])):
                    _, idx = np.unique(st[::-1], return_index=True)  # latest value of a repeated step
                    keep = st.size - 1 - idx
                    st, va = st[keep], va[keep]
                pos = np.searchsorted(steps, st)
                ok = (pos < steps.size) & (steps[np.minimum(pos, steps.size - 1)] == st)
                col[pos[ok]] = va[ok]
                pres[pos[ok]] = True
            cols[field], present[field] = col, pres
        from_columns(steps, present=present, series=s, **cols)
        for tag, (st, va) in self.tags.items():
            low = tag.lower()
            if low.startswith(("eval/", "eval_", "val/", "validation/")) and not low.endswith(
                ("runtime", "_per_second")
            ):
                name = "eval_" + low.split("/", 1)[-1].removeprefix("eval_") if "/" in low else low
                s.evals[name] = eval_arrays(list(zip(st, va)))
        trainers.attach(s, self.tags)  # TRL's train/rewards/*, train/kl, train/reward, ...
        return s


def read_tfevents(path: Path, overrides: dict[str, str] | None = None) -> Series:
    s = Series(format="tensorboard")
    try:
        if path.stat().st_size == 0:
            s.problem("doc", "byte 0", "file is empty (0 bytes); nothing to analyse")
            return s
        col = ScalarCollector()
        feed = col.feed
        for payload in RecordReader(path, 0, s):
            feed(payload)
    except OSError as exc:
        s.problem("doc", "", f"cannot read: {exc.strerror}")
        return s
    return col.series(s, overrides)
