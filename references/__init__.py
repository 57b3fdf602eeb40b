"""Independent references (official algorithms, library classes) and measuring helpers shared by tests and benches."""
