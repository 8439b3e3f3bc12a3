import json
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seal_lightning.arc.augmentations import FAMILIES
from seal_lightning.arc.config import ArcConfig, ToolCallConfig
from seal_lightning.arc.toolcall import (
    MAX_SELFEDIT_CHARS,
    ChoiceLimits,
    ParsedSelfEdit,
    TTTChoice,
    _ToolCall,
    configured_choice,
    first_object,
    parse_selfedit,
)
from seal_lightning.errors import ConfigError

LIMITS = ChoiceLimits.from_config(ArcConfig())
DEFAULT = TTTChoice(("basic",), 5e-4, 2, "outputs")
KEYS = ["augmentations", "learning_rate", "epochs", "loss"]
WORDS = ["basic", "size", "chain", "repeat", "all", "outputs", "colour", ""]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(10**400), 10**400),
    st.floats(),
    st.sampled_from([1e-3, 0.0, -0.0, 1e-300, 1e300, 5.0]),
    st.text(max_size=10),
    st.sampled_from(WORDS),
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=25,
)
plausible = st.fixed_dictionaries(
    {},
    optional={
        "augmentations": st.lists(st.sampled_from(WORDS), max_size=6) | json_values,
        "learning_rate": st.floats() | st.integers() | json_values,
        "epochs": st.integers(-5, 10**6) | st.integers() | json_values,
        "loss": st.sampled_from(WORDS) | json_values,
    },
)


def wrap(draw_text):
    """Prose and code fences around a JSON text, the way a model writes tool calls."""
    return st.tuples(st.text(max_size=20), draw_text, st.text(max_size=20), st.booleans()).map(
        lambda t: f"{t[0]}\n```json\n{t[1]}\n```\n{t[2]}" if t[3] else f"{t[0]}{t[1]}{t[2]}"
    )


adversarial = st.one_of(
    st.text(),
    st.text(st.characters(codec="utf-8") | st.characters(categories=["Cs"])),  # lone surrogates too
    st.from_regex(r'\{"(augmentations|learning_rate|epochs|loss|x)": ?[-+0-9eE.\[\]"a-z, {}nulltrue]{0,30}\}'),
    wrap(json_values.map(json.dumps)),
    wrap(plausible.map(json.dumps)),
    st.integers(1, 9000).map(lambda n: '{"epochs": 1' + "0" * n + "}"),
    st.integers(1, 5000).map(lambda n: '{"augmentations": ' + "[" * n + "}"),
    st.integers(1, 3000).map(lambda n: '{"loss": ' + '{"a": ' * n + "1" + "}" * n + "}"),
    st.sampled_from(["1e999", "-1e999", "NaN", "Infinity", "1" + "0" * 400, "true", '"3"', "null", "[]", "{}"]).map(
        lambda v: '{"learning_rate": ' + v + "}"
    ),
    st.integers(MAX_SELFEDIT_CHARS - 5, MAX_SELFEDIT_CHARS * 3).map(lambda n: "{" + " " * n + "}"),
    st.sampled_from(['{"loss": "\\ud800"}', '{"loss": "outputs\\u0000"}', "{\x00}", "}{", "{{}}", '{"a":1}}{']),
)


@settings(max_examples=3000, deadline=None)
@given(adversarial)
def test_parse_selfedit_never_raises_and_respects_limits(text):
    parsed = parse_selfedit(text, DEFAULT, LIMITS)
    assert (parsed.choice is None) != (parsed.error is None)
    if parsed.choice is None:
        assert parsed.notes == ()
        assert len(parsed.error.splitlines()) == 1 and len(parsed.error) <= 200
        return
    choice = parsed.choice
    assert type(choice.learning_rate) is float and LIMITS.min_lr <= choice.learning_rate <= LIMITS.max_lr
    assert type(choice.epochs) is int and 1 <= choice.epochs <= LIMITS.max_epochs
    assert choice.loss in ("all", "outputs")
    assert choice.augmentations == tuple(f for f in FAMILIES if f in choice.augmentations)
    assert parse_selfedit(choice.to_json(), DEFAULT, LIMITS) == ParsedSelfEdit(choice, None)


def test_families_of_the_schema_are_the_augmentation_families():
    (families,) = get_args(get_args(_ToolCall.model_fields["augmentations"].annotation)[0])
    assert get_args(families) == tuple(FAMILIES)


def test_fenced_json_in_prose_is_a_choice():
    text = 'I will use:\n```json\n{"augmentations": ["size", "basic", "size"], "learning_rate": 0.001, '
    text += '"epochs": 3, "loss": "all"}\n```\nThat should work.'
    parsed = parse_selfedit(text, DEFAULT, LIMITS)
    assert parsed.choice == TTTChoice(("basic", "size"), 1e-3, 3, "all")
    assert parsed.error is None and parsed.notes == ()


def test_missing_keys_take_the_defaults():
    assert parse_selfedit('{"epochs": 4}', DEFAULT, LIMITS).choice == TTTChoice(("basic",), 5e-4, 4, "outputs")
    assert parse_selfedit("{}", DEFAULT, LIMITS).choice == DEFAULT
    assert parse_selfedit('{"augmentations": []}', DEFAULT, LIMITS).choice.augmentations == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no braces at all", "no JSON object"),
        ("} backwards {", "no JSON object"),
        ('{"epochs": 2, "seed": 1}', "seed: Extra inputs are not permitted"),
        ('{"epochs": "3"}', "epochs: Input should be a valid integer"),
        ('{"epochs": 2.0}', "epochs: Input should be a valid integer"),
        ('{"epochs": true}', "epochs: Input should be a valid integer"),
        ('{"learning_rate": true}', "learning_rate: Input should be a valid number"),
        ('{"learning_rate": "1e-3"}', "learning_rate: Input should be a valid number"),
        ('{"learning_rate": 1e999}', "learning_rate: Input should be a finite number"),
        ('{"learning_rate": NaN}', "learning_rate"),
        ('{"augmentations": ["basic", "colour"]}', "augmentations.1: Input should be 'basic', 'size'"),
        ('{"augmentations": "basic"}', "augmentations: Input should be a valid array"),
        ('{"loss": "inputs"}', "loss: Input should be 'all' or 'outputs'"),
        ('{"loss": null}', "loss: may not be null"),
        ('{"learning_rate": 0}', "learning_rate must be positive, got 0.0"),
        ('{"learning_rate": -1e-3}', "learning_rate must be positive"),
        ('{"epochs": 0}', "epochs must be at least 1, got 0"),
        ('{"epochs": -' + "9" * 400 + "}", "epochs must be at least 1, got <an integer of 1329 bits>"),
        ('{"epochs": 2', "no JSON object"),
        ('{"epochs": 2,}', "Invalid JSON"),
        ("[" * 10 + "{" + "]" * 10 + "}", "Invalid JSON"),
        ('{"augmentations": ' + "[" * 1000 + "]" * 1000 + "}", "recursion limit exceeded"),
        ('{"augmentations": ' + "[" * 1000 + "}", "no JSON object"),
        ("{" + " " * MAX_SELFEDIT_CHARS + "}", f"self-edit longer than {MAX_SELFEDIT_CHARS} characters"),
    ],
)
def test_rejected_selfedits_say_why(text, message):
    parsed = parse_selfedit(text, DEFAULT, LIMITS)
    assert parsed.choice is None
    assert message in parsed.error


@pytest.mark.parametrize(
    ("text", "field", "value", "note"),
    [
        ('{"learning_rate": 5}', "learning_rate", 1e-2, "learning_rate 5.0 clamped to 0.01"),
        ('{"learning_rate": 1e-9}', "learning_rate", 1e-5, "learning_rate 1e-09 clamped to 1e-05"),
        ('{"epochs": 100}', "epochs", 5, "epochs 100 clamped to 5"),
        ('{"epochs": ' + "9" * 400 + "}", "epochs", 5, "epochs <an integer of 1329 bits> clamped to 5"),
    ],
)
def test_out_of_range_values_are_clamped_with_a_note(text, field, value, note):
    parsed = parse_selfedit(text, DEFAULT, LIMITS)
    assert getattr(parsed.choice, field) == value
    assert parsed.notes == (note,)


def test_clamps_are_all_noted():
    parsed = parse_selfedit('{"learning_rate": 1.0, "epochs": 9}', DEFAULT, LIMITS)
    assert parsed.notes == ("learning_rate 1.0 clamped to 0.01", "epochs 9 clamped to 5")


def test_config_choices_parse():
    arc = ArcConfig()
    assert configured_choice(arc.standard, LIMITS) == DEFAULT
    oracle = [configured_choice(choice, LIMITS) for choice in arc.oracle]
    assert oracle[0].augmentations == () and oracle[3].augmentations == ("basic", "size", "repeat")


@pytest.mark.parametrize(
    ("choice", "message"),
    [
        (ToolCallConfig(loss="none"), "loss: Input should be 'all' or 'outputs'"),
        (ToolCallConfig(augmentations=["flip"]), "augmentations.0: Input should be"),
        (ToolCallConfig(learning_rate=0.0), "learning_rate must be positive"),
        (ToolCallConfig(epochs=9), "epochs 9 clamped to 5"),
    ],
)
def test_a_configured_choice_out_of_bounds_is_a_config_error(choice, message):
    with pytest.raises(ConfigError, match=message):
        configured_choice(choice, LIMITS)


def test_to_json_is_canonical():
    choice = TTTChoice(("basic", "chain"), 1e-3, 2, "all")
    assert (
        choice.to_json() == '{"augmentations": ["basic", "chain"], "learning_rate": 0.001, "epochs": 2, "loss": "all"}'
    )
    assert parse_selfedit(choice.to_json(), DEFAULT, LIMITS) == ParsedSelfEdit(choice, None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}\n{"b": 2}', '{"a": 1}'),
        ('say {"a": "}{", "b": [1, {"c": "\\"}"}]} and more }', '{"a": "}{", "b": [1, {"c": "\\"}"}]}'),
        ('{"a": [1, 2', None),
        ("no braces", None),
    ],
)
def test_first_object_is_the_first_balanced_object(text, expected):
    assert first_object(text) == expected


def test_text_after_the_json_object_is_ignored():
    parsed = parse_selfedit('{"augmentations": ["basic"]}\n{"epochs": 9}\nThanks!', DEFAULT, LIMITS)
    assert parsed.choice is not None and parsed.choice.epochs == DEFAULT.epochs
