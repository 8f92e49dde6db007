"""The test suite. A package, so that `tests.helpers` is this one even where another distribution
installed a top-level `tests` (OpenRLHF's wheel does)."""
