"""The loopback Discord refuses what Discord refuses (so no payload Discord would refuse can
pass the other tests): pure checks, a payload in, the problems out."""

from __future__ import annotations

import pytest

from tests.fakes import discord_rules, openapi


def button(custom_id: str, label: str = "Go") -> dict:
    return {"type": 2, "style": 2, "custom_id": custom_id, "label": label}


def row(*children: dict) -> dict:
    return {"type": 1, "components": list(children)}


@pytest.mark.parametrize(("rows", "problem"), [
    ([row(button("a"), button("a"))], "not unique"),
    ([row(button("x" * 101))], "1 to 100"),
    ([row(button(""))], "1 to 100"),
    ([row(*[button(str(n)) for n in range(6)])], "1 to 5"),
    ([row(button(str(n))) for n in range(6)], "at most 5"),
    ([row(button("a", "L" * 81))], "over 80"),
    ([row({"type": 3, "custom_id": "s", "options": []})], "1 to 25"),
    ([row({"type": 4, "custom_id": "t", "label": "x", "style": 1})], "outside a form"),
])
def test_components_out_of_limits(rows, problem):
    assert any(problem in p for p in discord_rules.components(rows))


def test_messages_that_are_empty_or_carry_empty_files():
    assert discord_rules.message({}, {}, creating=True) == ["an empty message"]
    assert discord_rules.message({}, {}, creating=False) == []  # an edit may change nothing
    assert "a 0-byte file" in discord_rules.message({"content": "x"}, {"files[0]": ("a", b"")},
                                                    creating=True)
    big = {"embeds": [{"title": "t", "description": "d" * 4000,
                       "fields": [{"name": "n", "value": "v" * 1000}] * 3}]}
    assert any("6000" in p for p in discord_rules.message(big, {}, creating=True))


@pytest.mark.parametrize(("interaction", "answer", "ok"), [
    (2, {"type": 4, "data": {"content": "hi"}}, True),
    (2, {"type": 6}, False),                       # an update answers a component only
    (3, {"type": 7, "data": {"content": "x"}}, True),
    (4, {"type": 8, "data": {"choices": []}}, True),
    (4, {"type": 4, "data": {"content": "x"}}, False),  # autocomplete takes choices only
    (5, {"type": 9, "data": {"title": "t", "custom_id": "c", "components": []}}, False),
    (2, {"type": 8, "data": {"choices": [{"name": "n", "value": "v"}] * 26}}, False),
])
def test_the_answer_must_fit_the_interaction(interaction, answer, ok):
    assert (discord_rules.callback(interaction, answer, {}) == []) is ok


def test_a_form_out_of_limits():
    form = {"type": 9, "data": {"title": "T" * 46, "custom_id": "f", "components": [
        row({"type": 4, "custom_id": "a", "label": "L" * 46, "style": 1})]}}
    problems = discord_rules.callback(2, form, {})
    assert any("title" in p for p in problems) and any("label" in p for p in problems)


def test_the_document_refuses_an_integer_bound_beyond_2_53():
    command = {"name": "mod", "description": "d", "options": [
        {"type": 4, "name": "job", "description": "j", "min_value": 1, "max_value": 2**62}]}
    assert openapi.discord().problems("PUT", "/api/v10/applications/1/commands", [command])
    command["options"][0]["max_value"] = 2**53 - 1
    assert not openapi.discord().problems("PUT", "/api/v10/applications/1/commands", [command])


def test_the_replicate_document_refuses_a_bad_prefer_header_and_extra_fields():
    api = openapi.replicate()
    body = {"version": "v", "input": {"prompt": "x"}}
    assert not api.problems("POST", "/v1/predictions", body, headers={"Prefer": "wait=60"})
    assert api.problems("POST", "/v1/predictions", body, headers={"Prefer": "wait=0"})
    assert api.problems("POST", "/v1/predictions", {**body, "model": "x"})
    assert api.problems("GET", "/v1/predictions", query={"created_after": "yesterday"})
    assert list(openapi.model_input().iter_errors({"prompt": "x", "lora_scale": 2}))
