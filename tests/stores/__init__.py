"""Tests of the stores (ir/store/), one file per store, named after its URI scheme as
ir.store.STORES has it: test_s3.py (against the test bed's SeaweedFS, and moto for KMS), and
test_dir.py for the local directory a reference without a scheme names. test_every_store.py
fails for a store without its file."""
