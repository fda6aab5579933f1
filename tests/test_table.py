"""Text tables: columns line up on a terminal whatever the characters, and the layout is the
one operators' scripts and eyes already know (two-space gaps, a rule of dashes)."""

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from portalctl.core.table import display_width, plain_table, simple_table


def test_a_simple_table_has_a_header_a_rule_and_left_aligned_rows():
    text = simple_table([["ann", "active"], ["robert", ""]], ["username", "status"])
    assert text.split("\n") == [
        "username    status",
        "----------  --------",
        "ann         active",
        "robert",
    ]


def test_cells_are_trimmed_and_lines_end_without_spaces():
    assert plain_table([[" key ", "value "], ["longer key", ""]]) == "key         value\nlonger key"


def test_wide_characters_take_two_columns_and_combining_marks_none():
    assert display_width("日本") == 4 and display_width("e\u0301") == 1
    lines = simple_table([["日本", "x"], ["ab", "y"], ["e\u0301", "z"]], ["n", "m"]).split("\n")
    positions = {display_width(line[: line.rindex(" ") + 1]) for line in lines[2:]}
    assert positions == {6}  # the second column starts at the same place on every line


def _text_from(line: str, position: int) -> str | None:
    """What ``line`` shows from display column ``position`` on (None: no character starts there)."""
    width = 0
    for index, char in enumerate(line):
        if width == position:
            return line[index:]
        width += display_width(char)
    return "" if width <= position else None


cells = st.text(
    alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Mn")), max_size=12
).filter(lambda text: not text or not unicodedata.combining(text[0]))


@given(st.integers(1, 4).flatmap(lambda n: st.lists(st.lists(cells, min_size=n, max_size=n))))
def test_every_cell_starts_on_the_display_column_of_its_header(rows):
    headers = [f"c{index}" for index in range(len(rows[0]) if rows else 1)]
    lines = simple_table(rows, headers).split("\n")
    starts = [0]
    for dashes in lines[1].split("  ")[:-1]:
        starts.append(starts[-1] + len(dashes) + 2)
    assert [_text_from(lines[0], start)[:2] for start in starts] == [h[:2] for h in headers]
    for row, line in zip(rows, lines[2:]):
        for cell, start in zip(row, starts):
            shown = _text_from(line, start)
            assert shown is not None and shown.startswith(cell.strip()), (row, line)
