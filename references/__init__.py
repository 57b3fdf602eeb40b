"""Parity references and measuring helpers shared by the tests and the benches (one importable package)."""
