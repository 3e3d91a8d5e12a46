"""The SMSMobileAPI connector: client, webhooks, fake server and example config.

Deliberately empty: the registry imports the modules it needs, only for types a config uses.
"""
