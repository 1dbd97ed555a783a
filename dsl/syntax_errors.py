"""Friendly messages for typical syntax mistakes, beside the grammar they explain.

``EXAMPLES`` maps a message to wrong snippets that fail the way a marketer's file fails; Lark's
``UnexpectedInput.match_examples`` picks the message whose snippet stops the parser in the same
state on the same kind of token. Grow the table from real mistakes: add the snippet that
confused someone, with the sentence that would have helped.
"""

from __future__ import annotations

from lark import Lark

_H = 'policy "p" version 1\n'

EXAMPLES: dict[str, list[str]] = {
    "compare with `==`, not `=` (`=` is only for `given` in tests)": [
        _H + 'campaign c { rule "r" when device.type = "mobile" then pin s v }',
        _H + "segment s: user.age = 3",
        _H + 'campaign c { applies when ad.format = "json" }',
    ],
    'a rule reads: rule "name" when CONDITION then ACTION; the `then` is missing': [
        _H + 'campaign c { rule "r" when device.type == "mobile" pin s v }',
        _H + 'campaign c { rule "r" when device.type == "mobile" prefer s v }',
        _H + 'campaign c { rule "r" when device.type == "mobile" exclude s v }',
        _H + 'campaign c { rule "r" when user.is_new boost s v by 2 }',
    ],
    'a rule\'s name is a quoted string: rule "short copy" when ...': [
        _H + "campaign c { rule short when user.is_new then pin s v }",
    ],
    'a rule needs a condition: rule "name" when CONDITION then ...': [
        _H + 'campaign c { rule "r" then pin s v }',
    ],
    'write the value in double quotes: variant NAME "text or URL"': [
        _H + 'campaign c { slot s at "$.a" { variant v hello } }',
        _H + 'campaign c { slot s at "$.a" { variant v 12 } }',
    ],
    'a variant needs a name and a quoted value: variant NAME "value"': [
        _H + 'campaign c { slot s at "$.a" { variant "hello" } }',
    ],
    'write the slot\'s location in double quotes: slot NAME at "$.path"': [
        _H + "campaign c { slot s at headline { } }",
    ],
    'write the slot\'s location after `at`: slot NAME at "$.path" { ... }': [
        _H + 'campaign c { slot s "$.a" { } }',
        _H + "campaign c { slot s { } }",
    ],
    "percentages need a % sign: holdout 10%, explore epsilon 5%": [
        _H + "campaign c { holdout 10 }",
        _H + "offers o { arms discount 10 }",
    ],
    "durations need a unit: s, m, h, d or w (7d, 24h, 30m)": [
        _H + 'campaign c { rule "r" when event purchase within 7 then pin s v }',
        _H + "trigger t { wait 1 }",
        _H + "trigger t { window 7 }",
        _H + 'campaign c { rule "r" when count of click within 2 >= 3 then pin s v }',
    ],
    'lists are written in square brackets: in ["DE", "AT"]': [
        _H + 'campaign c { rule "r" when geo.country in ("DE", "AT") then pin s v }',
        _H + 'campaign c { rule "r" when geo.country in "DE" then pin s v }',
    ],
    "signals are written namespace.name (device.type, user.age); a bare name is a segment": [
        _H + 'campaign c { rule "r" when age > 3 then pin s v }',
        _H + 'campaign c { rule "r" when country == "DE" then pin s v }',
    ],
    "combine conditions with `and` / `or`, not && or ||": [
        _H + 'campaign c { rule "r" when user.is_new & user.age > 3 then pin s v }',
    ],
    "a block is not closed: add the missing `}`": [
        _H + 'campaign c { slot s at "$.a" { variant v "x" }',
        _H + "campaign c {",
    ],
    'a policy file starts with a header: policy "name" version 1': [
        "campaign c { }",
        "segment s: user.is_new",
        'policy "p"\ncampaign c { }',
        "policy p version 1\n",
    ],
    "a range is written low..high (inclusive), low..<high (half-open) or low.. (open)": [
        _H + 'campaign c { rule "r" when user.age in 18-24 then pin s v }',
        _H + 'campaign c { rule "r" when user.age between 18 and 24 then pin s v }',
    ],
    "actions are joined with `and`: then pin s a and exclude t b": [
        _H + 'campaign c { rule "r" when user.is_new then pin s a, exclude t b }',
    ],
    "pin names a slot and one variant: pin SLOT VARIANT": [
        _H + 'campaign c { rule "r" when user.is_new then pin s }',
        _H + 'campaign c { rule "r" when user.is_new then pin "s" "v" }',
    ],
}


_TERMINAL_WORDS = {
    "NAME": "a name",
    "SIGNAL": "a signal like device.type",
    "STRING": 'a "quoted string"',
    "NUMBER": "a number",
    "DURATION": "a duration like 7d",
    "CLOCK": "a time like 22:00",
    "COMPARE": "a comparison (==, !=, <, <=, >, >=)",
    "NOT": "`not`",
    "NEG": "`-`",
}


def describe_terminal(parser: Lark, name: str) -> str:
    """A terminal's name as a person reads it: `then`, a name, a "quoted string"..."""
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    try:
        pattern = parser.get_terminal(name).pattern
    except KeyError:
        return name.lower()
    return f"`{pattern.value}`" if pattern.type == "str" else name.lower()


_CHARACTER_HINTS = {
    "'": 'strings use double quotes: "like this"',
    "&": "combine conditions with `and`",
    "|": "combine conditions with `or`",
    "!": "write `not` or `!=`",
    ";": "statements need no `;`: put each on its own line",
    "/": "comments start with #",
}


def hint_for_character(char: str) -> str:
    if char in _CHARACTER_HINTS:
        return _CHARACTER_HINTS[char]
    if char.isupper():
        return "names and keywords are lower case (snake_case); put display text in quotes"
    return ""
