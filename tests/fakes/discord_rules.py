"""What Discord refuses beyond its OpenAPI document (shared/reference/discord-notes.md §1 and
Discord's docs): component and form limits, unique custom ids, empty messages, 0-byte files,
embed totals, a callback type that does not fit the interaction. Pure functions: a payload in,
the problems out."""

from __future__ import annotations

from typing import Any

BUTTON, SELECT, TEXT_INPUT, ACTION_ROW = 2, 3, 4, 1
# callback types each interaction type takes (ping 1, command 2, component 3, autocomplete 4,
# modal submit 5)
CALLBACKS = {2: {4, 5, 9}, 3: {4, 5, 6, 7, 9}, 4: {8}, 5: {4, 5, 6, 7}}


def components(rows: list[dict[str, Any]] | None, *, modal: bool = False) -> list[str]:
    found: list[str] = []
    rows = rows or []
    if len(rows) > 5:
        found.append(f"{len(rows)} rows of components; at most 5")
    ids: list[str] = []
    for row in rows:
        if row.get("type") != ACTION_ROW:
            found.append("a top-level component that is not an action row")
            continue
        children = row.get("components") or []
        if not children or len(children) > 5:
            found.append(f"an action row of {len(children)} components; 1 to 5")
        if modal and len(children) != 1:
            found.append("a form row must hold exactly one text input")
        for child in children:
            custom_id = child.get("custom_id")
            if custom_id is not None:
                ids.append(custom_id)
                if not 1 <= len(custom_id) <= 100:
                    found.append(f"custom_id of {len(custom_id)} characters; 1 to 100")
            elif child.get("type") != BUTTON or child.get("style") != 5:
                found.append("a component without a custom_id")
            kind = child.get("type")
            if kind == BUTTON:
                if len(child.get("label") or "") > 80:
                    found.append("a button label over 80 characters")
                if not child.get("label") and not child.get("emoji"):
                    found.append("a button with neither label nor emoji")
                if len(children) > 1 and any(c.get("type") == SELECT for c in children):
                    found.append("a select menu shares its row")
            elif kind == SELECT:
                options = child.get("options") or []
                if not 1 <= len(options) <= 25:
                    found.append(f"a select menu with {len(options)} options; 1 to 25")
                if any(len(o.get("label", "")) > 100 or len(o.get("value", "")) > 100
                       for o in options):
                    found.append("a select option over 100 characters")
                if len(child.get("placeholder") or "") > 150:
                    found.append("a select placeholder over 150 characters")
            elif kind == TEXT_INPUT:
                if not modal:
                    found.append("a text input outside a form")
                if not 1 <= len(child.get("label") or "") <= 45:
                    found.append("a text input label of 1 to 45 characters")
                if len(child.get("value") or "") > 4000:
                    found.append("a text input value over 4000 characters")
                if len(child.get("placeholder") or "") > 100:
                    found.append("a text input placeholder over 100 characters")
    if len(ids) != len(set(ids)):
        found.append("custom_ids are not unique")
    return found


def embeds(items: list[dict[str, Any]] | None) -> list[str]:
    found: list[str] = []
    total = 0
    for embed in items or []:
        fields = embed.get("fields") or []
        total += sum(len(str(embed.get(k) or "")) for k in ("title", "description"))
        total += len(((embed.get("footer") or {}).get("text")) or "")
        total += len(((embed.get("author") or {}).get("name")) or "")
        total += sum(len(f.get("name", "")) + len(f.get("value", "")) for f in fields)
        if len(embed.get("title") or "") > 256 or len(embed.get("description") or "") > 4096:
            found.append("an embed title or description over its limit")
        if len(fields) > 25 or any(len(f.get("name", "")) > 256 or
                                   len(f.get("value", "")) > 1024 for f in fields):
            found.append("embed fields over their limits")
        if any(not f.get("name") or not f.get("value") for f in fields):
            found.append("an embed field with an empty name or value")
    if total > 6000:
        found.append(f"embeds of {total} characters in all; at most 6000")
    if len(items or []) > 10:
        found.append("more than 10 embeds")
    return found


def message(body: dict[str, Any] | None, files: dict[str, tuple[str, bytes]], *,
            creating: bool) -> list[str]:
    """A message created (or edited) with `body` and `files`."""
    body = body or {}
    found = components(body.get("components")) + embeds(body.get("embeds"))
    if len(body.get("content") or "") > 2000:
        found.append("content over 2000 characters")
    if len(files) > 10:
        found.append("more than 10 files")
    if any(not data for _, data in files.values()):
        found.append("a 0-byte file")
    if creating and not (body.get("content") or body.get("embeds") or files or
                         body.get("components") or body.get("sticker_ids") or
                         body.get("poll")):
        found.append("an empty message")
    return found


def callback(interaction_type: int, body: dict[str, Any],
             files: dict[str, tuple[str, bytes]]) -> list[str]:
    """An interaction's answer: its type must fit the interaction, its data its type."""
    kind = body.get("type")
    if kind not in CALLBACKS.get(interaction_type, set()):
        return [f"callback type {kind} does not answer an interaction of type "
                f"{interaction_type}"]
    data = body.get("data") or {}
    if kind in (4, 7):
        return message(data, files, creating=kind == 4)
    if kind == 8:
        choices = data.get("choices") or []
        found = [] if len(choices) <= 25 else [f"{len(choices)} choices; at most 25"]
        return found + ["a choice name of 1 to 100 characters" for c in choices
                        if not 1 <= len(c.get("name", "")) <= 100]
    if kind == 9:
        found = components(data.get("components"), modal=True)
        if not 1 <= len(data.get("title") or "") <= 45:
            found.append("a form title of 1 to 45 characters")
        if not 1 <= len(data.get("components") or []) <= 5:
            found.append("a form of 1 to 5 inputs")
        return found
    return []
