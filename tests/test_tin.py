"""The TIN value type: accepted spellings, rejection of everything else, masking."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portalctl.core.errors import InvalidInput
from portalctl.core.tin import Tin, mask_tin

nine_digits = st.text(alphabet="0123456789", min_size=9, max_size=9).filter(
    lambda s: s != "000000000"
)


@given(nine_digits, st.sampled_from(["", " ", "  \t"]), st.sampled_from(["", " ", "\t "]))
def test_every_accepted_spelling_normalises_to_the_nine_digits(digits, before, after):
    spellings = [digits, f"{digits[:2]}-{digits[2:]}", f"{digits[:3]}-{digits[3:5]}-{digits[5:]}"]
    for spelling in spellings:
        assert Tin.parse(before + spelling + after).reveal() == digits


@given(nine_digits)
def test_str_repr_and_masked_never_show_more_than_the_last_four(digits):
    tin = Tin.parse(digits)
    for shown in (str(tin), repr(tin), tin.masked, f"{tin}"):
        assert digits not in shown
        assert "*****" + digits[-4:] in shown
        assert sum(ch.isdigit() for ch in shown) == 4
    assert str(tin) == "*****" + digits[-4:]


@given(st.text(alphabet="0123456789", min_size=0, max_size=20).filter(lambda s: len(s) != 9))
def test_other_lengths_are_invalid(digits):
    with pytest.raises(InvalidInput):
        Tin.parse(digits)


@given(st.text(min_size=1, max_size=15).filter(lambda s: not s.strip().replace("-", "").isdigit()))
def test_text_that_is_not_digits_is_invalid(text):
    with pytest.raises(InvalidInput):
        Tin.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        "06113753",
        "0611375310",
        "06113753A",
        "000000000",
        "00-0000000",
        "0611-37531",
        "06-113-7531",
        "061 13 7531",
        "٠٦١١٣٧٥٣١",
        "06–1137531",
        "",
    ],
)
def test_examples_of_invalid_tins(text):
    with pytest.raises(InvalidInput) as caught:
        Tin.parse(text)
    assert "invalid TIN" in caught.value.message
    if len(text) > 4 and text.strip("0-"):
        assert text[:-4] not in caught.value.message.replace("*", "")


def test_mask_shows_last_four():
    assert mask_tin("061137531") == "*****7531"
    assert str(Tin.parse("061-13-7531")) == "*****7531"
