"""A static check of a YOLO `.pt` before ultralytics unpickles it with full pickle (torch.load, weights_only=False).

Nothing named by the file is imported, called or constructed here: every pickle in it is read opcode by opcode with a
symbolic stack, and each global it names is refused unless the committed allowlist (yolo_allowlist.json, enumerated
from genuine ultralytics checkpoints by curation/models/yolo_genuine.py) holds that name *for that use*:

- `new`: created the way `object.__reduce_ex__(2)` pickles an instance (NEWOBJ with no arguments, then BUILD with
  its state); for nn.Module classes BUILD runs nn.Module.__setstate__, which only fills the instance's __dict__;
- `call`: called through REDUCE (torch's tensor rebuild helpers, OrderedDict, torch.Size, set);
- `fill`: items added to what that call returned (an OrderedDict);
- `value`: passed around as a value (torch's storage types);
- `root`: the class of the checkpoint's model.

Anything else (a class called with arguments, INST/OBJ/NEWOBJ_EX, extension codes, state set on a call's result or
on a class, unknown opcodes) is refused. Both torch formats are covered: the zip archive (every .pkl record, and no
record torch.save would not write) and the legacy stream of five pickles; a legacy tar archive is refused.
"""

import _compat_pickle
import io
import json
import pickletools
import re
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from common.errors import UsageError

ALLOWLIST_PATH = Path(__file__).with_name("yolo_allowlist.json")

NEW, CALL, FILL, VALUE, ROOT = "new", "call", "fill", "value", "root"
# Uses no genuine checkpoint has; they are emitted so the refusal can name the global.
NEW_WITH_ARGS, CONSTRUCT, BUILD_RESULT, SET_CLASS_STATE = "new_with_args", "construct", "build_result", "class_state"

_ZIP_MAGIC = b"PK\x03\x04"  # torch.serialization._is_zipfile: a zip archive iff the file starts with this
_ZIP_RECORDS = {"data.pkl", "version", ".data/version", "byteorder", ".data/serialization_id", ".format_version"}
_ZIP_RECORDS.add(".storage_alignment")  # the records torch.save writes besides data/<n> (storages)
_STORAGE_RECORD = re.compile(r"data/\d+")
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_MODULE = re.compile(rf"{_IDENTIFIER}(\.{_IDENTIFIER})*")
_QUALNAME = re.compile(_IDENTIFIER)  # no dots: module.qualname then names exactly one (module, attribute) pair
_TORCH_MODULE_MAPPING = {"torch.tensor": "torch._tensor"}  # torch.serialization._load's find_class renames this
_LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
_LEGACY_PROTOCOL_VERSION = 1001  # torch.serialization.PROTOCOL_VERSION
_DATA_OPS = {
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "STRING", "BINSTRING", "SHORT_BINSTRING",
    "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE",
    "BINUNICODE8", "FLOAT", "BINFLOAT",
}  # fmt: skip
ADVICE = (
    "Use the official ultralytics release file (pin it with {pin}) or convert weights you trust once with "
    "`humans1b models convert-yolo IN.pt OUT.safetensors` and load that"
)


class UnsafeCheckpointError(UsageError):
    """A weights file that must not be loaded; the message names the file, what it would do, and what to do."""


def refuse(path: str | Path, reason: str, *, key: str | None = None) -> UnsafeCheckpointError:
    """The one-line error for `path`: `key` (the config entry) first when known, then the file, the reason, advice."""
    pin = f"{key.rsplit('.', 1)[0]}.sha256=..." if key else "a sha256"
    prefix = f"{key}: " if key else ""
    return UnsafeCheckpointError(f"{prefix}{path}: refused: {reason}; nothing in it was run. {ADVICE.format(pin=pin)}")


@cache
def allowlist() -> dict[str, frozenset[str]]:
    """`module.qualname` -> the uses genuine checkpoints make of it (from yolo_allowlist.json)."""
    data = json.loads(ALLOWLIST_PATH.read_text())
    return {name: frozenset(uses) for name, uses in data["globals"].items()}


class Refusal(Exception):
    """A use of a global that the allowlist does not hold, or a construct no genuine checkpoint has."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- the symbolic values on the stack: none of them is ever the object the pickle describes ----------------------


@dataclass(eq=False)
class _Global:
    name: str  # module.qualname after the renames pickle and torch apply
    used: bool = False


@dataclass(eq=False)
class _Instance:  # NEWOBJ of a class with no arguments
    cls: _Global
    built: bool = False


@dataclass(eq=False)
class _Result:  # what REDUCE returned
    func: _Global


@dataclass(eq=False)
class _Data:  # a literal: str, bytes, int, float, bool, None
    value: Any


@dataclass(eq=False)
class _Tuple:
    items: tuple
    consumed: bool = False  # its items were reported once; a memoized tuple used again adds nothing


@dataclass(eq=False)
class _Dict:
    items: dict[str, Any] = field(default_factory=dict)  # the entries with string keys


class _List:
    pass


class _Set:
    pass


class _Storage:
    pass


_SEVERITY = {CONSTRUCT: 0, CALL: 0, NEW_WITH_ARGS: 0, SET_CLASS_STATE: 1, BUILD_RESULT: 1, FILL: 1, NEW: 2, ROOT: 3}


def describe(name: str, use: str) -> str:
    known_class = NEW in allowlist().get(name, ())
    return {
        NEW: f"creates an instance of {name}",
        CALL: f"calls {'class ' if known_class else ''}{name} with arguments",
        FILL: f"adds items to what {name} returned",
        VALUE: f"refers to {name}",
        ROOT: f"holds a {name} as its model",
        NEW_WITH_ARGS: f"creates class {name} with arguments",
        CONSTRUCT: f"calls class {name} with arguments",
        BUILD_RESULT: f"sets the state of what {name} returned",
        SET_CLASS_STATE: f"sets attributes of class {name}",
    }[use]


class Collector:
    """Records every (global, use) of the pickles scanned: how the allowlist is built from genuine files."""

    def __init__(self) -> None:
        self.uses: dict[str, set[str]] = {}

    def __call__(self, name: str, use: str) -> None:
        self.uses.setdefault(name, set()).add(use)

    def settle(self) -> None:
        pass


class Checker:
    """Records every use the allowlist does not hold; settle() refuses with the worst one (a call before a mere
    reference), so the error names the global that matters even when the pickle refers to others first."""

    def __init__(self, allowed: dict[str, frozenset[str]]) -> None:
        self.allowed = allowed
        self.refused: list[tuple[str, str]] = []

    def __call__(self, name: str, use: str) -> None:
        if use not in self.allowed.get(name, ()):
            self.refused.append((name, use))

    def settle(self) -> None:
        if self.refused:
            name, use = min(self.refused, key=lambda refused: _SEVERITY.get(refused[1], 4))
            raise Refusal(f"{describe(name, use)}, which no genuine ultralytics detect or pose checkpoint does")


Use = Collector | Checker


class PickleScan:
    """Reads one pickle from `data[start:]` opcode by opcode, reporting every use of a global to `use`.

    `persistent` is torch's format: "zip" (persistent ids are storages) or "legacy" (storages, or a module class
    with its source); None for a pickle that may hold plain data only.
    """

    def __init__(self, data: bytes, use: "Use", *, start: int = 0, persistent: str | None = None) -> None:
        self.data, self.use, self.start, self.persistent = data, use, start, persistent
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.proto = 0
        self.globals: list[_Global] = []
        self.end = start

    def run(self) -> Any:
        """The symbolic result; self.end is the offset just past STOP."""
        stream = io.BytesIO(self.data)
        stream.seek(self.start)
        try:
            for op, arg, pos in pickletools.genops(stream):
                if op.name == "STOP":
                    self.end = stream.tell()
                    result = self._pop()
                    break
                self._step(op.name, arg, pos)
            else:
                raise Refusal("is malformed (no STOP)")
        except (ValueError, KeyError, IndexError) as err:  # genops: unknown opcode or truncated; bad memo / stack
            raise Refusal(f"is malformed ({err})") from None
        for glob in self.globals:  # imported by pickle when named, even if never used
            if not glob.used:
                self.use(glob.name, VALUE)
        return result

    # --- stack helpers --------------------------------------------------------------------------------------------

    def _push(self, item: Any) -> None:  # not a bound self.stack.append: MARK and _pop_mark swap the list
        self.stack.append(item)

    def _pop(self) -> Any:
        return self.stack.pop()  # IndexError below a MARK: malformed, as for pickle ("stack underflow")

    def _pop_mark(self) -> list[Any]:
        items, self.stack = self.stack, self.metastack.pop()
        return items

    def _value(self, item: Any) -> Any:
        """`item` stored as data (in a container, an argument tuple, a state). A tuple's items count when the tuple
        does: a tuple that becomes a legacy persistent id hands its class to torch, which returns it unused.
        Iterative, and each tuple once: nesting depth and shared tuples cost no recursion and no blow-up."""
        todo = [item]
        while todo:
            current = todo.pop()
            if isinstance(current, _Global):
                current.used = True
                self.use(current.name, VALUE)
            elif isinstance(current, _Tuple) and not current.consumed:
                current.consumed = True
                todo.extend(current.items)
        return item

    def _values(self, items: Iterable[Any]) -> list[Any]:
        return [self._value(i) for i in items]

    def _global(self, module: str, name: str) -> _Global:
        if not (_MODULE.fullmatch(module) and _QUALNAME.fullmatch(name)):
            raise Refusal(f"names a global with an unusual name {module!r} {name!r}")
        if self.persistent == "zip":
            module = _TORCH_MODULE_MAPPING.get(module, module)
        if self.proto < 3:  # pickle.Unpickler.find_class with fix_imports (Python 2 names)
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        glob = _Global(f"{module}.{name}")
        self.globals.append(glob)
        return glob

    def _callee(self, item: Any, how: str) -> _Global:
        if not isinstance(item, _Global):
            raise Refusal(f"calls something that is not a global ({type(item).__name__[1:]})")
        item.used = True
        self.use(item.name, how)
        return item

    def _fill(self, target: Any, kind: type) -> None:
        if isinstance(target, kind):
            return
        if isinstance(target, _Result):
            self.use(target.func.name, FILL)
        elif isinstance(target, _Instance):
            self.use(target.cls.name, FILL)
        else:
            raise Refusal(f"adds items to a {type(target).__name__[1:]}")

    # --- opcodes --------------------------------------------------------------------------------------------------

    def _step(self, name: str, arg: Any, pos: int) -> None:  # one branch per opcode
        if name in _DATA_OPS:
            self._push(_Data(arg))
        elif name == "NONE":
            self._push(_Data(None))
        elif name in ("NEWTRUE", "NEWFALSE"):
            self._push(_Data(name == "NEWTRUE"))
        elif name == "MARK":
            self.metastack.append(self.stack)
            self.stack = []
        elif name == "EMPTY_TUPLE":
            self._push(_Tuple(()))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            self._push(_Tuple(tuple([self._pop() for _ in range(int(name[-1]))][::-1])))
        elif name == "TUPLE":
            self._push(_Tuple(tuple(self._pop_mark())))
        elif name == "EMPTY_LIST":
            self._push(_List())
        elif name == "LIST":
            self._values(self._pop_mark())
            self._push(_List())
        elif name in ("EMPTY_DICT", "DICT"):
            target = _Dict()
            if name == "DICT":
                self._set_items(target, self._pop_mark())
            self._push(target)
        elif name == "EMPTY_SET":
            self._push(_Set())
        elif name == "FROZENSET":
            self._values(self._pop_mark())
            self._push(_Set())
        elif name in ("APPEND", "APPENDS"):
            items = [self._pop()] if name == "APPEND" else self._pop_mark()
            self._values(items)
            self._fill(self.stack[-1], _List)
        elif name in ("SETITEM", "SETITEMS"):
            items = [self._pop() for _ in range(2)][::-1] if name == "SETITEM" else self._pop_mark()
            self._set_items(self.stack[-1], items)
        elif name == "ADDITEMS":
            self._values(self._pop_mark())
            self._fill(self.stack[-1], _Set)
        elif name == "POP":  # pickle's POP discards the mark when the current stack is empty
            if self.stack:
                self._value(self._pop())
            else:
                self._pop_mark()
        elif name == "POP_MARK":
            self._values(self._pop_mark())
        elif name == "DUP":
            self._push(self.stack[-1])
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            self.memo[int(arg)] = self.stack[-1]
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = self.stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            self._push(self.memo[int(arg)])
        elif name == "PROTO":
            self.proto = arg
        elif name == "FRAME":
            pass
        elif name in ("GLOBAL", "INST"):
            module, name_ = self._read_global_lines(pos)
            glob = self._global(module, name_)
            if name == "INST":  # cls(*args): the constructor runs
                self._values(self._pop_mark())
                self._callee(glob, CONSTRUCT)
            self._push(glob)
        elif name == "STACK_GLOBAL":
            qualname, module = self._pop(), self._pop()
            if not (isinstance(module, _Data) and isinstance(qualname, _Data)):
                raise Refusal("names a global through objects that are not strings")
            self._push(self._global(str(module.value), str(qualname.value)))
        elif name == "REDUCE":
            args, func = self._pop(), self._pop()
            self._value(args)
            self._push(_Result(self._callee(func, CALL)))
        elif name == "NEWOBJ":
            args, cls = self._pop(), self._pop()
            empty = isinstance(args, _Tuple) and not args.items
            self._value(args)
            self._push(_Instance(self._callee(cls, NEW if empty else NEW_WITH_ARGS)))
        elif name == "NEWOBJ_EX":
            kwargs, args, cls = self._pop(), self._pop(), self._pop()
            self._values((kwargs, args))
            self._push(_Instance(self._callee(cls, NEW_WITH_ARGS)))
        elif name == "OBJ":
            items = self._pop_mark()
            if not items:
                raise Refusal("is malformed (OBJ without a class)")
            self._values(items[1:])
            self._push(_Instance(self._callee(items[0], CONSTRUCT)))
        elif name == "BUILD":  # an _Instance's state only fills its __dict__ (nn.Module.__setstate__)
            self._value(self._pop())
            target = self.stack[-1]
            if isinstance(target, _Result):
                self.use(target.func.name, BUILD_RESULT)
            elif isinstance(target, _Global):
                target.used = True
                self.use(target.name, SET_CLASS_STATE)
            elif not isinstance(target, _Instance):
                raise Refusal(f"sets the state of a {type(target).__name__[1:]}")
            elif target.built:  # a state can put __setstate__ in the instance __dict__, which a second BUILD calls
                raise Refusal(f"sets the state of one {target.cls.name} twice")
            else:
                target.built = True
        elif name == "BINPERSID":
            self._push(self._persistent(self._pop()))
        elif name in ("EXT1", "EXT2", "EXT4"):
            raise Refusal("uses the copyreg extension registry")
        elif name in ("NEXT_BUFFER", "READONLY_BUFFER"):
            raise Refusal("uses out-of-band buffers")
        elif name == "PERSID":
            raise Refusal("has a text persistent id, which torch never writes")
        else:
            raise Refusal(f"uses the opcode {name}")

    def _read_global_lines(self, pos: int) -> tuple[str, str]:
        """The two raw lines after GLOBAL/INST, split the way pickle splits them (genops joins them with a space)."""
        end_module = self.data.index(b"\n", pos + 1)
        end_name = self.data.index(b"\n", end_module + 1)
        try:
            return self.data[pos + 1 : end_module].decode("utf-8"), self.data[end_module + 1 : end_name].decode("utf-8")
        except UnicodeDecodeError:
            raise Refusal("names a global that is not UTF-8") from None

    def _set_items(self, target: Any, items: list[Any]) -> None:
        if len(items) % 2:
            raise Refusal("is malformed (odd number of dict items)")
        self._values(items)
        self._fill(target, _Dict)
        if isinstance(target, _Dict):
            for key, value in zip(items[::2], items[1::2], strict=True):
                if isinstance(key, _Data) and isinstance(key.value, str):
                    target.items[key.value] = value

    def _persistent(self, pid: Any) -> Any:
        """torch's persistent_load: a storage record, or (legacy only) a module class with its source file."""
        items = pid.items if isinstance(pid, _Tuple) else ()
        kind = items[0].value if items and isinstance(items[0], _Data) else None
        shapes = {"zip": {"storage": 5}, "legacy": {"storage": 6, "module": 4}}.get(self.persistent or "", {})
        if kind not in shapes or len(items) != shapes[kind] or not isinstance(items[1], _Global):
            raise Refusal("has a persistent id torch.save does not write")
        if kind == "module":  # torch returns the class itself, to be instantiated by a NEWOBJ the scan checks
            if not all(isinstance(i, _Data) for i in items[2:]):
                raise Refusal("has a persistent id torch.save does not write")
            return items[1]
        self._values(items)  # the storage type: torch's find_class makes it a StorageType (a dtype holder)
        return _Storage()


# --- whole files -----------------------------------------------------------------------------------------------


def check_root(result: Any, use: "Use") -> None:
    """The outer object ultralytics' load_checkpoint reads: a dict whose `ema or model` is the model, with no
    quantization state (ultralytics would install and run NVIDIA ModelOpt to restore it)."""
    if not isinstance(result, _Dict):
        raise Refusal("does not hold an ultralytics checkpoint dict")
    ema, model = result.items.get("ema"), result.items.get("model")
    if not (_is_none(ema) or isinstance(ema, _Instance)):
        raise Refusal("has an 'ema' entry that is not a model")
    chosen = ema if isinstance(ema, _Instance) else model
    if not isinstance(chosen, _Instance):
        raise Refusal("holds no model")
    if not _is_none(result.items.get("modelopt")):
        raise Refusal("carries ModelOpt quantization state, which ultralytics restores by running ModelOpt")
    use(chosen.cls.name, ROOT)


def _is_none(item: Any) -> bool:
    """Absent or a pickled None."""
    return item is None or (isinstance(item, _Data) and item.value is None)


def scan_checkpoint(data: bytes, use: Use) -> None:
    """Every pickle torch.load would unpickle from `data`, checked with `use`. Raises Refusal."""
    if data[:4] == _ZIP_MAGIC:
        _scan_zip(data, use)
    else:
        _scan_legacy(data, use)


def _scan_zip(data: bytes, use: Use) -> None:
    import torch

    try:  # torch's own archive reader: the records it lists are the ones torch.load would read
        reader = torch._C.PyTorchFileReader(io.BytesIO(data))
        records = sorted(reader.get_all_records())
        pickles = {r: bytes(reader.get_record(r)) for r in records if r.endswith(".pkl")}
    except RuntimeError as err:
        raise Refusal(f"it is not a readable torch zip archive ({str(err).splitlines()[0]})") from None
    for record, payload in pickles.items():
        try:
            result = _settled(PickleScan(payload, use, persistent="zip"), use)
            if record == "data.pkl":
                check_root(result, use)
                use.settle()
        except Refusal as refusal:
            raise Refusal(f"its pickle {record} {refusal.reason}") from None
    unexpected = [r for r in records if r not in _ZIP_RECORDS and not _STORAGE_RECORD.fullmatch(r)]
    if unexpected:
        raise Refusal(f"its archive holds {', '.join(unexpected[:3])}, which torch.save does not write")
    if "data.pkl" not in pickles:
        raise Refusal("its archive has no data.pkl")


def _scan_legacy(data: bytes, use: Use) -> None:
    """torch's pre-zip stream: magic number, protocol version, sys info, the object, the storage keys (all
    pickles; only the object may name globals), then raw storage bytes."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:"):
            pass
    except tarfile.TarError:
        pass  # torch.load moves on to the pickle stream only on a TarError
    except (EOFError, OSError, ValueError) as err:
        raise Refusal(f"it is not a readable torch checkpoint ({err})") from None
    else:
        raise Refusal("it is a tar archive (torch's pre-1.0 format), which no current checkpoint uses")
    offset, results = 0, []
    for part in ("magic number", "protocol version", "system info", "object", "storage keys"):
        part_use = use if part == "object" else Checker({})  # only the object may name globals
        scan = PickleScan(data, part_use, start=offset, persistent="legacy" if part == "object" else None)
        try:
            results.append(_settled(scan, part_use))
        except Refusal as refusal:
            raise Refusal(f"its {part} pickle {refusal.reason}") from None
        offset = scan.end
        if part == "magic number" and not (isinstance(results[0], _Data) and results[0].value == _LEGACY_MAGIC_NUMBER):
            raise Refusal("it is not a torch checkpoint (no torch magic number)")
        if part == "protocol version" and not (
            isinstance(results[1], _Data) and results[1].value == _LEGACY_PROTOCOL_VERSION
        ):
            raise Refusal("it is not a torch checkpoint of a known protocol version")
    try:
        check_root(results[3], use)
        use.settle()
    except Refusal as refusal:
        raise Refusal(f"its object pickle {refusal.reason}") from None


def _settled(scan: "PickleScan", use: Use) -> Any:
    """scan.run(), with the refused uses it recorded reported before a malformation they may have led to."""
    try:
        result = scan.run()
    except Refusal:
        use.settle()
        raise
    use.settle()
    return result


def check_checkpoint(data: bytes, path: str | Path, *, key: str | None = None) -> None:
    """Raise UnsafeCheckpointError unless torch.load(data) can only rebuild what a genuine checkpoint holds."""
    try:
        scan_checkpoint(data, Checker(allowlist()))
    except Refusal as refusal:
        raise refuse(path, refusal.reason, key=key) from None


def collect_uses(data: bytes) -> dict[str, set[str]]:
    """Every (global, use) in `data`, for building the allowlist from genuine checkpoints."""
    collector = Collector()
    scan_checkpoint(data, collector)
    return collector.uses
