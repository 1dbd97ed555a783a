from slotwise.proxy.cli import entry

entry()
