"""The functional core: marker spec, tolerances, inputs, model signature, dtypes, and the check that ties them."""
