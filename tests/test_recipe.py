"""Recipe overrides: multipliers, bounded multipliers, integer fields, unknown keys."""

from __future__ import annotations

import pytest

from doctor.playbook.recipe import RecipeError, apply_overrides, describe, validate_overrides

RECIPE = {
    "learning_rate": 1.0,
    "max_steps": 120,
    "lora": {"r": 8},
    "quantization": {"bnb_4bit_compute_dtype": "float16"},
}


def test_multiplier_bounded_multiplier_and_plain_values():
    out = apply_overrides(
        RECIPE,
        {
            "learning_rate": {"multiply": 0.1, "max": 2.0e-4},
            "max_steps": "x0.5",
            "r": "x2",
            "bnb_4bit_compute_dtype": "bfloat16",
        },
    )
    assert out["learning_rate"] == 2.0e-4  # 1.0 x 0.1 = 0.1, bounded to the usual maximum
    assert out["max_steps"] == 60 and isinstance(out["max_steps"], int)
    assert out["lora"]["r"] == 16 and isinstance(out["lora"]["r"], int)
    assert out["quantization"]["bnb_4bit_compute_dtype"] == "bfloat16"
    assert RECIPE["learning_rate"] == 1.0  # the recorded recipe is never modified
    assert apply_overrides({"learning_rate": 1e-3}, {"learning_rate": {"multiply": 0.1, "max": 2e-4}})[
        "learning_rate"
    ] == pytest.approx(1e-4)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"lernrate": 0.1}, "unknown recipe field 'lernrate'"),
        ({"learning_rate": "x-1"}, "not a multiplier"),
        ({"learning_rate": {"max": 1}}, "expected {multiply"),
        ({"learning_rate": {"multiply": "a lot"}}, "is not a number"),
        ({"lora.alpha": 3}, "unknown recipe field 'lora.alpha'"),
    ],
)
def test_bad_overrides_are_refused(overrides, message):
    with pytest.raises(RecipeError, match=message):
        validate_overrides(overrides)


def test_scaling_needs_a_recorded_number():
    with pytest.raises(RecipeError, match="needs a recorded number"):
        apply_overrides({}, {"learning_rate": "x0.5"})


def test_describe():
    assert describe({"multiply": 0.1, "max": 2e-4}) == "x0.1 (at most 0.0002)"
    assert describe("x0.5") == "x0.5"
