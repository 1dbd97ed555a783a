"""Test harnesses slotwise ships for plugin authors (and uses in its own tests).

``slotwise.testing.provider`` builds requests and runs providers the way the proxy does;
``slotwise.testing.proxy`` runs the real proxy app in front of a fake upstream;
``slotwise.testing.pytest_plugin`` exposes both as pytest fixtures (registered as ``pytest11``).
This is the only place outside ``slotwise.proxy`` that may import the proxy.
"""
