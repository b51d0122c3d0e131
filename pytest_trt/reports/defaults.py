"""The report thresholds a user can change, each written once, with nothing to import.

``plugin/options.py`` shows them as the defaults of their options; ``rows``, ``drift`` and ``suggestions`` use
them. Kept apart from those modules so that pytest's start (which reads the defaults) loads none of them.
"""
CLOSE_SHARE = 0.8      # a passing check that used more of its tolerance than this is "close to tolerance"
DRIFT_FACTOR = 2.0     # an error that grew by more than this since its golden was recorded is "drift"
SUGGEST_MARGIN = 1.5   # suggested tolerances are the tightest passing ones times this, rounded up
FLOOR_ULPS = 2.0       # ... and at least this many units of the precision's epsilon times max|expected|
