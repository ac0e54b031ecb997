"""Webhook and chat bodies made ready to keep, shared by every channel.

What the database or the analyser would later choke on is refused (`load_storable`, in the
routes, a 400) or taken out (`without_nul`, in the inbox) before a 200: a platform redelivers
what got a 5xx for ever, and a stored event that fails on every retry is no better."""

from __future__ import annotations

import json
import math
from typing import Any


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999
        raise ValueError("a number too large for JSON")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_storable(raw: bytes | str) -> Any:
    """The parsed JSON body. ValueError (a 400 for the caller) when it is not JSON, nests
    deeper than the parser takes, or holds lone surrogates (no UTF-8 for the database,
    and the analyser raises on them). NaN, Infinity and numbers that overflow to it are
    refused too: Python's parser takes them, PostgreSQL's JSON does not."""
    try:
        data = json.loads(raw, parse_float=_finite, parse_constant=_no_constant)
        json.dumps(data, ensure_ascii=False).encode()  # UnicodeEncodeError: lone surrogate
    except RecursionError as exc:  # [[[[... thousands deep
        raise ValueError("JSON nested too deep") from exc
    return data


def without_nul(data: Any) -> Any:
    """`data` with U+0000 taken out of every string (the inbox, before storing an event):
    PostgreSQL's text and JSON cannot hold it, and in a message or an id it carries no
    meaning. Iterative: a body may nest hundreds of levels, past Python's recursion limit."""
    if "\\u0000" not in json.dumps(data):  # the encoder always escapes NUL as \u0000
        return data
    data = json.loads(json.dumps(data))  # a copy to change in place
    if isinstance(data, str):
        return data.replace("\x00", "")
    stack: list[Any] = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in [k for k in node if "\x00" in k]:
                node[key.replace("\x00", "")] = node.pop(key)
            slots: list[Any] = list(node)
        elif isinstance(node, list):
            slots = list(range(len(node)))
        else:
            continue
        for slot in slots:
            child = node[slot]
            if isinstance(child, str):
                node[slot] = child.replace("\x00", "")
            elif isinstance(child, dict | list):
                stack.append(child)
    return data
