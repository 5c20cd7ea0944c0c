"""Properties of LightGBM explanations under the log target transform."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tsengine.models.lgbm import log_shares

finite = st.floats(-3.0, 3.0, allow_nan=False, allow_subnormal=False)


@given(
    st.integers(1, 6).flatmap(
        lambda k: st.tuples(
            arrays(np.float64, (5, k), elements=finite),
            arrays(np.float64, 5, elements=finite),
            arrays(np.float64, 5, elements=st.floats(1e-3, 1e4)),
        )
    )
)
def test_log_shares_add_up_to_the_prediction_and_keep_each_sign(
    case: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    parts, base, scale = case
    shares, base_units = log_shares(parts, base, scale)
    prediction = scale * np.expm1(base + parts.sum(axis=1))
    np.testing.assert_allclose(
        shares.sum(axis=1) + base_units, prediction, rtol=1e-9, atol=1e-9 * scale.max()
    )
    # every part keeps its sign: the shared weight scale * exp(b) * expm1(S) / S is positive
    assert np.all(np.sign(shares) == np.sign(parts))


def test_log_shares_of_parts_that_cancel_stay_finite() -> None:
    parts = np.array([[0.5, -0.5], [0.0, 0.0], [1e-12, 0.0]])
    shares, base_units = log_shares(parts, np.zeros(3), np.ones(3))
    assert np.isfinite(shares).all()
    np.testing.assert_allclose(shares[0], [0.5, -0.5])
    np.testing.assert_allclose(base_units, 0.0)
