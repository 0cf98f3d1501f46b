"""Request bodies in Kubernetes' protobuf encoding (application/vnd.kubernetes.protobuf), which
kubectl 1.33's typed commands (`create namespace`, `create configmap`, ...) send: the magic
"k8s\\x00", then a runtime.Unknown (typeMeta, raw) whose raw is the object's message. The lab
decodes them to the JSON the object would have had, for the messages lab/schemas.py describes.

client-go falls back to JSON on a 415 only for CBOR, so refusing protobuf would break those
commands: the lab decodes what it can and answers 415 for what it cannot.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from lab.schemas import ANY, TYPES, FieldType

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"


class Undecodable(ValueError):
    """The body is not protobuf the lab can read (a message type it does not describe)."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise Undecodable("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """The (field number, value) pairs of a message: ints for varints, bytes for length-delimited."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise Undecodable("truncated field")
            out.append((number, data[pos:pos + length]))
            pos += length
        elif wire in (1, 5):  # fixed64 / fixed32: no Kubernetes field the lab reads uses them
            pos += 8 if wire == 1 else 4
        else:
            raise Undecodable(f"unsupported wire type {wire}")
    return out


def unwrap(body: bytes) -> tuple[str, str, bytes]:
    """(apiVersion, kind, raw message) of an enveloped body."""
    if not body.startswith(MAGIC):
        raise Undecodable("the protobuf body lacks the k8s magic prefix")
    api_version = kind = ""
    raw = b""
    for number, value in fields(body[len(MAGIC):]):
        if number == 1 and isinstance(value, bytes):
            for inner, text in fields(value):
                if isinstance(text, bytes):
                    if inner == 1:
                        api_version = text.decode()
                    elif inner == 2:
                        kind = text.decode()
        elif number == 2 and isinstance(value, bytes):
            raw = value
    return api_version, kind, raw


def decode_object(body: bytes) -> dict:
    """The JSON form of an enveloped object (apiVersion and kind included)."""
    api_version, kind, raw = unwrap(body)
    if kind not in TYPES:
        raise Undecodable(f"no protobuf decoding for kind {kind!r}")
    obj = _message(kind, raw)
    obj.setdefault("metadata", {})
    return {"kind": kind, "apiVersion": api_version, **obj}


def _message(type_name: str, data: bytes) -> dict:
    message = TYPES[type_name]
    by_number = {number: (name, type_) for name, (number, type_) in message.items()}
    out: dict = {}
    for number, value in fields(data):
        if number not in by_number:
            raise Undecodable(f"field {number} of {type_name} is not known to the lab")
        name, type_ = by_number[number]
        if isinstance(type_, tuple):
            shape, inner = type_
            if shape == "list":
                try:
                    item = _value(inner, value)  # type: ignore[arg-type]
                except Undecodable as exc:
                    raise Undecodable(f"{type_name}.{name}: {exc}") from exc
                out.setdefault(name, []).append(item)
            else:  # a map entry: key 1, value 2
                entry = dict(fields(value)) if isinstance(value, bytes) else {}
                key = entry.get(1, b"")
                decoded = _value(inner, entry.get(2, b""))  # type: ignore[arg-type]
                out.setdefault(name, {})[key.decode() if isinstance(key, bytes) else str(key)] = decoded
            continue
        try:
            decoded = _value(type_, value)
        except Undecodable as exc:
            raise Undecodable(f"{type_name}.{name}: {exc}") from exc
        if _present(type_, decoded):
            out[name] = decoded
    return out


def _present(type_: FieldType, value: object) -> bool:
    """Whether JSON would carry the field: Go omits empty non-pointer values."""
    if isinstance(type_, str) and type_.endswith("?"):
        return True
    return value not in ("", 0, False, None, {})


def _value(type_: FieldType, value: int | bytes) -> object:
    if type_ in ("int", "int?"):
        number = int(value) if isinstance(value, int) else 0
        return number - (1 << 64) if number >= 1 << 63 else number
    if type_ in ("bool", "bool?"):
        return bool(value)
    if not isinstance(value, bytes):
        raise Undecodable(f"expected bytes for a {type_} field")
    if type_ == "string":
        return value.decode()
    if type_ == "bytes":
        return base64.b64encode(value).decode()
    if type_ == "quantity":
        return dict(fields(value)).get(1, b"").decode()  # type: ignore[union-attr]
    if type_ == "time":
        seconds = dict(fields(value)).get(1, 0)
        if not seconds:
            return None
        return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # type: ignore[arg-type]
    if type_ == "intstr":
        parts = dict(fields(value))
        return parts.get(3, b"").decode() if parts.get(1) else int(parts.get(2, 0))  # type: ignore[union-attr,arg-type]
    if type_ == "ignored":
        return {}
    if type_ == ANY:
        if value:  # an empty message (an unset status, say) is nothing to decode
            raise Undecodable("a field the lab does not decode from protobuf")
        return {}
    return _message(type_, value)  # type: ignore[arg-type]
