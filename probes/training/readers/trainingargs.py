"""HF `training_args.bin` (a `TrainingArguments` pickled by `torch.save`) read WITHOUT executing it.

Public API (also used by `doctor init`):

    read_training_args(path) -> dict          # the TrainingArguments fields as plain JSON-like values
    scan_training_args(path) -> ArgsScan      # the same, never raising: fields, globals seen, problems

How it stays safe: the pickle is run by a restricted `pickle.Unpickler` whose `find_class` never imports
anything. Every global (`module.name`) becomes a fresh, empty `Inert` class that only records how it was
used: calling it (REDUCE/NEWOBJ/INST/OBJ) records the arguments, BUILD records the state. Persistent ids
(torch's tensor storages) become `Inert` records too. So no real callable is ever reached: a payload such
as `os.system("...")` is unpickled into a record `os.system(...)` and reported, not run. Caps: the file
size, the uncompressed pickle size, and the depth and node count of the value converted to plain data
(memo references can make a small pickle expand exponentially).

Layouts: torch.save's zip (`<name>/data.pkl`, the default since torch 1.6), the legacy stream (magic
number, protocol, sys_info, object pickles, then raw storages) and a bare `pickle.dump`.
"""

from __future__ import annotations

import io
import pickle
import reprlib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_PICKLE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 32
MAX_NODES = 200_000
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# Globals a genuine TrainingArguments pickle references (its class, enums, accelerate state, torch
# device/dtype). They are never imported either; anything else is reported as code the file would run.
_EXPECTED = {
    "torch device",
    "torch dtype",
    "collections OrderedDict",
    "builtins set",
    "builtins frozenset",
    "builtins slice",
    "builtins complex",
    "datetime datetime",
    "datetime timedelta",
    "pathlib PosixPath",
    "pathlib WindowsPath",
    "copyreg _reconstructor",
    "builtins object",
}
# Known to run code or touch the system when called: named in the finding as what loading would do.
_DANGEROUS_MODULES = {
    "os",
    "posix",
    "nt",
    "subprocess",
    "sys",
    "shutil",
    "socket",
    "importlib",
    "runpy",
    "pickle",
    "_pickle",
    "marshal",
    "ctypes",
    "code",
    "pty",
    "webbrowser",
    "urllib",
    "http",
    "tempfile",
    "pathlib",
    "io",
    "_io",
    "codecs",
    "types",
    "functools",
    "operator",
    "platform",
    "multiprocessing",
    "signal",
    "threading",
    "asyncio",
    "requests",
    "numpy.testing",
    "torch.hub",
    "torch.serialization",
    "torch._inductor",
}
_DANGEROUS_BUILTINS = {
    "eval",
    "exec",
    "compile",
    "open",
    "getattr",
    "setattr",
    "delattr",
    "__import__",
    "globals",
    "locals",
    "vars",
    "input",
    "breakpoint",
    "exit",
    "quit",
    "memoryview",
    "help",
}


class TrainingArgsError(ValueError):
    """training_args.bin could not be read safely (damaged, not a torch.save file, over a cap)."""

    def __init__(self, path: Path, reason: str, where: str = "") -> None:
        super().__init__(f"{path.name}: {reason}" + (f" ({where})" if where else ""))
        self.path, self.reason, self.where = path, reason, where


class UnsafePickleError(TrainingArgsError):
    """The pickle references callables that would run code if it were loaded (it was not)."""

    def __init__(self, path: Path, calls: list[str]) -> None:
        super().__init__(path, "would run code when loaded: " + "; ".join(calls[:5]))
        self.calls = calls


@dataclass
class ArgsScan:
    """What the restricted unpickler found. `fields` is empty when the file is unsafe or unreadable."""

    path: Path
    fields: dict[str, Any] = field(default_factory=dict)
    class_name: str = ""  # e.g. transformers.training_args.TrainingArguments
    layout: str = ""  # zip (torch.save) | stream (legacy torch.save or a bare pickle)
    globals: list[str] = field(default_factory=list)  # every module.name referenced, in order
    unsafe: list[str] = field(default_factory=list)  # calls loading it would make that TrainingArguments does not
    dangerous: bool = False  # one of them is a known code-running / system call (os.system, eval, ...)
    problem: str = ""  # why nothing could be read ("" when fields were recovered)
    where: str = ""


class Inert:
    """Base of the stand-in classes: holds what the pickle asked for, does nothing else."""

    _global = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> Inert:
        obj = object.__new__(cls)
        obj.__dict__["_args"] = args
        obj.__dict__["_kwargs"] = kwargs
        obj.__dict__["_state"] = None
        obj.__dict__["_called"] = False
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__["_called"] = True  # REDUCE / INST: the real class (or function) would have run

    def __setstate__(self, state: Any) -> None:
        self.__dict__["_state"] = state

    def __setattr__(self, name: str, value: Any) -> None:  # BUILD's slot-state path
        st = self.__dict__.get("_state")
        if not isinstance(st, dict):
            st = {}
            self.__dict__["_state"] = st
        st[name] = value

    def __reduce__(self) -> Any:  # never re-pickled into something live
        raise TypeError("inert record")

    def __repr__(self) -> str:
        return f"{self._global}({_render_args(self.__dict__.get('_args', ()))})"


class _Persistent:
    """A persistent id (torch storage reference): recorded, never resolved."""

    def __init__(self, pid: Any) -> None:
        self.pid = pid

    def __repr__(self) -> str:
        return f"<persistent {self.pid!r}>"


_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother = 80, 80


def _render_args(args: tuple) -> str:
    """Bounded rendering (reprlib: depth- and length-capped, so a deep or huge argument cannot hurt)."""
    text = ", ".join(_REPR.repr(a) if not isinstance(a, Inert) else a._global for a in args)
    return text if len(text) <= 120 else text[:117] + "..."


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.classes: dict[str, type] = {}
        self.globals: list[str] = []

    def find_class(self, module: str, name: str) -> type:  # never imports: an inert stand-in per global
        key = f"{module} {name}"
        cls = self.classes.get(key)
        if cls is None:
            self.globals.append(f"{module}.{name}")
            cls = type(str(name)[:100] or "_", (Inert,), {"_global": f"{module}.{name}", "__module__": "inert"})
            self.classes[key] = cls
        return cls

    def persistent_load(self, pid: Any) -> Any:
        return _Persistent(pid)


def _is_expected(qual: str) -> bool:
    module, _, name = qual.rpartition(".")
    key = f"{module} {name}"
    if key in _EXPECTED:
        return True
    if module.split(".")[0] in ("transformers", "trl", "accelerate", "peft"):
        return True
    if module == "torch._utils" and name.startswith("_rebuild_"):
        return True  # tensor rebuild from a (never resolved) persistent storage record
    return module == "torch" and name in ("device", "dtype", "float16", "bfloat16", "float32", "Size")


def _is_dangerous(qual: str) -> bool:
    module, _, name = qual.rpartition(".")
    if module == "builtins" or module == "__builtin__":
        return name in _DANGEROUS_BUILTINS
    return module in _DANGEROUS_MODULES or module.split(".")[0] in _DANGEROUS_MODULES


def _calls(obj: Any, seen: set[int], out: list[Inert], depth: int = 0) -> None:
    """Every called Inert record reachable from obj (bounded walk)."""
    if depth > MAX_DEPTH or id(obj) in seen or len(seen) > MAX_NODES:
        return
    seen.add(id(obj))
    if isinstance(obj, Inert):
        out.append(obj)
        for v in (*obj.__dict__.get("_args", ()), *obj.__dict__.get("_kwargs", {}).values()):
            _calls(v, seen, out, depth + 1)
        _calls(obj.__dict__.get("_state"), seen, out, depth + 1)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _calls(k, seen, out, depth + 1)
            _calls(v, seen, out, depth + 1)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for v in obj:
            _calls(v, seen, out, depth + 1)


class _Budget:
    def __init__(self) -> None:
        self.nodes = 0


def to_plain(obj: Any, budget: _Budget | None = None, depth: int = 0) -> Any:
    """An unpickled value as JSON-like data: enums become their value, torch.device its string, other
    records their state (or arguments). Raises ValueError past the depth / node caps."""
    budget = budget or _Budget()
    budget.nodes += 1
    if budget.nodes > MAX_NODES:
        raise ValueError(f"more than {MAX_NODES} values")
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH}")
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (bytes, bytearray)):
        return f"<{len(obj)} bytes>"
    if isinstance(obj, dict):
        return {str(to_plain(k, budget, depth + 1)): to_plain(v, budget, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_plain(v, budget, depth + 1) for v in obj]
    if isinstance(obj, _Persistent):
        return repr(obj)
    if isinstance(obj, Inert):
        d = obj.__dict__
        args, state = d.get("_args", ()), d.get("_state")
        qual = obj._global
        if qual in ("torch.device", "torch.dtype") or (d.get("_called") and len(args) == 1 and state is None):
            # enums (SchedulerType('linear')), torch.device('cpu'): the value HF's to_dict() writes
            return to_plain(args[0], budget, depth + 1) if args else qual
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
            state = {**(state[0] or {}), **state[1]}  # (dict_state, slot_state)
        if isinstance(state, dict):
            return {str(k): to_plain(v, budget, depth + 1) for k, v in state.items() if not str(k).startswith("_")}
        if state is not None:
            return to_plain(state, budget, depth + 1)
        return [to_plain(a, budget, depth + 1) for a in args] if args else qual
    return repr(obj)[:200]


def _pickle_bytes(path: Path, raw: bytes) -> tuple[str, bytes]:
    if raw[:4] == b"PK\x03\x04":
        try:
            zf = zipfile.ZipFile(io.BytesIO(raw))
            names = [i for i in zf.infolist() if i.filename.endswith("/data.pkl") or i.filename == "data.pkl"]
            if not names:
                raise TrainingArgsError(path, "zip archive without a data.pkl: not a torch.save file")
            info = names[0]
            if info.file_size > MAX_PICKLE_BYTES:
                raise TrainingArgsError(
                    path, f"{info.filename} is {info.file_size} bytes (cap {MAX_PICKLE_BYTES})", info.filename
                )
            with zf.open(info) as fh:
                return "zip", fh.read(MAX_PICKLE_BYTES + 1)
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
            raise TrainingArgsError(path, f"damaged zip archive: {exc}") from None
    return "stream", raw


def _unpickle(path: Path, layout: str, data: bytes, seen: list[str]) -> tuple[Any, list[str]]:
    """The unpickled object; `seen` receives every global looked up, even when the pickle breaks later
    (a payload in front of damage is still reported)."""
    up = _RestrictedUnpickler(data)
    up.globals = seen
    try:
        if layout == "zip":
            return up.load(), up.globals
        first = up.load()
        if first != _LEGACY_MAGIC:
            return first, up.globals  # a bare pickle.dump: judged the same way
        up.load()  # protocol version
        up.load()  # sys_info
        return up.load(), up.globals
    except TrainingArgsError:
        raise
    except RecursionError:
        raise TrainingArgsError(path, "pickle nested too deeply") from None
    except MemoryError:
        raise TrainingArgsError(path, "pickle too large to read") from None
    except Exception as exc:  # UnpicklingError, EOFError, ValueError, TypeError, KeyError, ...
        raise TrainingArgsError(path, f"broken pickle: {type(exc).__name__}: {exc}"[:300]) from None


def scan_training_args(path: Path) -> ArgsScan:
    """Read path with the restricted unpickler. Never raises for bad input; see ArgsScan."""
    scan = ArgsScan(path=path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            scan.problem = f"file is {size} bytes (cap {MAX_FILE_BYTES})"
            return scan
        raw = path.read_bytes()
        if not raw:
            scan.problem, scan.where = "file is empty", "byte 0"
            return scan
        scan.layout, data = _pickle_bytes(path, raw)
        if len(data) > MAX_PICKLE_BYTES:
            scan.problem = f"pickle over {MAX_PICKLE_BYTES} bytes"
            return scan
        obj, _ = _unpickle(path, scan.layout, data, scan.globals)
    except OSError as exc:
        scan.problem = f"cannot read: {exc.strerror}"
        return scan
    except TrainingArgsError as exc:
        scan.problem, scan.where = exc.reason, exc.where
        bad = [f"{q}(...)" for q in scan.globals if _is_dangerous(q)]
        if bad:  # looked up before the damage: what loading it would have run first
            scan.unsafe, scan.dangerous = bad, True
            scan.problem = "would run code when loaded: " + "; ".join(bad[:5]) + f" (then {exc.reason})"
        return scan
    try:
        return _judge(scan, obj)
    except Exception as exc:  # a hostile structure the walk cannot take: reported, never raised
        scan.fields, scan.problem = {}, f"unreadable structure: {type(exc).__name__}"[:200]
        bad = [f"{q}(...)" for q in scan.globals if _is_dangerous(q)]
        if bad:  # still said as code it would run
            scan.unsafe, scan.dangerous = bad, True
            scan.problem = "would run code when loaded: " + "; ".join(bad[:5])
        return scan


def _judge(scan: ArgsScan, obj: Any) -> ArgsScan:
    records: list[Inert] = []
    _calls(obj, set(), records)
    unsafe = []
    for rec in records:
        if not _is_expected(rec._global) and (rec.__dict__.get("_called") or _is_dangerous(rec._global)):
            unsafe.append(repr(rec))
            scan.dangerous = scan.dangerous or _is_dangerous(rec._global)
    for qual in scan.globals:  # referenced but dropped from the result (e.g. an object built then popped)
        if _is_dangerous(qual) and not any(u.startswith(qual + "(") for u in unsafe):
            unsafe.append(f"{qual}(...)")
            scan.dangerous = True
    if unsafe:
        scan.unsafe = unsafe
        scan.problem = "would run code when loaded: " + "; ".join(unsafe[:5])
        return scan
    if not isinstance(obj, Inert) or not isinstance(obj.__dict__.get("_state"), dict):
        scan.problem = (
            f"holds {type(obj).__name__ if not isinstance(obj, Inert) else obj._global}, not a TrainingArguments"
        )
        return scan
    scan.class_name = obj._global
    try:
        plain = to_plain(obj)
    except ValueError as exc:
        scan.problem = str(exc)
        return scan
    if not isinstance(plain, dict) or ("learning_rate" not in plain and "output_dir" not in plain):
        scan.problem = f"{obj._global} without TrainingArguments fields (no learning_rate / output_dir)"
        return scan
    scan.fields = plain
    return scan


def read_training_args(path: str | Path) -> dict[str, Any]:
    """The TrainingArguments fields stored in a training_args.bin, as plain values (enums as their value,
    e.g. lr_scheduler_type 'linear'; torch.device as 'cpu'), without executing the pickle.

    Raises UnsafePickleError when the pickle would call anything a TrainingArguments pickle does not
    (nothing was run), TrainingArgsError when the file is damaged, too large, or not a TrainingArguments.
    """
    p = Path(path)
    scan = scan_training_args(p)
    if scan.unsafe:
        raise UnsafePickleError(p, scan.unsafe)
    if scan.problem:
        raise TrainingArgsError(p, scan.problem, scan.where)
    return scan.fields
