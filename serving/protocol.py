"""Open Inference Protocol v2 requests, parsed strictly: JSON or the binary tensor extension -> numpy.

Why by hand: KServe's request models coerce (`"shape": ["2"]` becomes [2], negative shapes pass) and its
binary-extension reader trusts every length it is given (a non-numeric `inference-header-content-length`, a
negative or short `binary_data_size` or a bad BYTES length prefix end in a 500), and it decodes binary
BYTES elements as UTF-8 (raw image bytes end in a 500 whose body quotes them). Here every field is
checked against the protocol before a byte is used, and each problem is one short InvalidInput (a 400)
that never quotes the payload.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from kserve.errors import InvalidInput

HEADER_LENGTH = "inference-header-content-length"
ITEM_BYTES = {"BOOL": 1, "UINT8": 1, "UINT16": 2, "UINT32": 4, "UINT64": 8, "INT8": 1, "INT16": 2, "INT32": 4,
              "INT64": 8, "FP16": 2, "FP32": 4, "FP64": 8, "BYTES": 0}
NUMPY_TYPES = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
               "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FP16": np.float16,
               "FP32": np.float32, "FP64": np.float64}
MAX_ELEMENTS = 1 << 28
"""No tensor may claim more elements than this, whatever the body holds (a shape is only a claim)."""


@dataclass
class Tensor:
    name: str
    datatype: str
    shape: list[int]
    data: Any
    """JSON: the `data` list as sent (numbers, or strings for BYTES). Binary: a numpy array, or for BYTES a list
    of bytes objects."""
    binary: bool = False


@dataclass
class RequestedOutput:
    name: str
    binary: bool = False


@dataclass
class TensorRequest:
    inputs: list[Tensor]
    id: str | None = None
    outputs: list[RequestedOutput] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def parse_request(body: bytes, header_length: str | None) -> TensorRequest:
    """An inference request body (and the binary extension's header, if sent) -> a checked TensorRequest."""
    if header_length is None:
        json_part, binary = body, b""
    else:
        if not (header_length.isascii() and header_length.isdigit()) or int(header_length) > len(body):
            raise InvalidInput(f"{HEADER_LENGTH} must be a whole number of bytes, at most the body's length "
                               f"({len(body)})")
        json_part, binary = body[:int(header_length)], body[int(header_length):]
    try:
        document = orjson.loads(json_part)
    except orjson.JSONDecodeError:
        raise InvalidInput("the request body is not valid JSON (an inference request is "
                           '{"inputs": [{"name", "shape", "datatype", "data"}]})') from None
    if not isinstance(document, dict):
        raise InvalidInput("an inference request is a JSON object with an 'inputs' list")
    inputs = document.get("inputs")
    if not isinstance(inputs, list):
        raise InvalidInput("'inputs' must be a list of tensors")
    request = TensorRequest([], _optional_string(document, "id", "id"), _outputs(document.get("outputs")),
                            _parameters(document, "request"))
    offset = 0
    for index, entry in enumerate(inputs):
        tensor, used = _tensor(entry, index, binary, offset)
        request.inputs.append(tensor)
        offset += used
    if offset != len(binary):
        raise InvalidInput(f"the body holds {len(binary)} bytes of binary data but the inputs declare {offset}")
    return request


def _tensor(entry: Any, index: int, binary: bytes, offset: int) -> tuple[Tensor, int]:
    where = f"inputs[{index}]"
    if not isinstance(entry, dict):
        raise InvalidInput(f"{where} must be an object with name, shape, datatype and data")
    name = entry.get("name")
    if not isinstance(name, str):
        raise InvalidInput(f"{where}.name must be a string")
    datatype = entry.get("datatype")
    if not isinstance(datatype, str) or datatype not in ITEM_BYTES:
        raise InvalidInput(f"{where}.datatype must be one of {', '.join(ITEM_BYTES)}")
    shape = entry.get("shape")
    if (not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape)
            or math.prod(shape) > MAX_ELEMENTS):
        raise InvalidInput(f"{where}.shape must be a list of non-negative integers (at most {MAX_ELEMENTS} "
                           "elements in all)")
    size = _parameters(entry, where).get("binary_data_size")
    if size is None:
        if "data" not in entry or not isinstance(entry["data"], list):
            raise InvalidInput(f"{where}.data must be a list (or send binary_data_size with the binary extension)")
        return Tensor(name, datatype, shape, entry["data"]), 0
    if "data" in entry:
        raise InvalidInput(f"{where} has both data and binary_data_size")
    return _binary_tensor(Tensor(name, datatype, shape, None, binary=True), size, binary, offset, where), size


def _binary_tensor(tensor: Tensor, size: Any, binary: bytes, offset: int, where: str) -> Tensor:
    """The tensor's data from its `size` bytes of the binary part, starting at `offset`."""
    if type(size) is not int or size < 0 or offset + size > len(binary):
        raise InvalidInput(f"{where}.parameters.binary_data_size must be a non-negative integer within the "
                           f"{len(binary) - offset} bytes of binary data left")
    chunk, count, datatype = binary[offset:offset + size], math.prod(tensor.shape), tensor.datatype
    if datatype == "BYTES":
        tensor.data = _bytes_elements(chunk, count, where)
        return tensor
    if size != count * ITEM_BYTES[datatype]:
        raise InvalidInput(f"{where}: shape {tensor.shape} of {datatype} needs {count * ITEM_BYTES[datatype]} "
                           f"bytes, binary_data_size is {size}")
    tensor.data = np.frombuffer(chunk, dtype=NUMPY_TYPES[datatype]).reshape(tensor.shape)
    return tensor


def _bytes_elements(chunk: bytes, count: int, where: str) -> list[bytes]:
    """BYTES in the binary extension: each element is a 4-byte little-endian length, then that many bytes."""
    elements, position = [], 0
    while position < len(chunk):
        if position + 4 > len(chunk):
            raise InvalidInput(f"{where}: a BYTES element's 4-byte length prefix is cut off")
        (length,) = struct.unpack_from("<I", chunk, position)
        position += 4
        if position + length > len(chunk):
            raise InvalidInput(f"{where}: a BYTES element declares {length} bytes but only "
                               f"{len(chunk) - position} remain")
        elements.append(chunk[position:position + length])
        position += length
    if len(elements) != count:
        raise InvalidInput(f"{where}: the shape holds {count} BYTES elements, the binary data {len(elements)}")
    return elements


def _outputs(value: Any) -> list[RequestedOutput] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in value):
        raise InvalidInput("'outputs' must be a list of objects with a name")
    return [RequestedOutput(o["name"], _parameters(o, "outputs").get("binary_data") is True) for o in value]


def _parameters(entry: dict[str, Any], where: str) -> dict[str, Any]:
    parameters = entry.get("parameters", {})
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise InvalidInput(f"{where}.parameters must be an object")
    return parameters


def _optional_string(entry: dict[str, Any], key: str, where: str) -> str | None:
    value = entry.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{where} must be a string")
    return value
