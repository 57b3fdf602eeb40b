"""Independent references and measuring helpers shared by the tests and the benches (importable from the
repository root: `from references import animatediff_reference`). They compare the pack with the libraries'
own classes and functions (diffusers, torch, the original algorithms as published), never with its own code."""
