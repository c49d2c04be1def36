import pytest

from app.summaries.redaction import redact, redact_run

CARD = "[card number removed]"

REMOVED = [
    # (id, text, marker expected, digits that must be gone)
    ("plain-luhn-valid", "my card is 4111111111111111 thanks", CARD, "4111111111111111"),
    ("plain-luhn-invalid", "my card is 4111111111111112 thanks", CARD, "4111111111111112"),
    ("spaced", "it's 4111 1111 1111 1111.", CARD, "1111 1111"),
    ("dashed", "card 5500-0000-0000-0004 expires soon", CARD, "0004"),
    ("amex-15", "amex 3782 822463 10005", CARD, "822463"),
    ("13-digits", "number 4222222222222 please", CARD, "4222222222222"),
    ("19-digits", "6011 0000 0000 0000 004", CARD, "6011"),
    ("comma-grouped", "4111, 1111, 1111, 1111", CARD, "1111"),
    ("dot-grouped", "card 4111.1111.1111.1111 thanks", CARD, "1111"),
    ("slash-grouped", "card 4111/1111/1111/1111 thanks", CARD, "1111"),
    ("underscore-grouped", "card 4111_1111_1111_1111 thanks", CARD, "1111"),
    ("en-dash-grouped", "card 4111\u20131111\u20131111\u20131111 thanks", CARD, "1111"),
    ("inside-reference", "ref ABC4111111111111111", CARD, "4111111111111111"),
    (
        "spoken-digits",
        "four one one one one one one one one one one one one one one one",
        CARD,
        "four one",
    ),
    ("spoken-double-oh", "five five oh oh, double oh oh oh, oh oh oh oh, oh oh oh four", CARD, "five"),
    ("spoken-triple", "four triple one, one one one one, one one one one, one one one one", CARD, "triple"),
    ("spoken-pairs", "forty one eleven, eleven eleven, eleven eleven, eleven eleven", CARD, "eleven"),
    ("spoken-mixed", "4111 one one one one 1111 1111", CARD, "4111"),
    ("over-19-digits", "12345678901234567890123", "[number removed]", "1234567890"),
    ("ssn-dashed", "my SSN is 123-45-6789", "[SSN removed]", "6789"),
    ("ssn-spaced", "it is 123 45 6789 okay", "[SSN removed]", "6789"),
    ("ssn-keyword-plain", "social security number is 123456789", "[SSN removed]", "123456789"),
    ("ssn-last-four", "the last four of my social are 6789", "[SSN removed]", "6789"),
    ("ni-number", "my NI number is AB 12 34 56 C", "[National Insurance number removed]", "12 34 56"),
    ("ni-compact-lower", "ni ab123456c", "[National Insurance number removed]", "123456"),
    ("iban-spaced", "IBAN GB82 WEST 1234 5698 7654 32 please", "[IBAN removed]", "5698"),
    ("iban-compact", "DE89370400440532013000", "[IBAN removed]", "0532013000"),
    ("sort-code-and-account", "20-00-00 55779911", "[sort code and account number removed]", "55779911"),
    ("sort-code-keyword", "sort code is 20 00 00", "[sort code removed]", "20 00 00"),
    ("sort-code-spoken", "sort code two oh, double oh, double oh", "[sort code removed]", "double"),
    ("uk-account", "account number 55779911", "[account number removed]", "55779911"),
    ("us-routing", "routing number 021000021", "[routing number removed]", "021000021"),
    ("us-account", "and my account is 000123456789", "[account number removed]", "123456789"),
    ("cvv", "the CVV is 123", "[security code removed]", "123"),
    ("security-code-spoken", "security code one two three", "[security code removed]", "one two"),
    ("cvc-four", "cvc: 1234", "[security code removed]", "1234"),
    ("pin", "my pin is 4321", "[PIN removed]", "4321"),
]


@pytest.mark.parametrize(
    ("text", "marker", "gone"), [case[1:] for case in REMOVED], ids=[case[0] for case in REMOVED]
)
def test_sensitive_numbers_are_removed(text, marker, gone):
    redacted = redact(text)
    assert marker in redacted
    assert gone not in redacted


KEPT = [
    ("e164-uk", "call me back on +447700900123"),
    ("e164-us-spaced", "my number is +1 415 555 0100"),
    ("e164-spoken", "plus four four seven seven oh oh nine oh oh one two three"),
    ("uk-national-phone", "ring 07700 900123 after six"),
    ("us-phone", "(415) 555-0100"),
    ("order-number", "order 12345678 has not arrived"),
    ("order-number-spoken", "order one two three four five six seven eight"),
    ("date-slash", "I paid on 12/03/2024"),
    ("date-iso", "since 2024-03-12 at 10:30"),
    ("amount", "they charged me $1,249.99 twice"),
    ("ordinary-speech", "oh I see, one moment, I have two kids and forty minutes"),
    ("year-after-account", "I have had the account since 2019"),
    ("short-account-mention", "my account was charged 45 pounds"),
    ("postcode", "SW1A 1AA"),
]


@pytest.mark.parametrize("text", [case[1] for case in KEPT], ids=[case[0] for case in KEPT])
def test_harmless_text_is_kept(text):
    assert redact(text) == text


def test_redaction_is_idempotent():
    text = "card 4111 1111 1111 1111, sort code 20-00-00, SSN 123-45-6789, IBAN GB82WEST12345698765432"
    once = redact(text)
    assert redact(once) == once
    assert not any(ch.isdigit() for ch in once)


def test_empty_text():
    assert redact("") == ""



def test_a_card_read_out_across_two_utterances_is_removed_from_both():
    previous, current = redact_run(["sure, it is 4111 1111", "1111 1111 and it expires in May"])
    assert previous == f"sure, it is {CARD}" and current == f"{CARD} and it expires in May"


def test_a_card_read_out_in_four_results_is_removed_from_every_one():
    said = ["ok the card is 4111", "1111", "one one one one", "1111 and it expires in May"]
    assert redact_run(said) == [f"ok the card is {CARD}", CARD, CARD, f"{CARD} and it expires in May"]
    # Read in pieces of three and more: still one number.
    assert redact_run(["4111 111", "1 1111", "11", "11"]) == [CARD, CARD, CARD, CARD]


def test_a_chain_ends_where_a_result_holds_more_than_digits():
    said = ["it is 4111", "1111 and my order is 2222", "3333"]
    assert redact_run(said) == said
    # A result that ends one chain may begin the next.
    assert redact_run(["5500 0000", "0000 0004 and the other is 4111 1111", "1111 1111"]) == [
        CARD, f"{CARD} and the other is {CARD}", CARD]


def test_two_short_numbers_in_a_row_are_not_a_card():
    assert redact_run(["my order is 4411", "and the amount 49 dollars"]) == [
        "my order is 4411", "and the amount 49 dollars"]
    assert redact_run(["call me on 020 7946 0018", "thanks"]) == ["call me on 020 7946 0018", "thanks"]


def test_dates_amounts_and_phone_numbers_with_dots_are_kept():
    for text in ("on 12.03.2026 I paid 49.99", "my number is 555.123.4567", "version 1.2.3"):
        assert redact(text) == text


def test_control_characters_never_hide_a_card_number():
    assert redact("my card is 4111\x001111\x1f1111\x7f1111 thanks") == "my card is [card number removed] thanks"
    assert redact("four one one one\x07 one one one one 1111\x0b1111") == "[card number removed]"
    assert redact("line one\r\nline two\ttab\x1b[2J") == "line one\nline two\ttab[2J"
