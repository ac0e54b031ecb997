"""Check what we send and parse against the platforms' published specs in ../shared/specs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator, ValidationError, validators

SPECS = Path(__file__).resolve().parents[3] / "shared" / "specs"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"platform spec not found at {path} (../shared is absent)")
    return path


@cache
def _openapi(name: str) -> dict[str, Any]:
    text = _require(SPECS / "line-openapi" / name).read_text(encoding="utf-8")
    doc: dict[str, Any] = yaml.safe_load(text)
    return doc


def _openapi_validator() -> type[Draft7Validator]:
    """Draft 7 plus OpenAPI's `discriminator`: an object is checked against the schema its
    `type` maps to. Subtypes refer back to the base (allOf), so a guard stops the loop."""
    active: set[tuple[str, int]] = set()

    def discriminator(
        validator: Any, disc: dict[str, Any], instance: Any, schema: dict[str, Any]
    ) -> Iterator[ValidationError]:
        if not isinstance(instance, dict):
            return
        prop = disc["propertyName"]
        target = disc.get("mapping", {}).get(instance.get(prop))
        if target is None:
            yield ValidationError(f"{prop}={instance.get(prop)!r} is not in the spec's mapping")
            return
        key = (target, id(instance))
        if key in active:
            return
        active.add(key)
        try:
            yield from validator.descend(instance, {"$ref": target})
        finally:
            active.discard(key)

    return validators.extend(Draft7Validator, {"discriminator": discriminator})


def openapi_errors(spec: str, schema: str, instance: Any) -> list[str]:
    """Every way `instance` breaks components/schemas/<schema> of the LINE spec file `spec`."""
    doc = _openapi(spec)
    root = {"components": doc["components"], "allOf": [{"$ref": f"#/components/schemas/{schema}"}]}
    validator = _openapi_validator()(root)
    errors = validator.iter_errors(instance)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


def line_request_schema(path: str, method: str = "post") -> str:
    """The schema name of a Messaging API request body, read from the spec's paths."""
    op = _openapi("messaging-api.yml")["paths"][path][method]
    ref: str = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[-1]


def line_path_exists(path: str, method: str) -> bool:
    paths = _openapi("messaging-api.yml")["paths"]
    return path in paths and method.lower() in paths[path]


@cache
def telegram_api() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        _require(SPECS / "telegram-bot-api" / "api.json").read_text(encoding="utf-8")
    )
    return data


def telegram_errors(method: str, fields: dict[str, Any]) -> list[str]:
    """A Bot API call checked against api.json: the method exists, every field is one of its
    parameters, every required one is there; inline keyboards are checked button by button."""
    methods = telegram_api()["methods"]
    if method not in methods:
        return [f"unknown Bot API method {method}"]
    params = {f["name"]: f for f in methods[method].get("fields", [])}
    problems = [f"{method}: unknown field {k}" for k in fields if k not in params]
    required = [k for k, f in params.items() if f["required"]]
    problems += [f"{method}: missing required {k}" for k in required if k not in fields]
    markup = fields.get("reply_markup")
    if isinstance(markup, str):
        markup = json.loads(markup)
    if isinstance(markup, dict) and "inline_keyboard" in markup:
        button = {f["name"] for f in telegram_api()["types"]["InlineKeyboardButton"]["fields"]}
        for row in markup["inline_keyboard"]:
            for b in row:
                problems += [f"InlineKeyboardButton: unknown {k}" for k in b if k not in button]
                data = b.get("callback_data")
                if data is not None and not 1 <= len(data.encode("utf-8")) <= 64:
                    problems.append(f"callback_data of {len(data.encode())} bytes (1-64 allowed)")
    return problems
