"""Pydantic's validation errors told as an admin reads them: one line per bad key, naming the
key, the value and what is allowed (`replicate.wait_seconds: 90 is above 60`), with a "did you
mean" for a misspelt key."""

from __future__ import annotations

import difflib
import json
from typing import Any

from pydantic import BaseModel, ValidationError


def error_lines(exc: ValidationError, root: type[BaseModel]) -> list[str]:
    """One line per problem of `exc`, raised validating the model `root`; no repeats."""
    lines = [_line(e, root) for e in exc.errors() if not _is_union_noise(e)]
    return list(dict.fromkeys(lines))


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value if len(value) <= 80 else value[:77] + "...", ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return str(value)


def _bound(number: Any) -> str:
    """1.0 as 1, as the admin wrote it."""
    return str(int(number)) if isinstance(number, float) and number.is_integer() else str(number)


def _key(loc: tuple[Any, ...]) -> str:
    key = ""
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        elif part not in ("function-after", "literal", "constrained-str", "lax-or-strict"):
            key += f".{part}" if key else str(part)
    return key


_TEXTS = {
    "int_type": "{value} is not a whole number",
    "int_from_float": "{value} is not a whole number",
    "float_type": "{value} is not a number",
    "bool_type": "{value} is not true or false",
    "string_type": "{value} is not text (use quotes)",
    "list_type": "{value} is not a list (use [ ... ])",
    "model_type": "{value} is not a table",
    "model_attributes_type": "{value} is not a table",
    "missing": "is required",
    "extra_forbidden": "unknown key",
    "string_too_short": "must not be empty",
    "string_too_long": "{value} is too long",
}


def _line(error: Any, root: type[BaseModel]) -> str:
    loc, kind, ctx = tuple(error["loc"]), error["type"], error.get("ctx") or {}
    value = _shown(error.get("input"))
    if kind == "value_error":
        message = str(ctx.get("error", error["msg"]))
        return message if loc == () else f"{_key(loc)}: {message}"
    if kind == "extra_forbidden":
        known = _fields_at(root, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"{_key(loc)}: unknown key{hint}"
    if kind == "less_than_equal":
        text = f"{value} is above {_bound(ctx['le'])}"
    elif kind == "less_than":
        text = f"{value} must be below {_bound(ctx['lt'])}"
    elif kind == "greater_than_equal":
        text = f"{value} is below {_bound(ctx['ge'])}"
    elif kind == "greater_than":
        text = f"{value} must be above {_bound(ctx['gt'])}"
    elif kind == "literal_error":
        text = f"{value} is not one of {ctx.get('expected')}"
    elif kind in _TEXTS:
        text = _TEXTS[kind].format(value=value)
    else:
        text = f"{value}: {error['msg']}"
    return f"{_key(loc)}: {text}"


def _fields_at(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed where `loc` points (for a "did you mean")."""
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        annotation = field.annotation
        inner = getattr(annotation, "__args__", None)
        model = inner[0] if inner else annotation  # list[RoleQuota] -> RoleQuota
    return list(getattr(model, "model_fields", {}))


def _is_union_noise(error: Any) -> bool:
    # `daily: int | None` yields one error per member; the None branch says nothing useful
    return error["type"] == "none_required"
