#!/usr/bin/env python3
"""Pickles of every protocol (0-5) and opcode family, each beside the JSON tree Python decodes
from it, for the differential test of the checkpoint pickle reader (`src/model/weights/pickle.rs`).

    python3 -m pip install --target /tmp/np1 numpy==1.26.4
    python3 -m pip install --target /tmp/np2 numpy==2.2.6
    PYTHONPATH=/tmp/np1 python3 scripts/make_pickle_fixtures.py tests/fixtures/pickle
    PYTHONPATH=/tmp/np2 python3 scripts/make_pickle_fixtures.py tests/fixtures/pickle

Each run writes the files of the numpy major it imports (`*_np1.*` or `*_np2.*`); the numpy-2 run
also writes the opcode-family files, which do not depend on numpy's version.

`NAME.pkl` is the pickle; `NAME.json` is `pickle.loads(data, encoding="latin1")` (how detectron2
reads checkpoints) written with these conventions:

    None, True/False, str      -> null, true/false, a string
    int                        -> a number if it fits in 64 signed bits, else {"int": "<decimal>"}
    float                      -> {"float": repr(x)}
    bytes, bytearray           -> {"bytes": "<hex>"}
    list                       -> a JSON array
    tuple                      -> {"tuple": [...]}
    dict, OrderedDict          -> {"dict": [[key, value], ...]} in insertion order
    set, frozenset             -> {"set": [...]}, {"frozenset": [...]} (any order)
    numpy array                -> {"array": {"dtype", "shape", "values"}}: values in C order
                                  whatever the array's memory order; floats as repr strings
    numpy scalar               -> {"scalar": {"dtype", "value"}}

Python 2.7 cannot be installed where these were made, so the `py2_proto{0,1,2}` files come from a
pickler that writes what Python 2's pickler writes for its `str` type (STRING in protocol 0,
SHORT_BINSTRING / BINSTRING in 1 and 2), for 64-bit `int` (INT text beyond 32 bits, also in the
binary protocols), for `long` (LONG text, LONG1/LONG4) and for `OrderedDict` (its `__reduce__`
passes the items as a list of pairs). Protocols 0-2 are the formats Python 2 wrote; 3-5 exist in
Python 3 only.
"""
import collections
import io
import json
import os
import pickle
import sys

import numpy as np

NP_MAJOR = int(np.__version__.split(".")[0])


def to_json(x):
    if isinstance(x, np.ndarray):
        vals = [scalar_json(v) for v in np.ascontiguousarray(x).reshape(-1).tolist()]
        return {"array": {"dtype": x.dtype.name, "shape": list(x.shape), "values": vals}}
    if isinstance(x, np.generic):
        return {"scalar": {"dtype": x.dtype.name, "value": scalar_json(x.item())}}
    if x is None or isinstance(x, (bool, str)):
        return x
    if isinstance(x, int):
        return x if -(2**63) <= x < 2**63 else {"int": str(x)}
    if isinstance(x, float):
        return {"float": repr(x)}
    if isinstance(x, (bytes, bytearray)):
        return {"bytes": bytes(x).hex()}
    if isinstance(x, list):
        return [to_json(v) for v in x]
    if isinstance(x, tuple):
        return {"tuple": [to_json(v) for v in x]}
    if isinstance(x, dict):
        return {"dict": [[to_json(k), to_json(v)] for k, v in x.items()]}
    if isinstance(x, (set, frozenset)):
        kind = "set" if isinstance(x, set) else "frozenset"
        return {kind: sorted((to_json(v) for v in x), key=json.dumps)}
    raise TypeError(type(x))


def scalar_json(v):
    if isinstance(v, float):
        return {"float": repr(v)}
    return v


def write(out, name, data):
    tree = pickle.loads(data, encoding="latin1")
    with open(os.path.join(out, name + ".pkl"), "wb") as f:
        f.write(data)
    with open(os.path.join(out, name + ".json"), "w") as f:
        json.dump(to_json(tree), f, sort_keys=True)
        f.write("\n")


def arrays():
    """Every dtype the reader takes, both memory orders, and the shapes that trip readers."""
    c = np.arange(12, dtype=np.float32).reshape(3, 4) * np.float32(0.25) - 1
    c[0, 0], c[2, 3] = np.float32(1e-30), np.float32(-3.4e38)
    f3 = np.asfortranarray(np.arange(24, dtype=np.float64).reshape(2, 3, 4) / 7)
    return collections.OrderedDict(
        [
            ("backbone.c_order", c),
            ("backbone.f_order", np.asfortranarray(c)),
            ("backbone.f_order_3d", f3),
            ("backbone.strided", c[:, ::2]),  # not contiguous: pickled as a C-order copy
            ("sem_seg_head.f16", np.array([0.5, -2.0, 65504.0, 6e-8], dtype=np.float16)),
            ("sem_seg_head.i64", np.array([[1, -2], [2**40, -(2**62)]], dtype=np.int64)),
            ("sem_seg_head.i32", np.array([7, -7, 2**31 - 1], dtype=np.int32)),
            ("sem_seg_head.i16", np.array([-300, 300], dtype=np.int16)),
            ("sem_seg_head.i8", np.array([-128, 127], dtype=np.int8)),
            ("sem_seg_head.u8", np.arange(250, 256, dtype=np.uint8)),
            ("sem_seg_head.bool", np.array([[True, False, True]])),
            ("sem_seg_head.empty", np.zeros((0, 3), dtype=np.float32)),
            ("sem_seg_head.zero_d", np.array(2.5, dtype=np.float32)),
            ("sem_seg_head.big_endian_f4", np.array([1.5, -2.0, 1e-40], dtype=">f4")),
            ("sem_seg_head.big_endian_i8", np.array([[1], [-(2**60)]], dtype=">i8")),
            # Over 4 KiB: the reader's path for large payloads (moved, not copied), every byte value.
            ("sem_seg_head.large", (np.arange(4200) % 256).astype(np.uint8)),
            # Bytes that text protocols must escape: newline, backslash, quotes, NUL, 0x1a, 0xff.
            ("sem_seg_head.escapes", np.frombuffer(b"\n\\'\"\x00\x1a\r\xff", dtype=np.uint8).copy()),
        ]
    )


def zoo_layout():
    """The model-zoo layout plus numpy scalars and a shared (memoised) list beside the model."""
    names = ["a", "b"]
    return {
        "model": arrays(),
        "__author__": "Facebook AI Research",
        "matching_heuristics": True,
        "iteration": np.int64(89999),
        "lr": np.float32(0.0001),
        "loss": np.float64(1.5),
        "flag": np.bool_(False),
        "shared": [names, names, (names,)],
    }


class Py2Pickler(pickle._Pickler):
    """Writes `bytes` (and ASCII `str`) the way Python 2 wrote its `str`, ints the way Python 2
    wrote `int`/`long`, and OrderedDict the way Python 2's `__reduce__` did."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        b = obj.encode("ascii") if isinstance(obj, str) else bytes(obj)
        if self.proto == 0:
            self.write(b"S" + py2_repr(b) + b"\n")
        elif len(b) < 256:
            self.write(b"U" + bytes([len(b)]) + b)
        else:
            self.write(b"T" + len(b).to_bytes(4, "little") + b)
        self.memoize(obj)

    def save_str(self, obj):
        if obj.isascii():
            self.save_py2_str(obj)
        else:
            pickle._Pickler.save_str(self, obj)

    def save_int(self, obj):
        if -(2**63) <= obj < 2**63:  # Python 2 `int`
            if self.bin and -(2**31) <= obj < 2**31:
                pickle._Pickler.save_long(self, obj)
            else:
                self.write(b"I" + repr(obj).encode() + b"\n")
        elif self.proto >= 2:
            pickle._Pickler.save_long(self, obj)
        else:
            self.write(b"L" + repr(obj).encode() + b"L\n")

    def save_ordered_dict(self, obj):
        self.save_reduce(collections.OrderedDict, ([[k, v] for k, v in obj.items()],), obj=obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_str
    dispatch[int] = save_int
    dispatch[collections.OrderedDict] = save_ordered_dict


def py2_repr(b):
    """Python 2's `repr` of a `str`."""
    quote = b'"' if b"'" in b and b'"' not in b else b"'"
    out = bytearray(quote)
    for c in b:
        if c == quote[0] or c == 0x5C:
            out += b"\\" + bytes([c])
        elif c == 0x09:
            out += b"\\t"
        elif c == 0x0A:
            out += b"\\n"
        elif c == 0x0D:
            out += b"\\r"
        elif c < 0x20 or c >= 0x7F:
            out += b"\\x%02x" % c
        else:
            out.append(c)
    return bytes(out + quote)


def py2_dumps(obj, proto):
    f = io.BytesIO()
    Py2Pickler(f, protocol=proto).dump(obj)
    return f.getvalue()


def families():
    """One pickle per opcode family, in the protocols where the family's opcodes differ."""
    ints = [0, 1, -1, 255, 256, 65535, 65536, 2**31 - 1, -(2**31), 2**31, 2**63 - 1, -(2**63),
            2**63, -(2**63) - 1, 2**64, -(2**100), 10**40]
    floats = [0.0, -0.0, 1.5, -2.25e-300, 1e300, 5e-324, float("inf"), float("-inf"), 0.1]
    strs = ["", "a", "latin-1 é ÿ", "ünïcödé ✓ 😀", "back\\slash\nnew line\r\x00\x1a", "x" * 300,
            "quote ' and \""]
    byts = [b"", b"\x00\xff", bytes(range(256)) * 2, bytearray(b"ba")]
    shared = ["s"]
    mixed = {
        "tuples": [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)],
        "nested": {"a": [{"b": ({"c": []},)}], 1: None, 2.5: True, (1, "k"): False},
        "sets": [set(), {1, 2, 3}, frozenset(), frozenset({"x", "y"})],
        "shared": [shared, shared, {"again": shared}],
        "odict": collections.OrderedDict([("z", 1), ("a", 2)]),
    }
    memo_many = [[i] for i in range(300)]  # > 256 memo entries: LONG_BINPUT / LONG_BINGET
    memo_many = [memo_many, memo_many[0], memo_many[299]]
    out = {}
    for proto in range(6):
        out[f"ints_p{proto}"] = pickle.dumps(ints, protocol=proto)
        out[f"floats_p{proto}"] = pickle.dumps(floats, protocol=proto)
        out[f"strings_p{proto}"] = pickle.dumps(strs, protocol=proto)
        out[f"bytes_p{proto}"] = pickle.dumps(byts, protocol=proto)
        out[f"containers_p{proto}"] = pickle.dumps(mixed, protocol=proto)
        out[f"memo_p{proto}"] = pickle.dumps(memo_many, protocol=proto)
    for proto in range(3):
        out[f"py2_ints_p{proto}"] = py2_dumps(ints, proto)
        out[f"py2_strings_p{proto}"] = py2_dumps([s.encode("latin-1") for s in strs if s.isascii()] +
                                                 [bytes(range(256))], proto)
    out["stack_ops"] = stack_ops()
    return out


def stack_ops():
    """DUP, POP and POP_MARK, which CPython's pickler never writes but its unpickler reads:
    `[1, 1]` built with DUP, a value dropped with POP and a marked group dropped with POP_MARK."""
    return b"".join([
        b"\x80\x02",
        b"]",          # EMPTY_LIST
        b"K\x01",      # BININT1 1
        b"2",          # DUP
        b"K\x09",      # BININT1 9
        b"0",          # POP
        b"(",          # MARK
        b"K\x07K\x08",
        b"1",          # POP_MARK
        b"(K\x01",     # MARK, 1
        b"t",          # TUPLE (1,) -> discarded below
        b"0",          # POP
        b"\x86",       # TUPLE2 (1, 1)
        b"a",          # APPEND
        b".",
    ])


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for proto in range(6):
        write(out, f"zoo_p{proto}_np{NP_MAJOR}", pickle.dumps(zoo_layout(), protocol=proto))
    if NP_MAJOR == 1:
        for proto in range(3):
            write(out, f"py2_zoo_p{proto}_np1", py2_dumps(zoo_layout(), proto))
    else:
        for name, data in families().items():
            write(out, name, data)


if __name__ == "__main__":
    main()
