"""Export nodes: trajectories as Wan ATI tracks, KJNodes spline coordinates (CogVideoXWrapper's Tora), control videos."""
from __future__ import annotations

from ..models import host
from ..models.trajectory import control_video, exports, resample
from . import types

CATEGORY = "MotionKit/Trajectory"
_SIZE = {"min": 1, "max": 8192, "step": 1}
_FROM_TRAJECTORIES = " 0: the frame count the trajectories carry (Draw Trajectories' num_frames, the tracked video's)."


class MotionKitTrajectoriesToWanTracks:
    DESCRIPTION = ("The tracks JSON core WanTrackToVideo (Wan 2.1 ATI) reads: each track's position at every video "
                   "frame, in video pixels, written at the samples WanTrackToVideo picks for that frame count. "
                   "Single-point tracks stay still.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "trajectories": (types.TRAJECTORY, {"tooltip": "Tracks; resampled to the frame count (arc length, timing kept)."}),
            "width": ("INT", dict(_SIZE, default=832, tooltip="Video width: WanTrackToVideo's width.")),
            "height": ("INT", dict(_SIZE, default=480, tooltip="Video height: WanTrackToVideo's height.")),
            "length": ("INT", {"default": 81, "min": 0, "max": 4096,
                               "tooltip": "Video frames: WanTrackToVideo's length (Wan: 4n + 1, e.g. 81)." + _FROM_TRAJECTORIES}),
        }}

    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("tracks",)
    FUNCTION = "export"
    CATEGORY = CATEGORY

    def export(self, trajectories, width, height, length):
        return (exports.wan_ati_tracks(trajectories, width, height, resample.frame_count(length, trajectories, "length")),)


class MotionKitTrajectoriesToSplineCoordinates:
    DESCRIPTION = ("The coordinate strings KJNodes' Spline Editor emits (coord_str: integer {x, y} per frame), which "
                   "CogVideoXWrapper's Tora nodes and EasyAnimate's trajectory node read. coord_str holds every track "
                   "(one list, or a list of lists); per_track is the list of one string per track that KJNodes' "
                   "Append Strings To List makes (CogVideoXWrapper reads up to 9 tracks that way).")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "trajectories": (types.TRAJECTORY, {"tooltip": "Tracks; resampled to the frame count (arc length, timing kept)."}),
            "width": ("INT", dict(_SIZE, default=720, tooltip="Canvas width: the Spline Editor's mask_width (the video width).")),
            "height": ("INT", dict(_SIZE, default=480, tooltip="Canvas height: the Spline Editor's mask_height.")),
            "num_frames": ("INT", {"default": 0, "min": 0, "max": 4096,
                                   "tooltip": "Points per track: the Spline Editor's points_to_sample (the frame count)."
                                              + _FROM_TRAJECTORIES}),
        }}

    RETURN_TYPES = ("STRING", "STRING")
    RETURN_NAMES = ("coord_str", "per_track")
    FUNCTION = "export"
    CATEGORY = CATEGORY

    def export(self, trajectories, width, height, num_frames):
        return exports.spline_coordinates(trajectories, width, height, resample.frame_count(num_frames, trajectories))


class MotionKitTrajectoriesToControlVideo:
    DESCRIPTION = ("A control video of shapes moving along the tracks, for control-video models (VACE, Wan Fun Control, "
                   "EasyAnimate control). easyanimate_v5.1 renders exactly what EasyAnimate's official V5.1 "
                   "trajectory-control workflow renders from its splines (grey Gaussian discs sized by the frame "
                   "area; shape, size and colours are then unused).")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "trajectories": (types.TRAJECTORY, {"tooltip": "Tracks; resampled to the frame count (arc length, timing kept)."}),
                "width": ("INT", dict(_SIZE, default=720, tooltip="Video width (taken from images when given).")),
                "height": ("INT", dict(_SIZE, default=480, tooltip="Video height (taken from images when given).")),
                "num_frames": ("INT", {"default": 0, "min": 0, "max": 4096,
                                       "tooltip": "Frames of the control video." + _FROM_TRAJECTORIES}),
                "mode": (list(control_video.MODES), {"default": "shapes", "tooltip": "shapes: your shape, size and "
                         "colours; easyanimate_v5.1: the official EasyAnimate trajectory-control rendering."}),
                "shape": (list(control_video.SHAPES), {"default": "circle", "tooltip": "The shape drawn at each position."}),
                "size": ("FLOAT", {"default": 16.0, "min": 0.5, "max": 2048.0, "step": 0.5,
                                   "tooltip": "Circle radius or half the square's side, in pixels."}),
                "colour": ("STRING", {"default": "#ffffff", "tooltip": "Shape colour: #rrggbb, rgb(r, g, b) or a name."}),
                "background": ("STRING", {"default": "#000000", "tooltip": "Background colour (unused when images are given)."}),
            },
            "optional": {
                "images": ("IMAGE", {"tooltip": "Frames to draw on instead of the background colour (the last one "
                                                "is held if the video is longer)."}),
            },
        }

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("control_video",)
    FUNCTION = "render"
    CATEGORY = CATEGORY

    def render(self, trajectories, width, height, num_frames, mode, shape, size, colour, background, images=None):
        video = control_video.trajectories_to_control_video(
            trajectories, width, height, resample.frame_count(num_frames, trajectories), mode, shape, size, colour, background,
            None if images is None else images.cpu(), host.check_interrupt)
        return (video.to(host.intermediate_device()),)


NODE_CLASS_MAPPINGS = {
    "MotionKitTrajectoriesToWanTracks": MotionKitTrajectoriesToWanTracks,
    "MotionKitTrajectoriesToSplineCoordinates": MotionKitTrajectoriesToSplineCoordinates,
    "MotionKitTrajectoriesToControlVideo": MotionKitTrajectoriesToControlVideo,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "MotionKitTrajectoriesToWanTracks": "Trajectories to Wan Tracks (MotionKit)",
    "MotionKitTrajectoriesToSplineCoordinates": "Trajectories to Spline Coordinates (MotionKit)",
    "MotionKitTrajectoriesToControlVideo": "Trajectories to Control Video (MotionKit)",
}
