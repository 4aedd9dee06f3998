"""Verify a whole TFLite FlatBuffer on the host, before a run is created.

A truncated or damaged .tflite whose 8-byte header is fine would otherwise make a run, go to every
device and fail every cell. This walks the model the way FlatBuffers' own verifier does: every
table, vtable, vector and string it reaches must lie inside the file, every index (tensor, buffer,
operator code, subgraph) must point at something that exists, and buffers stored outside the
FlatBuffer (models over 2 GB keep `Buffer.offset/size` into the file) must be inside the file.

Only structure is checked, never meaning: a model with custom ops, or with op versions newer than
some runtime knows, passes here and is judged on the device by the runtime, in its own words.
Builtin-options tables (one per op type, hundreds of them) are checked as tables (vtable and
inline fields in bounds) without following their own vectors.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

# Sparsity index vectors (union DimensionMetadata.array_segments/array_indices): type -> element size.
_SPARSE_VECTOR_ELEMENT = {1: 4, 2: 2, 3: 1}  # Int32Vector, Uint16Vector, Uint8Vector


class DamagedModel(Exception):
    """The FlatBuffer is not whole; the message says where."""


class _Reader:
    def __init__(self, buf: bytes | mmap.mmap, size: int) -> None:
        self.buf = buf
        self.size = size

    def need(self, pos: int, length: int, what: str) -> None:
        if pos < 0 or length < 0 or pos + length > self.size:
            raise DamagedModel(f"{what} lies outside the file (bytes {pos}..{pos + length})")

    def scalar(self, kind: struct.Struct, pos: int, what: str) -> int:
        """One little-endian integer of `kind` at `pos`, after checking it lies inside the file."""
        self.need(pos, kind.size, what)
        return int(kind.unpack_from(self.buf, pos)[0])

    def u8(self, pos: int, what: str) -> int:
        return self.scalar(_U8, pos, what)

    def u16(self, pos: int, what: str) -> int:
        return self.scalar(_U16, pos, what)

    def i32(self, pos: int, what: str) -> int:
        return self.scalar(_I32, pos, what)

    def u32(self, pos: int, what: str) -> int:
        return self.scalar(_U32, pos, what)

    def u64(self, pos: int, what: str) -> int:
        return self.scalar(_U64, pos, what)

    def deref(self, pos: int, what: str) -> int:
        """The target of the uoffset stored at `pos`."""
        return pos + self.u32(pos, what)


class _Table:
    """One FlatBuffers table: its vtable checked, its fields read by index."""

    def __init__(self, r: _Reader, pos: int, what: str) -> None:
        self.r, self.pos, self.what = r, pos, what
        vtable = pos - r.i32(pos, what)
        vsize = r.u16(vtable, f"the vtable of {what}")
        self.inline = r.u16(vtable + 2, f"the vtable of {what}")
        if vsize < 4 or vsize % 2:
            raise DamagedModel(f"the vtable of {what} is malformed (size {vsize})")
        r.need(vtable, vsize, f"the vtable of {what}")
        r.need(pos, max(self.inline, 4), what)
        self.slots = [r.u16(vtable + 4 + 2 * i, what) for i in range((vsize - 4) // 2)]
        for i, offset in enumerate(self.slots):
            if offset and offset + 1 > self.inline:
                raise DamagedModel(f"field {i} of {what} lies outside its table")

    def at(self, field: int, size: int) -> int | None:
        offset = self.slots[field] if field < len(self.slots) else 0
        if not offset:
            return None
        if offset + size > self.inline:
            raise DamagedModel(f"field {field} of {self.what} lies outside its table")
        return self.pos + offset

    def scalar(self, field: int, kind: str, default: int = 0) -> int:
        size = {"u8": 1, "i32": 4, "u32": 4, "u64": 8}[kind]
        pos = self.at(field, size)
        if pos is None:
            return default
        read = {"u8": self.r.u8, "i32": self.r.i32, "u32": self.r.u32, "u64": self.r.u64}[kind]
        return read(pos, f"field {field} of {self.what}")

    def target(self, field: int) -> int | None:
        pos = self.at(field, 4)
        return None if pos is None else self.r.deref(pos, f"field {field} of {self.what}")

    def table(self, field: int, what: str) -> _Table | None:
        pos = self.target(field)
        return None if pos is None else _Table(self.r, pos, what)

    def vector(self, field: int, element: int, what: str) -> tuple[int, int]:
        """(position of the first element, length) of a vector field; (0, 0) when absent."""
        pos = self.target(field)
        if pos is None:
            return 0, 0
        length = self.r.u32(pos, what)
        self.r.need(pos + 4, length * element, what)
        return pos + 4, length

    def ints(self, field: int, what: str) -> list[int]:
        start, length = self.vector(field, 4, what)
        return [self.r.i32(start + 4 * i, what) for i in range(length)]

    def tables(self, field: int, what: str) -> list[_Table]:
        start, length = self.vector(field, 4, what)
        return [_Table(self.r, self.r.deref(start + 4 * i, f"{what} {i}"), f"{what} {i}") for i in range(length)]

    def string(self, field: int, what: str) -> None:
        pos = self.target(field)
        if pos is None:
            return
        length = self.r.u32(pos, what)
        self.r.need(pos + 4, length + 1, what)
        if self.r.buf[pos + 4 + length] != 0:
            raise DamagedModel(f"{what} is not terminated")


def verify_tflite(path: Path) -> None:
    """Raise DamagedModel (a short description of the first damage found) unless the whole model is sound."""
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        if size < 8:
            raise DamagedModel(f"the file has only {size} bytes")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            _verify(_Reader(buf, size))


def _verify(r: _Reader) -> None:
    model = _Table(r, r.deref(0, "the root offset"), "the model table")
    codes = model.tables(1, "operator code")
    for code in codes:
        code.string(1, f"the custom op name of {code.what}")
    buffers = model.tables(4, "buffer")
    for buffer in buffers:
        buffer.vector(0, 1, f"the data of {buffer.what}")
        _external(r, buffer.scalar(1, "u64"), buffer.scalar(2, "u64"), f"the data of {buffer.what}")
    model.string(3, "the model description")
    subgraphs = model.tables(2, "subgraph")
    if not subgraphs:
        raise DamagedModel("the model has no subgraph")
    tensor_counts = []
    for g, graph in enumerate(subgraphs):
        tensors = graph.tables(0, f"tensor of subgraph {g}; tensor")
        tensor_counts.append(len(tensors))
        for tensor in tensors:
            _tensor(tensor, len(buffers))
        _indices(graph.ints(1, f"the inputs of subgraph {g}"), len(tensors), f"an input of subgraph {g}")
        _indices(graph.ints(2, f"the outputs of subgraph {g}"), len(tensors), f"an output of subgraph {g}")
        graph.string(4, f"the name of subgraph {g}")
        for op in graph.tables(3, f"operator of subgraph {g}; operator"):
            _operator(r, op, len(codes), len(tensors))
    for index in model.ints(5, "the metadata buffer list"):
        if not 0 <= index < len(buffers):
            raise DamagedModel(f"the metadata buffer list names buffer {index} of {len(buffers)}")
    for meta in model.tables(6, "metadata entry"):
        meta.string(0, f"the name of {meta.what}")
        if meta.scalar(1, "u32") >= max(len(buffers), 1):
            raise DamagedModel(f"{meta.what} names buffer {meta.scalar(1, 'u32')} of {len(buffers)}")
    for signature in model.tables(7, "signature"):
        graph_index = signature.scalar(4, "u32")
        if graph_index >= len(subgraphs):
            raise DamagedModel(f"{signature.what} names subgraph {graph_index} of {len(subgraphs)}")
        signature.string(2, f"the key of {signature.what}")
        for field in (0, 1):
            for entry in signature.tables(field, f"tensor map of {signature.what}; entry"):
                entry.string(0, f"the name of {entry.what}")
                if entry.scalar(1, "u32") >= tensor_counts[graph_index]:
                    raise DamagedModel(f"{entry.what} names tensor {entry.scalar(1, 'u32')} of "
                                       f"{tensor_counts[graph_index]}")


def _external(r: _Reader, offset: int, size: int, what: str) -> None:
    """Data kept after the FlatBuffer (offset > 1, as TFLite reads it) must be inside the file."""
    if offset > 1 and offset + size > r.size:
        raise DamagedModel(f"{what} (bytes {offset}..{offset + size}) lies outside the file")


def _indices(values: list[int], count: int, what: str) -> None:
    for value in values:
        if not -1 <= value < count:  # -1: an optional input left out
            raise DamagedModel(f"{what} names tensor {value} of {count}")


def _tensor(tensor: _Table, buffers: int) -> None:
    what = tensor.what
    tensor.ints(0, f"the shape of {what}")
    index = tensor.scalar(2, "u32")
    if index >= max(buffers, 1):
        raise DamagedModel(f"{what} names buffer {index} of {buffers}")
    tensor.string(3, f"the name of {what}")
    quant = tensor.table(4, f"the quantization of {what}")
    if quant is not None:
        for field, size in ((0, 4), (1, 4), (2, 4), (3, 8)):
            quant.vector(field, size, f"the quantization of {what}")
        if quant.scalar(4, "u8"):
            quant.table(5, f"the quantization details of {what}")
    sparsity = tensor.table(6, f"the sparsity of {what}")
    if sparsity is not None:
        sparsity.ints(0, f"the sparsity of {what}")
        sparsity.ints(1, f"the sparsity of {what}")
        for dim in sparsity.tables(2, f"the sparsity of {what}; dimension"):
            for type_field, value_field in ((2, 3), (4, 5)):
                element = _SPARSE_VECTOR_ELEMENT.get(dim.scalar(type_field, "u8"))
                values = dim.table(value_field, f"the sparse index of {what}") if element else None
                if values is not None and element is not None:
                    values.vector(0, element, f"the sparse index of {what}")
    tensor.ints(7, f"the shape signature of {what}")


def _operator(r: _Reader, op: _Table, codes: int, tensors: int) -> None:
    what = op.what
    code = op.scalar(0, "u32")
    if code >= codes:
        raise DamagedModel(f"{what} names operator code {code} of {codes}")
    _indices(op.ints(1, f"the inputs of {what}"), tensors, f"an input of {what}")
    _indices(op.ints(2, f"the outputs of {what}"), tensors, f"an output of {what}")
    if op.scalar(3, "u8"):
        op.table(4, f"the options of {what}")
    op.vector(5, 1, f"the custom options of {what}")
    op.vector(7, 1, f"the mutating inputs of {what}")
    _indices(op.ints(8, f"the intermediates of {what}"), tensors, f"an intermediate of {what}")
    _external(r, op.scalar(9, "u64"), op.scalar(10, "u64"), f"the custom options of {what}")
    if op.scalar(11, "u8"):
        op.table(12, f"the options of {what}")
