"""The shape of a room PIN.

Only the *shape* is checked here. Comparing a PIN with the room's host/guest PIN is the node's job
(it holds them hashed) and counting wrong guesses is ``pin_attempts``; the room itself only ever
learns the role the PIN granted.
"""

from __future__ import annotations

from confnode.errors import InvalidInput

# VDX booking templates hand out PINs in this range; Pexip itself would accept up to 20 digits.
PIN_MIN_DIGITS = 4
PIN_MAX_DIGITS = 12


def validate_pin(pin: str) -> str:
    """Return ``pin`` unchanged if it is 4 to 12 ASCII digits.

    ``str.isdigit`` alone would accept "²" or Arabic-Indic digits, which a SIP phone's DTMF keypad
    can never send and which would make two visually equal PINs compare unequal. The message never
    echoes the PIN: errors may be logged.
    """
    if not isinstance(pin, str):
        raise InvalidInput("A PIN must be a string of digits.")
    if not (pin.isascii() and pin.isdigit()):
        raise InvalidInput("A PIN may contain only the digits 0-9.")
    if not PIN_MIN_DIGITS <= len(pin) <= PIN_MAX_DIGITS:
        raise InvalidInput(
            f"A PIN must have {PIN_MIN_DIGITS} to {PIN_MAX_DIGITS} digits.",
            min_digits=PIN_MIN_DIGITS,
            max_digits=PIN_MAX_DIGITS,
        )
    return pin
