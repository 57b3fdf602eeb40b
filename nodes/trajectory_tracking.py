"""Tracking nodes (need OpenCV): trajectories copied from a video, and Tora's TrajError."""
from __future__ import annotations

from ..models import host
from .types import TRAJECTORY
from ..models.trajectory import formats
from ..models.trajectory import tracking

CATEGORY = "MotionKit/Trajectory"


def _lk_inputs():
    return {
        "window_size": ("INT", {"default": 21, "min": 5, "max": 101, "step": 2,
                                "tooltip": "Lucas-Kanade window in pixels (odd)."}),
        "pyramid_levels": ("INT", {"default": 3, "min": 0, "max": 8,
                                   "tooltip": "Image pyramid levels: more follow larger motions."}),
        "fb_threshold": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 100.0, "step": 0.05,
                                   "tooltip": "Forward-backward check: a point whose round trip misses by more "
                                              "pixels than this is marked lost."}),
    }


class MotionKitTrajectoriesFromVideo:
    DESCRIPTION = ("Tracks points through an image batch with OpenCV's pyramidal Lucas-Kanade and a forward-backward "
                   "check, to copy the motion of an existing clip. Lost points end their track (marked 'lost_at'); "
                   "nothing is invented.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The video frames to track through."}),
                "seed": (list(tracking.SEEDS), {"default": "corners", "tooltip": "Which points to track: a regular grid, "
                         "the strongest corners of the first frame, or the points given in seed_points."}),
                "grid_per_row": ("INT", {"default": 8, "min": 1, "max": 256, "tooltip": "Grid: points per row."}),
                "max_corners": ("INT", {"default": 16, "min": 1, "max": 1024, "tooltip": "Corners: how many."}),
                "seed_points": ("STRING", {"default": "", "multiline": True, "tooltip": "seed_points: [[x, y], ...] "
                                "in pixels of the video (any point-list format Load Trajectories reads)."}),
                **_lk_inputs(),
            }
        }

    RETURN_TYPES = (TRAJECTORY,)
    RETURN_NAMES = ("trajectories",)
    FUNCTION = "track"
    CATEGORY = CATEGORY

    def track(self, images, seed, grid_per_row, max_corners, seed_points, window_size, pyramid_levels, fb_threshold):
        points = formats.parse_points(seed_points, what="seed_points") if seed == "seed_points" else None
        result = tracking.tracks_from_video(images.cpu(), seed, grid_per_row, max_corners, points, window_size,
                                            pyramid_levels, fb_threshold, host.check_interrupt)
        return (result,)


class MotionKitTrajectoryError:
    DESCRIPTION = ("Tora's TrajError: re-tracks the start point of each requested track through a generated video "
                   "and reports the mean L2 distance (video pixels) to the requested positions, per frame and overall.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The generated video."}),
                "trajectories": (TRAJECTORY, {"tooltip": "The trajectories that were requested."}),
                **_lk_inputs(),
            }
        }

    RETURN_TYPES = ("FLOAT", "IMAGE", "STRING")
    RETURN_NAMES = ("traj_error", "plot", "per_frame")
    FUNCTION = "measure"
    CATEGORY = CATEGORY

    def measure(self, images, trajectories, window_size, pyramid_levels, fb_threshold):
        mean, per_frame, _tracked = tracking.trajectory_error(images.cpu(), trajectories, window_size, pyramid_levels,
                                                              fb_threshold)
        text = ", ".join("lost" if v != v else f"{v:.3f}" for v in per_frame.tolist())
        return (mean, tracking.plot_error(per_frame).to(host.intermediate_device()), text)


NODE_CLASS_MAPPINGS = {
    "MotionKitTrajectoriesFromVideo": MotionKitTrajectoriesFromVideo,
    "MotionKitTrajectoryError": MotionKitTrajectoryError,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "MotionKitTrajectoriesFromVideo": "Trajectories from Video (MotionKit)",
    "MotionKitTrajectoryError": "Trajectory Error (MotionKit)",
}
