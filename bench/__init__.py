"""Benchmarks of smsbridge; figures go in the README."""
