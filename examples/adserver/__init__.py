"""A small, realistic ad server to put behind slotwise (used by the demo, tests and benchmark)."""
