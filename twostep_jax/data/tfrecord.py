"""A TensorFlow-free reader of this project's TFDS TFRecord shards (numpy + protobuf only).

    for example in read_examples(paths): ...   # dicts of numpy arrays, as tfds.as_numpy gives

TFRecord framing (one record): uint64 length, uint32 masked CRC32C of the length, `length`
bytes of data, uint32 masked CRC32C of the data (little-endian; mask = rotate right by 15 bits
+ 0xa282ead8). Both checksums are verified. The data is a serialized `tf.train.Example`, decoded
with a message class built here from the same field layout as tensorflow/core/example/*.proto,
so neither TensorFlow nor its protos are needed.

Decoding follows the dataset's `features.json` (written by tfds with the data): a Tensor with
`encoding: zlib` is zlib-compressed raw little-endian bytes; other tensors are float/int64 lists;
Text is UTF-8 bytes; ClassLabel is int64; a Sequence of a dict stores each sub-feature as one
flat list under `name/sub`. Supported: exactly the feature kinds data_prep writes.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

# ----------------------------------------------------------------------------- CRC32C


def _crc32c_table() -> list[int]:
    poly = 0x82F63B78  # Castagnoli, reflected
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of `data`, table-driven (crc32c(b"123456789") == 0xE3069283)."""
    crc = 0xFFFFFFFF
    table = _TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class CorruptRecordError(ValueError):
    """A TFRecord file whose framing or checksums are wrong (truncated or damaged)."""


def read_records(path: str | Path, check_data_crc: bool = True) -> Iterator[bytes]:
    """The records of one TFRecord file, checksums verified.

    `check_data_crc=False` skips the data checksum (the pure-Python CRC32C costs ~10 ms per
    80 kB clip); the length checksum is always verified.
    """
    with open(path, "rb") as f:
        offset = 0
        while True:
            header = f.read(12)
            if not header:
                return
            if len(header) < 12:
                raise CorruptRecordError(f"{path}: truncated record header at byte {offset}")
            length, length_crc = struct.unpack("<QI", header)
            if masked_crc32c(header[:8]) != length_crc:
                raise CorruptRecordError(f"{path}: bad length checksum at byte {offset}")
            data = f.read(length)
            footer = f.read(4)
            if len(data) < length or len(footer) < 4:
                raise CorruptRecordError(f"{path}: truncated record at byte {offset}")
            if check_data_crc and masked_crc32c(data) != struct.unpack("<I", footer)[0]:
                raise CorruptRecordError(f"{path}: bad data checksum in the record at byte {offset}")
            offset += 16 + length
            yield data


# ----------------------------------------------------------------------------- tf.train.Example


def _example_class():
    """`tf.train.Example` as a protobuf message class (field numbers as TF's example.proto)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FileDescriptorProto(name="twostep_tf_example.proto",
                                             package="twostep_tf", syntax="proto3")
    F = descriptor_pb2.FieldDescriptorProto

    def message(name, fields):
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = type_name
        return m

    rep, opt = F.LABEL_REPEATED, F.LABEL_OPTIONAL
    message("BytesList", [("value", 1, F.TYPE_BYTES, rep, None)])
    message("FloatList", [("value", 1, F.TYPE_FLOAT, rep, None)])
    message("Int64List", [("value", 1, F.TYPE_INT64, rep, None)])
    message("Feature", [("bytes_list", 1, F.TYPE_MESSAGE, opt, ".twostep_tf.BytesList"),
                        ("float_list", 2, F.TYPE_MESSAGE, opt, ".twostep_tf.FloatList"),
                        ("int64_list", 3, F.TYPE_MESSAGE, opt, ".twostep_tf.Int64List")])
    features = message("Features", [])
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=opt)
    entry.field.add(name="value", number=2, type=F.TYPE_MESSAGE, label=opt,
                    type_name=".twostep_tf.Feature")
    features.field.add(name="feature", number=1, type=F.TYPE_MESSAGE, label=rep,
                       type_name=".twostep_tf.Features.FeatureEntry")
    message("Example", [("features", 1, F.TYPE_MESSAGE, opt, ".twostep_tf.Features")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("twostep_tf.Example"))


_EXAMPLE = None


def parse_example(data: bytes) -> dict[str, np.ndarray | list]:
    """A serialized tf.train.Example -> {key: numpy array (int64/float32) or list of bytes}."""
    global _EXAMPLE
    if _EXAMPLE is None:
        _EXAMPLE = _example_class()
    example = _EXAMPLE.FromString(data)
    out = {}
    for key, feature in example.features.feature.items():
        kind = _kind(feature)
        if kind == "bytes_list":
            out[key] = list(feature.bytes_list.value)
        elif kind == "float_list":
            out[key] = np.asarray(feature.float_list.value, np.float32)
        elif kind == "int64_list":
            out[key] = np.asarray(feature.int64_list.value, np.int64)
        else:
            out[key] = np.zeros(0, np.float32)  # an empty feature (e.g. a clip with no events)
    return out


def _kind(feature) -> str | None:
    for kind in ("bytes_list", "float_list", "int64_list"):
        if feature.HasField(kind):
            return kind
    return None


# ----------------------------------------------------------------------------- features.json


_NUMPY = {"float32": np.float32, "int32": np.int32, "int64": np.int64, "float64": np.float64}


def _decode_tensor(spec: dict, value, sequence: bool):
    """One tensor feature (`spec` = features.json's "tensor" entry) from its raw value."""
    dtype = np.dtype(_NUMPY[spec["dtype"]])
    shape = [int(d) for d in spec.get("shape", {}).get("dimensions", [])]
    if spec.get("encoding") in ("zlib", "bytes"):
        (raw,) = value
        if spec["encoding"] == "zlib":
            raw = zlib.decompress(raw)
        return np.frombuffer(raw, dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    arr = np.asarray(value).astype(dtype)
    return arr if sequence else arr.reshape(shape)


def _decoder(name: str, spec: dict, sequence: bool = False):
    """(example dict -> decoded value) for one features.json entry."""
    if "tensor" in spec:
        return lambda ex: _decode_tensor(spec["tensor"], ex.get(name, np.zeros(0)), sequence)
    if "classLabel" in spec:
        return lambda ex: np.asarray(ex.get(name, np.zeros(0)), np.int64) if sequence \
            else np.int64(ex[name][0])
    if "text" in spec:
        return lambda ex: np.asarray(ex.get(name, []), object) if sequence else ex[name][0]
    if "sequence" in spec:
        inner = spec["sequence"]["feature"]
        return _decoder(name, inner, sequence=True)
    if "featuresDict" in spec:
        subs = {k: _decoder(f"{name}/{k}" if name else k, v, sequence)
                for k, v in spec["featuresDict"]["features"].items()}
        return lambda ex: {k: d(ex) for k, d in subs.items()}
    raise ValueError(f"{name}: feature kind {sorted(spec)} is not supported by the TF-free reader")


def example_decoder(features_json: dict):
    """The decoder of a dataset's examples, from its features.json."""
    return _decoder("", features_json)


def read_examples(paths: Iterable[str | Path], features_json: dict,
                  check_data_crc: bool = True) -> Iterator[dict]:
    """Decoded examples of TFRecord files `paths`, in file and record order."""
    decode = example_decoder(features_json)
    for path in paths:
        for record in read_records(path, check_data_crc):
            yield decode(parse_example(record))


def load_features_json(dataset_dir: str | Path) -> dict:
    return json.loads((Path(dataset_dir) / "features.json").read_text())
