"""EasyAnimate V5.1's trajectory control video, re-implemented step by step from the official ComfyUI node
(aigc-apps/EasyAnimate comfyui/comfyui_nodes.py: gen_gaussian_heatmap and CreateTrajectoryBasedOnKJNodes), as the
parity reference: pixel loops and per-point float64 images, the way the official node computes them.

Input: the KJNodes Spline Editor `coord_str` strings the official workflow feeds it (a list of one string per spline
through AppendStringsToList, or one string), and the mask size. Output: float64 [frames, H, W, 3] in 0..1.
"""
import json

import cv2
import numpy as np


def official_heatmap(side=200):
    """gen_gaussian_heatmap: Gaussian of sigma 40 evaluated per pixel, times a filled circle, to uint8 peak 255."""
    disc = cv2.circle(np.zeros((side, side), np.float32), (side // 2, side // 2), side // 2 - 1, 1, -1)
    values = np.zeros((side, side), np.float32)
    for i in range(side):
        for j in range(side):
            values[i, j] = 1 / (2 * np.pi * (40 ** 2)) * np.exp(
                -1 / 2 * ((i - side / 2) ** 2 / (40 ** 2) + (j - side / 2) ** 2 / (40 ** 2)))
    values = values * disc
    return (values / np.max(values) * 255).astype(np.uint8)


def official_control_video(coordinates, mask_height, mask_width):
    """CreateTrajectoryBasedOnKJNodes.createtrajectory on `coordinates` (a list of strings or one string)."""
    if len(coordinates) < 10:
        splines = [json.loads(text.replace("'", '"')) for text in coordinates]
    else:
        splines = [json.loads(coordinates.replace("'", '"'))]
    heatmap = official_heatmap()
    reach = int(50 * ((mask_height * mask_width) / (1280 * 720)) ** (1 / 2))
    per_spline = []
    for spline in splines:
        frames = []
        for point in spline:
            image = np.zeros((mask_height, mask_width, 3))
            cx, cy = [point[key] for key in point]
            top, bottom = max(cy - reach, 0), min(cy + reach, mask_height - 1)
            left, right = max(cx - reach, 0), min(cx + reach, mask_width - 1)
            if right - left > 3 and bottom - top > 3:
                patch = cv2.resize(heatmap, (right - left, bottom - top))[:, :, None]
                image[top:bottom, left:right] = np.maximum(patch.copy(), image[top:bottom, left:right])
            frames.append(image[None] / 255)
        per_spline.append(np.concatenate(frames, axis=0))
    return np.max(np.array(per_spline), axis=0)

