"""Durable state: the SQL store, its schema and its migrations."""
