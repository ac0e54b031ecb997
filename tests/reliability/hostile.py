"""Hypothesis strategies for hostile webhook bodies, generated from the platforms' own specs.

The LINE schemas come from ../shared/specs/line-openapi/webhook.yml (OpenAPI 3: `$ref`,
`allOf` subtypes, `discriminator` mappings), the Telegram ones from
../shared/specs/telegram-bot-api/api.json (a list of types and their fields). Both are turned
into plain JSON Schema that hypothesis-jsonschema draws from, with every free-text string
field replaced by hostile text (huge, empty, emoji, right-to-left, NUL, lone surrogates...).
On top of that, bodies are mutated: values of the wrong type, deeply nested arrays, and raw
bytes that are not UTF-8.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from tests.fakes.spec import SPECS, _openapi, _require, telegram_api

Json = Any
HOSTILE = "hostile"  # the custom string format every free-text field is given

_SPECIAL_TEXTS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\u202eevil\u202c",  # right-to-left override
    "مرحبا بالعالم",  # Arabic (RTL)
    "שלום",
    "👨‍👩‍👧‍👦🇯🇵🏳️‍🌈",  # ZWJ sequences and flags
    "\ufeff\u200b\u200d",
    "\ud800",  # lone surrogates: sent as "\\ud800" escapes in the JSON
    "\udfff\ud800x",
    "e\u0301\u0301\u0301\u0301",
    "空き家バンクについて教えて",
    "担当者と話したい",
    "ツアーに申し込みたい",
    "<script>alert(1)</script>",
    "'; DROP TABLE people; --",
    "{{7*7}} ${7*7} %s %n %(x)s",
    "\r\n\t\x1b[31m",
    "../../etc/passwd",
    "null",
    "0" * 40,
]


def hostile_text() -> st.SearchStrategy[str]:
    any_char = st.characters(codec=None, categories=None)  # surrogates and controls included
    huge = st.builds(
        lambda piece, n: piece * n,
        st.sampled_from(["a", "あ", "😀", "\u0301", "\u202e", " ", "\x00"]),
        st.integers(1000, 60_000),
    )
    return st.one_of(
        st.sampled_from(_SPECIAL_TEXTS),
        st.text(max_size=40),
        st.text(alphabet=any_char, max_size=40),
        huge,
    )


# --- LINE: OpenAPI 3 to JSON Schema -----------------------------------------------------------
_DROP = {"description", "externalDocs", "example", "format", "deprecated", "readOnly", "title"}


def _line_components() -> dict[str, Any]:
    schemas: dict[str, Any] = _openapi("webhook.yml")["components"]["schemas"]
    return schemas


def _convert(node: Json, comps: dict[str, Any], depth: int) -> Json:
    """One OpenAPI schema node as JSON Schema; `$ref`s inlined, discriminators made anyOf."""
    if depth > 40:
        raise RecursionError("the LINE spec's references loop")
    if "$ref" in node:
        return _named(node["$ref"].rsplit("/", 1)[-1], comps, depth + 1)
    if "allOf" in node:
        return _merge_all_of(node, comps, depth)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or key == "discriminator":
            continue
        if key == "properties":
            out[key] = {k: _convert(v, comps, depth + 1) for k, v in value.items()}
        elif key == "items":
            out[key] = _convert(value, comps, depth + 1)
        elif key == "nullable":
            continue
        else:
            out[key] = value
    if node.get("nullable") and "type" in out:
        out = {"anyOf": [out, {"type": "null"}]}
    if out.get("type") == "string" and "enum" not in out and "pattern" not in out:
        out = {"type": "string", "format": HOSTILE}
    if out.get("type") == "object":
        out.setdefault("additionalProperties", False)  # junk keys come from the mutations
    return out


def _merge_all_of(node: Json, comps: dict[str, Any], depth: int) -> Json:
    merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
    parts = [*node["allOf"], {k: v for k, v in node.items() if k != "allOf"}]
    for part in parts:
        if "$ref" in part:  # the base type: its fields, not its discriminator again
            part = _strip(comps[part["$ref"].rsplit("/", 1)[-1]])
        done = _convert(part, comps, depth + 1)
        merged["properties"].update(done.get("properties", {}))
        merged["required"] += [r for r in done.get("required", []) if r not in merged["required"]]
    merged["additionalProperties"] = False
    return merged


def _strip(schema: Json) -> Json:
    return {k: v for k, v in schema.items() if k != "discriminator"}


def _named(name: str, comps: dict[str, Any], depth: int) -> Json:
    schema = comps[name]
    disc = schema.get("discriminator")
    if disc is None:
        return _convert(schema, comps, depth)
    variants = []
    for value, ref in disc["mapping"].items():
        variant = _convert({"$ref": ref}, comps, depth + 1)
        variant["properties"][disc["propertyName"]] = {"const": value}
        variants.append(variant)
    return {"anyOf": variants}


@cache
def line_callback_schema() -> Json:
    """CallbackRequest as self-contained JSON Schema: every event type of the spec."""
    schema = _named("CallbackRequest", _line_components(), 0)
    schema["properties"]["events"]["maxItems"] = 3
    return schema


# --- Telegram: api.json to JSON Schema --------------------------------------------------------
_TG_SCALARS: dict[str, Json] = {
    "Integer": {"type": "integer"},
    "Float": {"type": "number"},
    "Boolean": {"type": "boolean"},
    "String": {"type": "string", "format": HOSTILE},
    "True": {"const": True},
}
MAX_TG_DEPTH = 3  # below this only required fields: Message -> Message -> ... ends


def _tg_type(name: str, depth: int) -> Json:
    if name.startswith("Array of "):
        return {"type": "array", "items": _tg_type(name[len("Array of ") :], depth), "maxItems": 3}
    if name in _TG_SCALARS:
        return _TG_SCALARS[name]
    spec = telegram_api()["types"][name]
    if "subtypes" in spec:
        return {"anyOf": [_tg_type(sub, depth) for sub in spec["subtypes"]]}
    props: dict[str, Json] = {}
    required: list[str] = []
    for field in spec.get("fields", []):
        if not field["required"] and (depth >= MAX_TG_DEPTH or len(props) > 24):
            continue
        if depth > MAX_TG_DEPTH + 3:
            return {"type": "object"}
        kinds = [_tg_type(t, depth + 1) for t in field["types"]]
        props[field["name"]] = kinds[0] if len(kinds) == 1 else {"anyOf": kinds}
        if field["required"]:
            required.append(field["name"])
    return {"type": "object", "properties": props, "required": required,
            "additionalProperties": False}  # fmt: skip


@cache
def telegram_update_schemas() -> dict[str, Json]:
    """One schema per kind of Update (update_id and exactly one of the optional fields)."""
    update = telegram_api()["types"]["Update"]
    out: dict[str, Json] = {}
    for field in update["fields"]:
        if field["name"] == "update_id":
            continue
        out[field["name"]] = {
            "type": "object",
            "properties": {
                "update_id": {"type": "integer"},
                field["name"]: _tg_type(field["types"][0], 1),
            },
            "required": ["update_id", field["name"]],
            "additionalProperties": False,
        }
    return out


# --- strategies ------------------------------------------------------------------------------
def _from(schema: Json) -> st.SearchStrategy[Json]:
    return from_schema(schema, custom_formats={HOSTILE: hostile_text()})


def line_spec_bodies() -> st.SearchStrategy[Json]:
    """CallbackRequest bodies of 0-3 events of any type in the spec. One strategy per event
    type rather than one for the whole body: hypothesis-jsonschema re-reads a nested schema
    at every draw, and the body with all 19 event types inlined costs seconds an example."""
    _require(SPECS / "line-openapi" / "webhook.yml")
    schema = line_callback_schema()
    variants = schema["properties"]["events"]["items"]["anyOf"]
    events = st.one_of(*[_from(variant) for variant in variants])
    destination = _from(schema["properties"]["destination"])
    return st.fixed_dictionaries(
        {"destination": destination, "events": st.lists(events, max_size=3)}
    )


def telegram_spec_updates() -> st.SearchStrategy[Json]:
    _require(SPECS / "telegram-bot-api" / "api.json")
    schemas = telegram_update_schemas()
    # Private messages and button presses are what reaches the engine: drawn more often.
    common = [_from(schemas[k]) for k in ("message", "callback_query", "edited_message")]
    rest = [_from(schema) for schema in schemas.values()]
    return st.one_of(*common, *common, st.one_of(*rest))


def _leaves(value: Json, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Json]]:
    yield path, value
    if len(path) > 30:
        return  # inside a deep nest a mutation already made: no need to walk it
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))


def _replace(value: Json, path: tuple[Any, ...], new: Json) -> Json:
    if not path:
        return new
    target = value
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return value


@st.composite
def hostile_fill(draw: st.DrawFn, recorded: Json) -> Json:
    """A recorded, realistic body with hostile text in (most of) its string fields: the
    shape the bot acts on, so the text reaches the engine, the database and the replies."""
    body = copy.deepcopy(recorded)
    for path, leaf in list(_leaves(body)):
        if isinstance(leaf, str) and draw(st.integers(0, 9)) < 7:
            body = _replace(body, path, draw(hostile_text()))
    return body


_WRONG: st.SearchStrategy[Json] = st.one_of(
    st.sampled_from(
        [
            None,
            True,
            False,
            0,
            -1,
            2**63,
            2**64 + 1,
            -(2**70),
            1.5,
            math.inf,
            -math.inf,
            math.nan,
            "",
            "x",
            [],
            {},
            [None],
            {"": None},
        ]
    ),
    st.integers(1, 5_000).map(lambda depth: _nest(depth)),
    hostile_text(),
)


def _deep(value: Json) -> bool:
    return isinstance(value, list) and len(value) == 1 and isinstance(value[0], list)


def _nest(depth: int) -> Json:
    value: Json = []
    for _ in range(depth):
        value = [value]
    return value


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[Json]) -> Json:
    """`base` with 0-3 of its values (the whole body included) swapped for the wrong type,
    a deeply nested array, or hostile text."""
    # Copies: a drawn value may be shared with another example (sampled_from hands out the
    # same object), and mutating it in place would change what later examples draw.
    body = copy.deepcopy(draw(base))
    for _ in range(draw(st.integers(0, 3))):
        paths = [path for path, _ in _leaves(body)]
        path = draw(st.sampled_from(paths))
        wrong = draw(_WRONG)
        body = _replace(body, path, wrong if _deep(wrong) else copy.deepcopy(wrong))
    return body


def _dumps(body: Json, ascii_only: bool) -> bytes:
    try:
        return json.dumps(body, ensure_ascii=ascii_only).encode("utf-8")
    except RecursionError:  # deeper than Python's encoder goes: write the brackets by hand
        return b"[" * 6000 + b"]" * 6000
    except UnicodeEncodeError:  # a lone surrogate: only its \\u escape is valid
        return json.dumps(body, ensure_ascii=True).encode("ascii")


@st.composite
def raw_bodies(draw: st.DrawFn, bodies: st.SearchStrategy[Json]) -> bytes:
    """Bytes on the wire: JSON (escaped or raw UTF-8), sometimes with bytes that are not
    UTF-8 spliced in, cut short, or not JSON at all."""
    raw = _dumps(draw(bodies), ascii_only=draw(st.booleans()))
    how = draw(st.integers(0, 19))
    if how == 0:
        at = draw(st.integers(0, len(raw)))
        bad = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"]))
        raw = raw[:at] + bad + raw[at:]
    elif how == 1:
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif how == 2:
        raw = draw(st.binary(max_size=200))
    return raw


def make_strategy(build: Callable[[], st.SearchStrategy[Json]]) -> st.SearchStrategy[bytes]:
    return raw_bodies(mutated(build()))
