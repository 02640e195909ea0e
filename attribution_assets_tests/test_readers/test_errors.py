"""Reader errors name the file, the variable and what was expected, and survive pickling."""

from __future__ import annotations

import pickle

from attribution_assets.readers.errors import EmptyAOIError, ProductFormatError


def test_format_error_names_file_variable_and_expectation() -> None:
    err = ProductFormatError("/data/x.nc", "PRODUCT/qa_value", "variable present")
    assert isinstance(err, ValueError)
    assert str(err) == "/data/x.nc: variable 'PRODUCT/qa_value': expected variable present"
    again = pickle.loads(pickle.dumps(err))
    assert (again.path, again.variable, again.expected) == (err.path, err.variable, err.expected)


def test_empty_aoi_is_not_a_format_error() -> None:
    err = EmptyAOIError("/data/x.nc", (1, 2, 3, 4), "no pixel")
    assert not isinstance(err, ProductFormatError)
    assert "/data/x.nc" in str(err) and "(1.0, 2.0, 3.0, 4.0)" in str(err) and "no pixel" in str(err)
    assert pickle.loads(pickle.dumps(err)).bbox == (1.0, 2.0, 3.0, 4.0)
