"""Examples shipped with slotwise: the ad server and scenarios `slotwise demo` and `slotwise
simulate` run (packaged as slotwise.examples)."""
