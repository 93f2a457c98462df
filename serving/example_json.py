"""Classify/Regress REST bodies → serialized ``tf.Example`` (FillClassifyRegressRequestFromJson)."""
from __future__ import annotations

import base64
import binascii
from typing import Any

from serving.errors import invalid
from serving.json_request import is_b64, json_type
from serving.json_text import dbg, string_bytes


def _feature_from_json(name: str, value: Any):
    from tensorflow.core.example import feature_pb2

    values = value if isinstance(value, list) else [value]
    feature = feature_pb2.Feature()
    kind = None
    for v in values:
        if isinstance(v, bool) or (isinstance(v, int)):
            if isinstance(v, int) and not isinstance(v, bool) and not -2**63 <= v < 2**63:
                raise invalid(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
            this = "int64"
        elif isinstance(v, float):
            this = "float"
        elif isinstance(v, str) or is_b64(v):
            this = "bytes"
        else:
            raise invalid(f"Feature: {name} has element with unexpected JSON type: {json_type(v)}")
        if kind is None:
            kind = this
        elif kind != this:
            raise invalid(f"Unexpected element type in feature: {name} expecting type: {kind}")
        if this == "int64":
            feature.int64_list.value.append(int(v))
        elif this == "float":
            feature.float_list.value.append(v)
        elif isinstance(v, str):
            feature.bytes_list.value.append(string_bytes(v))
        else:
            try:
                feature.bytes_list.value.append(base64.b64decode(v["b64"], validate=True))
            except (binascii.Error, ValueError):
                raise invalid("Unable to base64 decode") from None
    return feature


def _example_from_json(obj: Any) -> bytes:
    from tensorflow.core.example import example_pb2

    if not isinstance(obj, dict):
        raise invalid(f"Example must be JSON object but got JSON {json_type(obj)}")
    example = example_pb2.Example()
    for name, value in obj.items():
        example.features.feature[name].CopyFrom(_feature_from_json(name, value))
    return example.SerializeToString()


def parse_examples_body(doc: Any) -> list[bytes]:
    """A classify/regress body → serialized tf.Examples (context bytes + example bytes)."""
    context = b""
    if "context" in doc:
        context = _example_from_json(doc["context"])
    if "examples" not in doc:
        raise invalid(f"JSON Value: {dbg(doc)} When method is classify, key 'examples' is expected and was not found")
    examples = doc["examples"]
    if not isinstance(examples, list):
        raise invalid(f"JSON Value: {dbg(doc)} Expecting 'examples' value to be an list/array")
    if not examples:
        raise invalid(f"JSON Value: {dbg(doc)} 'examples' value is an empty array")
    return [context + _example_from_json(e) for e in examples]
