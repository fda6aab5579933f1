"""The one renderer, tested without a database."""

import csv
import io
import json
from datetime import UTC, datetime

from portalctl.core.render import escape_formula, render
from portalctl.core.tin import Tin

ACCOUNT = {
    "username": "johnsmith@gmail.com",
    "status": "active",
    "merged_into": None,
    "tins": [{"tin": Tin("836576879"), "role": "security_admin"}],
    "created_at": datetime(2026, 11, 22, 10, 30, tzinfo=UTC),
}


def test_json_listing_is_an_array_with_masked_tins():
    data = json.loads(render([ACCOUNT], "json"))
    assert data == [
        {
            "username": "johnsmith@gmail.com",
            "status": "active",
            "merged_into": None,
            "tins": [{"tin": "*****6879", "role": "security_admin"}],
            "created_at": "2026-11-22T10:30:00Z",
        }
    ]


def test_json_record_is_one_object_and_reveal_shows_digits():
    data = json.loads(render(ACCOUNT, "json", reveal=True))
    assert data["tins"][0]["tin"] == "836576879"


def test_table_and_csv_mask_tins():
    for fmt in ("table", "csv"):
        text = render([ACCOUNT], fmt)
        assert "*****6879 (security_admin)" in text
        assert "836576879" not in text


def test_csv_escapes_formulas_and_keeps_columns():
    rows = [{"a": "=HYPERLINK(1)", "b": "+1", "c": "-x", "d": "@cmd", "e": "plain"}]
    parsed = list(csv.reader(io.StringIO(render(rows, "csv"))))
    assert parsed == [["a", "b", "c", "d", "e"], ["'=HYPERLINK(1)", "'+1", "'-x", "'@cmd", "plain"]]
    assert escape_formula("safe") == "safe"


def test_table_of_nothing_says_so():
    assert render([], "table") == "(no rows)"


def test_columns_choose_and_order_fields():
    text = render([{"a": 1, "b": 2}], "csv", columns=["b", "a"])
    assert text.splitlines() == ["b,a", "2,1"]


def test_newlines_in_values_do_not_break_table_rows():
    text = render([{"name": "a\nb"}], "table")
    assert len(text.splitlines()) == 3


def test_a_long_table_streams_keeping_the_first_pages_widths():
    from portalctl.core.render import TABLE_PAGE, render_lines

    produced = 0

    def rows():
        nonlocal produced
        for n in range(TABLE_PAGE + 50):
            produced += 1
            yield {"user": f"u{n}", "tin": Tin("836576879"), "note": "x" * (30 if n == 1020 else 3)}

    lines = render_lines(rows(), "table")
    header, rule = next(lines), next(lines).rstrip("\n")
    first_page = [next(lines) for _ in range(TABLE_PAGE)]
    assert produced == TABLE_PAGE  # the first page is laid out before the rest is even read
    assert header.split() == ["user", "tin", "note"] and first_page[-1].startswith("u999 ")
    rest = list(lines)
    assert len(rest) == 50 and produced == TABLE_PAGE + 50
    widths = [len(dashes) for dashes in rule.split("  ")]
    ordinary = rest[0].rstrip("\n")
    assert ordinary == f"{'u1000':<{widths[0]}}  {'*****6879':<{widths[1]}}  xxx"
    assert rest[20].rstrip("\n").endswith("  " + "x" * 30)  # a wider cell pushes its line only
    assert rest[21].rstrip("\n") == f"{'u1021':<{widths[0]}}  {'*****6879':<{widths[1]}}  xxx"
