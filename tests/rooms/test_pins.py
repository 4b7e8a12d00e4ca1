import pytest

from confnode.errors import InvalidInput
from confnode.rooms.pins import validate_pin


@pytest.mark.parametrize("pin", ["0000", "1234", "0123456789", "123456789012"])
def test_four_to_twelve_ascii_digits_are_accepted_unchanged(pin: str) -> None:
    assert validate_pin(pin) == pin


@pytest.mark.parametrize(
    "pin",
    [
        "",
        "123",  # too short
        "1234567890123",  # 13 digits
        "12 34",
        " 1234",
        "1234\n",
        "12a4",
        "-1234",
        "\uff11\uff12\uff13\uff14",  # fullwidth digits: isdigit() is True, but no keypad sends them
        "\u0660\u0661\u0662\u0663",  # Arabic-Indic digits
        "12\u00b24",  # superscript two
        "none",  # Pexip's "no PIN" header value is not a PIN
    ],
)
def test_anything_else_is_refused(pin: str) -> None:
    with pytest.raises(InvalidInput):
        validate_pin(pin)


def test_the_error_never_echoes_the_pin() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_pin("98765432109876")
    assert "98765432109876" not in caught.value.message
    assert "98765432109876" not in repr(caught.value.details)


def test_non_strings_are_refused() -> None:
    with pytest.raises(InvalidInput):
        validate_pin(1234)  # type: ignore[arg-type]
