from conversations.machine import Conv
from conversations.segments import format_variants, parse_variants, tags


def test_tags_name_source_variants_and_version() -> None:
    assert tags("ig", "cta:b,q3:a", "7") == ("s=ig", "x=cta:b", "x=q3:a", "v=7")
    assert tags() == ()


def test_variants_round_trip_sorted() -> None:
    assert format_variants({"q3": "a", "cta": "b"}) == "cta:b,q3:a"
    assert parse_variants("cta:b,q3:a") == {"cta": "b", "q3": "a"}
    assert parse_variants("") == {} and parse_variants("broken") == {}


def test_conv_keeps_variants_and_version() -> None:
    conv = Conv(state="asking", sid=2, q=3, answers="AB", var="cta:b", ver="3")
    back = Conv.from_json(conv.to_json())
    assert (back.var, back.ver) == ("cta:b", "3")
    assert '"var"' not in Conv().to_json()
