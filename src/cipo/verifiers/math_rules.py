"""What a careful grader adds to math-verify's equivalence (pure string and number work).

* Notation: Unicode vulgar fractions (``½``, ``2¾``), fullwidth digits and signs, the minus
  sign and superscript digits become ASCII/LaTeX; ``1e3`` / ``2.5E-2`` become
  ``1\\times 10^{3}``; repeating decimals ``0.\\overline{3}`` / ``1.2\\bar{34}`` become exact
  fractions (``normalize``).
* Integers of any length are compared as digit strings (``plain_integer``): exact and linear,
  where turning a string of more than 4300 digits into an ``int`` is refused by Python.
* Units (``unit_of``): math-verify drops them, so ``10 m`` equalled ``10 cm``. When *both* the
  gold and the answer end in a known unit (m, cm, kg, s, h, degrees, ...: ``UNITS``; a
  ``\\text{..}`` that names one, or a word after a number), they must be the same unit after
  synonyms and plurals (``10 centimeters`` = ``10 cm``); no conversion (``1 m`` is not
  ``100 cm`` here). A unit on one side only is accepted: the question may fix it.
* Decimals (``decimal_value`` and ``decimal_mismatch``): a finite decimal answer is right only
  when it *equals* the gold exactly: ``0.25`` for ``1/4``, ``2.50`` for ``2.5``. A gold with no
  finite decimal form (``1/3``, ``\\sqrt{2}``, ``\\pi``) is never matched by a decimal, however
  many digits it has (math-verify accepted ``1.41421356`` for ``\\sqrt{2}``).
"""

from __future__ import annotations

import re
import unicodedata
from fractions import Fraction

MAX_UNIT_TEXT = 200  # longer answers are not searched for a unit (keeps every regex here cheap)

# every digit run is entered at its start only ((?<!\d)): linear time on long runs of digits
_VULGAR = re.compile(r"(?<!\d)(\d*) ?([\u00bc-\u00be\u2150-\u215e])")
_SUPERSCRIPTS = str.maketrans({"\u00b2": "^{2}", "\u00b3": "^{3}", "\u00b9": "^{1}", "\u00b0": "^{\\circ}"})
_SYMBOLS = str.maketrans({"\u2212": "-", "\u00d7": "\\times ", "\u00f7": "\\div ", "\u00b7": "\\cdot "})
_SCIENTIFIC = re.compile(r"(?<![\w.\\])(\d+(?:\.\d+)?)[eE]([+-]?\d+)(?![\w.])")
_REPEATING = re.compile(r"(?<!\d)(\d*)\.(\d*)\\(?:overline|bar)\s*\{\s*(\d+)\s*\}")
_INTEGER = re.compile(r"[+-]?(?:\d+|\d{1,3}(?:,\d{3})+)")
_DECIMAL = re.compile(r"[+-]?\d*\.\d+")
_TEXT_UNIT = re.compile(
    r"(?:\\[,;:! ]|\s)*\\(?:text|mathrm|mbox|textrm|rm)\s*\{\s*([^{}]{1,40}?)\s*\}\s*(\^\s*\{?\s*[23]\s*\}?)?\s*$"
)
_WORD_UNIT = re.compile(
    r"(?<=[\d}])\s*((?:sq(?:uare)?\s+|cubic\s+)?[a-zA-Z]{1,12}(?:\s*/\s*[a-zA-Z]{1,4})?)(\^\s*\{?\s*[23]\s*\}?)?\s*$"
)
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?\s*$")

UNITS: dict[str, tuple[str, ...]] = {
    "m": ("m", "meter", "metre", "mtr"),
    "cm": ("cm", "centimeter", "centimetre"),
    "mm": ("mm", "millimeter", "millimetre"),
    "km": ("km", "kilometer", "kilometre"),
    "in": ("in", "inch", "inches"),
    "ft": ("ft", "foot", "feet"),
    "yd": ("yd", "yard"),
    "mi": ("mi", "mile"),
    "g": ("g", "gm", "gram", "gramme"),
    "kg": ("kg", "kilogram"),
    "mg": ("mg", "milligram"),
    "lb": ("lb", "lbs", "pound"),
    "oz": ("oz", "ounce"),
    "s": ("s", "sec", "second"),
    "min": ("min", "minute"),
    "h": ("h", "hr", "hour"),
    "day": ("day",),
    "week": ("week", "wk"),
    "year": ("year", "yr"),
    "l": ("l", "liter", "litre", "lt"),
    "ml": ("ml", "milliliter", "millilitre"),
    "deg": ("deg", "degree", "°"),
    "rad": ("rad", "radian"),
    "mph": ("mph",),
    "km/h": ("km/h", "kmh", "kmph"),
    "m/s": ("m/s",),
}
_CANONICAL = {name: unit for unit, names in UNITS.items() for name in names}


def normalize(text: str) -> str:
    """The answer with the notations above turned into what math-verify reads."""
    text = _VULGAR.sub(_vulgar_fraction, text)
    text = "".join(_ascii(char) for char in text).translate(_SUPERSCRIPTS).translate(_SYMBOLS)
    text = _SCIENTIFIC.sub(r"\1\\times 10^{\2}", text)
    return _REPEATING.sub(_repeating_fraction, text)


def _ascii(char: str) -> str:
    """Fullwidth digits, letters and signs (U+FF01..FF5E) as ASCII; everything else as is."""
    return chr(ord(char) - 0xFEE0) if "\uff01" <= char <= "\uff5e" else char


def _vulgar_fraction(match: re.Match) -> str:
    whole, fraction = match.group(1), Fraction(unicodedata.numeric(match.group(2))).limit_denominator(10)
    value = int(whole or 0) + fraction
    return f"\\frac{{{value.numerator}}}{{{value.denominator}}}"


def _repeating_fraction(match: re.Match) -> str:
    whole, fixed, period = match.group(1) or "0", match.group(2), match.group(3)
    value = int(whole) + Fraction(int(fixed or "0"), 10 ** len(fixed))
    value += Fraction(int(period), 10 ** len(fixed) * (10 ** len(period) - 1))
    return f"\\frac{{{value.numerator}}}{{{value.denominator}}}"


def plain_integer(text: str) -> str | None:
    """``text`` as a canonical digit string (sign, no leading zeros, no thousands commas) when it
    is a plain integer, else None."""
    text = text.strip()
    if not _INTEGER.fullmatch(text):
        return None
    sign = "-" if text.startswith("-") else ""
    digits = text.lstrip("+-").replace(",", "").lstrip("0") or "0"
    return digits if digits == "0" else sign + digits


def unit_of(text: str) -> tuple[str, str | None]:
    """(the answer without its unit, the unit's canonical name or None when it has no known unit)."""
    text = text.strip()
    if len(text) > MAX_UNIT_TEXT:
        return text, None
    for pattern in (_TEXT_UNIT, _WORD_UNIT):
        match = pattern.search(text)
        if match:
            unit = _canonical(match.group(1), match.group(2))
            if unit is not None and text[: match.start()].strip():
                return text[: match.start()].strip(), unit
    match = _DEGREES.search(text)
    if match and text[: match.start()].strip():
        return text[: match.start()].strip(), "deg"
    return text, None


def _canonical(name: str, power: str | None) -> str | None:
    words = name.lower().replace("square", "sq").split()
    squared = words[:1] == ["sq"] or (power is not None and "2" in power)
    cubed = words[:1] == ["cubic"] or (power is not None and "3" in power)
    word = "".join(words[1:] if words[:1] in (["sq"], ["cubic"]) else words).rstrip(".")
    for candidate in (word, word[:-2] if word.endswith("es") else None, word[:-1] if word.endswith("s") else None):
        if candidate and candidate in _CANONICAL:
            unit = _CANONICAL[candidate]
            return unit + ("^2" if squared else "^3" if cubed else "")
    return None


def decimal_value(text: str) -> Fraction | None:
    """The exact value of a plain finite decimal (``-0.250``), else None."""
    text = text.strip()
    return Fraction(text) if _DECIMAL.fullmatch(text) else None


def decimal_mismatch(gold, decimal: Fraction, gold_text: str) -> str | None:
    """Why the decimal answer ``decimal`` is not the sympy value ``gold`` exactly, or None when it
    is (or when ``gold`` is not a plain number, where math-verify's verdict stands)."""
    exact = decimal_value(gold_text)
    if exact is None and getattr(gold, "is_Rational", False):
        exact = Fraction(int(gold.p), int(gold.q))
    if exact is not None:
        return None if exact == decimal else f"{decimal} is not exactly {gold_text[:60]}"
    if getattr(gold, "is_number", False) and gold.is_rational is False:
        return f"a decimal is not the exact value {gold_text[:60]}; give it exactly"
    return None
