"""The functional core: marker spec, tolerances, inputs (given and generated), model signature, dtypes, and the
check that ties them."""
