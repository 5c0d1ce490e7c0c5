"""mgrun.size and mgrun.format_size: the one size rule of mgrun."""

import math

import pytest

import mgrun


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0", 0),
        ("1048576", 1048576),
        ("1.5G", 1610612736),
        ("2 GB", 2147483648),  # powers of 1024, as the seed
        ("2gib", 2147483648),
        ("512K", 524288),
        ("1T", 1 << 40),
        ("3B", 3),
        ("1.5 m", 1572864),
    ],
)
def test_parses(text, expected):
    assert mgrun.size(text) == expected


def test_ints_and_integral_floats_pass():
    assert mgrun.size(0) == 0
    assert mgrun.size(12345) == 12345
    assert mgrun.size(2.0**20) == 1 << 20
    assert mgrun.size(mgrun.SIZE_MAX) == (1 << 63) - 1


def test_percent_of_a_base_or_of_effective_memory():
    assert mgrun.size("50%", percent_of=1000) == 500
    eff = mgrun.effective_memory()
    assert mgrun.size("100%") == eff
    assert abs(mgrun.size("25%") - eff // 4) <= 1


@pytest.mark.parametrize(
    "bad, code",
    [("", "EPARSE"), ("-1", "EPARSE"), ("nan", "EPARSE"), ("inf", "EPARSE"), ("1e3", "EPARSE"),
     ("0x10", "EPARSE"), ("12 parsecs", "EPARSE"), ("1G trailing", "EPARSE"), ("99999999999E", "ERANGE_SIZE"),
     ("9223372036854775808", "ERANGE_SIZE"), ("1\0G", "EPARSE")],
)
def test_bad_sizes_quote_the_input_and_say_what_is_accepted(bad, code):
    with pytest.raises(mgrun.SizeError) as ei:
        mgrun.size(bad)
    e = ei.value
    assert isinstance(e, ValueError)
    assert e.code == code
    assert "expected a non-negative number of bytes" in str(e), str(e)
    if bad and "\0" not in bad:
        assert repr(bad)[1:-1] in str(e) or bad in str(e)


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), 1.5, -0.5, 1 << 63])
def test_bad_numbers(bad):
    with pytest.raises(mgrun.SizeError, match="^invalid size .*expected a (non-negative|finite)"):
        mgrun.size(bad)


@pytest.mark.parametrize("bad", [None, True, b"1G", [1], {}])
def test_wrong_types_are_type_errors(bad):
    with pytest.raises(TypeError, match="number of bytes or a string"):
        mgrun.size(bad)


def test_what_names_the_value():
    with pytest.raises(mgrun.SizeError, match="^max_total_size: "):
        mgrun.size("lots", what="max_total_size")


@pytest.mark.parametrize(
    "n, text",
    [(0, "0 B"), (512, "512 B"), (1024, "1.00 KiB"), (1610612736, "1.50 GiB"), ((1 << 63) - 1, "7.99 EiB")],
)
def test_format(n, text):
    assert mgrun.format_size(n) == text


def test_format_reads_back_within_a_hundredth():
    for n in (1, 1000, 123456789, 5 << 30, 17 << 40):
        back = mgrun.size(mgrun.format_size(n))
        unit = 1024 ** max(0, int(math.log(n, 1024))) if n >= 1024 else 1
        assert abs(back - n) <= unit / 100 + 1, (n, mgrun.format_size(n), back)


def test_format_accepts_sizes_and_refuses_garbage():
    assert mgrun.format_size("2G") == "2.00 GiB"
    with pytest.raises(mgrun.SizeError):
        mgrun.format_size("two")
