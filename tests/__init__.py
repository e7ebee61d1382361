"""The test suite; its layout mirrors the package (tests/<sub-package>/test_<module>.py)."""
