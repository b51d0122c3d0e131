"""Numbers as text (pytest_trt/comparison/report.py): each form, pinned, since messages and reports quote them."""
import math

import pytest

from pytest_trt.comparison.report import budget_text, column, number, plain, share_text, short


@pytest.mark.parametrize("formatter, value, text", [
    (number, None, "-"), (number, 0.000123456789, "0.000123457"), (number, 999999.0, "999999"),
    (number, 1234567.0, "1.2346e+06"), (number, math.inf, "inf"), (number, math.nan, "nan"),
    (short, 0.000123456789, "0.000123"), (short, 12.5, "12.5"),
    (column, None, "-"), (column, 0.0, "0"), (column, 0.000123456, "1.23e-04"), (column, math.inf, "inf"),
    (plain, None, "-"), (plain, 1234567.0, "1.23457e+06"), (plain, 3, 3), (plain, math.inf, "inf"),
    (budget_text, None, "-"), (budget_text, 0.5049, "50%"), (budget_text, 1.004, "100%"), (budget_text, math.inf, "inf"),
    (share_text, 1.004, "100.4%"), (share_text, 1.0000001, "100.00001%"), (share_text, 12.0, "1200%"),
    (share_text, math.inf, "inf"),
])
def test_each_form(formatter, value, text):
    assert formatter(value) == text


def test_a_budget_that_is_not_a_number_reads_as_asked():
    """Drift sentences read budgets from a golden's sidecar, which may lack one: '?' there, '-' in the table."""
    assert budget_text(None, "?") == budget_text("x", "?") == "?"
    assert budget_text(None) == "-"
