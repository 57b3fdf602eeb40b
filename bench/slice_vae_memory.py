"""Old name of bench/peak_memory.py, kept for imports written before the move (tests/test_video_vae_memory.py)."""
from peak_memory import PeakMemory, peak_bytes  # noqa: F401
