"""Requests checked against an API's own OpenAPI document (3.1, whose schemas are JSON Schema
2020-12): the loopback Discord and the local Replicate refuse, and record, any body, header or
query a real server would refuse. The documents are copies of shared/reference (see
tests/fakes/specs/README.md)."""

from __future__ import annotations

import gzip
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPECS = Path(__file__).with_name("specs")


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


class OpenAPI:
    def __init__(self, name: str, prefixes: tuple[str, ...] = ("",),
                 amend: dict[str, Any] | None = None) -> None:
        with gzip.open(SPECS / f"{name}.json.gz", "rt", encoding="utf-8") as fh:
            self.document: dict[str, Any] = json.load(fh)
        self.document["components"]["schemas"].update(amend or {})
        self.urn = f"urn:{name}"
        self.registry = Registry().with_resource(self.urn, Resource.from_contents(
            self.document, default_specification=DRAFT202012))
        self.prefixes = prefixes
        # literal paths before templated ones, so `/messages/@original` wins over `{id}`
        self.routes = sorted(
            ((re.compile("^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(t)) + "$"), t)
             for t in self.document["paths"]), key=lambda r: (r[1].count("{"), r[1]))

    def route(self, path: str) -> str | None:
        for prefix in self.prefixes:
            if prefix and path.startswith(prefix):
                path = path[len(prefix):]
                break
        return next((template for pattern, template in self.routes if pattern.match(path)),
                    None)

    @cache  # noqa: B019 (one instance per API, for the whole run)
    def _validator(self, *pointer: str) -> Draft202012Validator:
        return Draft202012Validator({"$ref": f"{self.urn}#/{_pointer(*pointer)}"},
                                    registry=self.registry, format_checker=FormatChecker())

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = self.document
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def problems(self, method: str, path: str, body: Any = None, *,
                 headers: dict[str, str] | None = None,
                 query: dict[str, str] | None = None) -> list[str]:
        """What the API's document says is wrong with this request (empty: nothing)."""
        template = self.route(path)
        if template is None:
            return [f"{method} {path}: no such route in the document"]
        operation = self.document["paths"][template].get(method.lower())
        if operation is None:
            return [f"{method} {template}: no such operation in the document"]
        found: list[str] = []
        for raw in operation.get("parameters", []):
            parameter = self._resolve(raw)
            where = {"header": headers, "query": query}.get(parameter["in"])
            if where is None:
                continue
            value = next((v for k, v in where.items() if k.lower() ==
                          parameter["name"].lower()), None)
            if value is None:
                if parameter.get("required"):
                    found.append(f"{parameter['in']} {parameter['name']} is required")
                continue
            schema = self._resolve(parameter.get("schema", {}))
            validator = Draft202012Validator(schema, format_checker=FormatChecker())
            found += [f"{parameter['in']} {parameter['name']}={value!r}: {e.message}"
                      for e in validator.iter_errors(_typed(value, schema))]
        content = (operation.get("requestBody") or {}).get("content", {})
        if body is not None and "application/json" in content:
            validator = self._validator("paths", template, method.lower(), "requestBody",
                                        "content", "application/json", "schema")
            found += [f"{'/'.join(map(str, e.absolute_path)) or 'body'}: {e.message[:300]}"
                      for e in validator.iter_errors(body)]
        elif body is not None and not content:
            found.append(f"{method} {template} takes no body")
        return found


def _typed(value: str, schema: dict[str, Any]) -> Any:
    """A header or query value as its schema types it."""
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
        if kind == "boolean":
            return {"true": True, "false": False}.get(value.lower(), value)
    except ValueError:
        pass
    return value


@cache
def discord() -> OpenAPI:
    # Discord takes a snowflake as a JSON number as well as a string (discord.py sends both:
    # `allowed_mentions.users`, `recipient_id`, a new attachment's index); its preview
    # document says string only. The one place the document and the service differ for us.
    snowflake = {"anyOf": [{"type": "string", "pattern": "^(0|[1-9][0-9]*)$"},
                           {"type": "integer", "minimum": 0}]}
    return OpenAPI("discord-openapi", ("/api/v10",), amend={"SnowflakeType": snowflake})


@cache
def replicate() -> OpenAPI:
    return OpenAPI("replicate-openapi", ("/replicate/v1", "/v1"))


@cache
def model_input(name: str = "flux-dev-lora") -> Draft202012Validator:
    """A model's input schema (`flux-dev-lora`, `real-esrgan`)."""
    schema = json.loads((SPECS / f"{name}-input.json").read_text())
    return Draft202012Validator(schema, format_checker=FormatChecker())
