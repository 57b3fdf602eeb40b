"""Trajectories for Tora: the TRAJECTORY data, text formats, resampling, the flow front end, previews and tracking.

Importable without ComfyUI; `tracking.py` needs OpenCV and is imported only by the tracking nodes.
"""
