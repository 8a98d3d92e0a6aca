"""Catalogue LoRAs by name, their trigger words and scale."""

import pytest

from bot.catalogue import LoraChoice, add_trigger, resolve_lora
from bot.errors import OptionError

CATALOGUE = [LoraChoice(ref="alvdansen/frosting_lane_flux", name="frosting_lane",
                        trigger="frstingln illustration", scale=0.9)]


def test_a_name_resolves_to_its_entry():
    assert resolve_lora(" Frosting_Lane ", CATALOGUE) == CATALOGUE[0]


def test_a_raw_reference_is_checked():
    assert resolve_lora("owner/name", CATALOGUE).ref == "owner/name"
    with pytest.raises(OptionError):
        resolve_lora("not a lora", CATALOGUE)


def test_custom_loras_can_be_turned_off():
    with pytest.raises(OptionError) as caught:
        resolve_lora("owner/name", CATALOGUE, allow_custom=False)
    assert caught.value.key == "lora.catalogue_only"
    assert resolve_lora("frosting_lane", CATALOGUE, allow_custom=False) == CATALOGUE[0]


def test_trigger_words_are_added_once():
    assert add_trigger("a castle", "frstingln illustration") == \
        "a castle, frstingln illustration"
    assert add_trigger("a Frstingln Illustration castle", "frstingln illustration") == \
        "a Frstingln Illustration castle"
    assert add_trigger("a castle", "") == "a castle"
