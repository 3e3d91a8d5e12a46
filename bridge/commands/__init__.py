"""The operator commands (`status`, `conversations`, `send`), one module each; bridge/cli.py
only parses the command line and dispatches to them."""
