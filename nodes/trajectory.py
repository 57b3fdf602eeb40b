"""Trajectory nodes: draw, load, resample, preview and turn tracks into Tora's flow video."""
from __future__ import annotations

from ..models import host
from .types import TRAJECTORY
from ..models.trajectory import data as traj_data
from ..models.trajectory import flow as traj_flow
from ..models.trajectory import formats, preview, resample

CATEGORY = "MotionKit/Trajectory"
_SIZE = {"min": 2, "max": 8192, "step": 1}


def _frames_input(default: int, tooltip: str, least: int = 2):
    return ("INT", {"default": default, "min": least, "max": 4096, "tooltip": tooltip})


_FROM_TRAJECTORIES = " 0: the frame count the trajectories carry (Draw Trajectories' num_frames, the tracked video's)."


class MotionKitDrawTrajectories:
    DESCRIPTION = ("Draw object trajectories on the first frame, right in the node: click to add points to the "
                   "selected track or drag on empty canvas to draw a track freehand; drag points to move them, click "
                   "on a line to insert, right-click to delete. Per track: polyline or spline (tension), start and "
                   "end frame, easing; per point: its frame. The timeline plays every object's position at each "
                   "frame. The output carries width, height and num_frames, so downstream nodes can take them from "
                   "it. The drawing is kept in the workflow as versioned JSON (see the README).")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "width": ("INT", dict(_SIZE, default=720, tooltip="Canvas width in pixels: the video width.")),
                "height": ("INT", dict(_SIZE, default=480, tooltip="Canvas height in pixels: the video height.")),
                "num_frames": _frames_input(49, "Frames of the video (Tora: 49). The trajectories carry it: Resample "
                                                "Trajectories and Trajectories to Flow take it when set to 0."),
                "trajectory_data": ("STRING", {"default": "", "multiline": False,
                                               "tooltip": "The drawing as MotionKit trajectory JSON; written by the canvas."}),
            },
            "optional": {
                "reference_image": ("IMAGE", {"tooltip": "The first frame to draw on; its first image is shown under "
                                                         "the canvas after a run (or upload one in the node)."}),
            },
        }

    RETURN_TYPES = (TRAJECTORY,)
    RETURN_NAMES = ("trajectories",)
    FUNCTION = "draw"
    CATEGORY = CATEGORY

    def draw(self, width, height, num_frames, trajectory_data, reference_image=None):
        traj_data.validate_clip(width, height, num_frames)
        drawn = formats.parse_trajectories(trajectory_data, "motionkit_json", what="trajectory_data")
        result = traj_data.rescale(drawn, width, height)
        result.num_frames = num_frames
        ui = {}
        if reference_image is not None:
            name = preview.save_reference_image(reference_image, host.temp_directory())
            ui["reference"] = [{"filename": name, "subfolder": "", "type": "temp"}]
        return {"ui": ui, "result": (result,)}


class MotionKitLoadTrajectories:
    DESCRIPTION = ("Read trajectories from text: MotionKit JSON, KJNodes Spline Editor coordinates (one or several "
                   "splines), WanTrackToVideo (ATI) tracks JSON, or a plain list of points (Tora's .txt files use a "
                   "256x256 canvas).")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "text": ("STRING", {"default": "", "multiline": True,
                                    "tooltip": "The trajectories as text, in one of the formats listed in 'format'."}),
                "format": (list(formats.FORMATS), {"default": "auto",
                                                   "tooltip": "auto detects the format; choose one to get errors for that format."}),
                "canvas_width": ("INT", dict(_SIZE, default=720, tooltip="Canvas width the coordinates refer to "
                                                                         "(ignored for MotionKit JSON, which declares it).")),
                "canvas_height": ("INT", dict(_SIZE, default=480, tooltip="Canvas height the coordinates refer to "
                                                                          "(ignored for MotionKit JSON, which declares it).")),
            }
        }

    RETURN_TYPES = (TRAJECTORY, "STRING")
    RETURN_NAMES = ("trajectories", "json")
    FUNCTION = "load"
    CATEGORY = CATEGORY

    def load(self, text, format, canvas_width, canvas_height):
        loaded = formats.parse_trajectories(text, format, canvas_width, canvas_height, what="text")
        return (loaded, loaded.to_json())


class MotionKitResampleTrajectories:
    DESCRIPTION = ("One point per frame for every track. arc_length: constant speed along the drawn path, ends kept "
                   "(timed points are honoured). tora_official: exactly the official Tora point selection, which drops "
                   "the end of a path that has more points than frames. tora_app: Tora's gradio app (its 720x480 canvas "
                   "onto the 256x256 grid, then tora_official). A one-point track stays where it is.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "trajectories": (TRAJECTORY, {"tooltip": "Tracks to resample."}),
                "num_frames": _frames_input(0, "Frames of the video (Tora: 49)." + _FROM_TRAJECTORIES, least=0),
                "mode": (list(resample.MODES), {"default": "arc_length", "tooltip": "How points are chosen per frame."}),
                "out_of_frame": (list(resample.OUT_OF_FRAME), {"default": "clamp", "tooltip": "Points outside the canvas: "
                                                                "clamp to the edge (logged) or stop with an error."}),
            }
        }

    RETURN_TYPES = (TRAJECTORY,)
    RETURN_NAMES = ("trajectories",)
    FUNCTION = "resample"
    CATEGORY = CATEGORY

    def resample(self, trajectories, num_frames, mode, out_of_frame):
        frames = resample.frame_count(num_frames, trajectories)
        return (resample.resample(trajectories, frames, mode, out_of_frame),)


class MotionKitTrajectoriesToFlow:
    DESCRIPTION = ("Tora's trajectory front end: per-frame displacement at each object's pixel, smoothed with the "
                   "99x99 sigma-10 Gaussian and coloured with the Middlebury wheel (white = no motion). The IMAGE "
                   "video is what the motion VAE encodes.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "trajectories": (TRAJECTORY, {"tooltip": "Tracks; resampled here unless they already have one point per frame."}),
                "width": ("INT", dict(_SIZE, min=0, default=0, tooltip="Video width in pixels; 0: the trajectories' canvas width.")),
                "height": ("INT", dict(_SIZE, min=0, default=0, tooltip="Video height in pixels; 0: the trajectories' canvas height.")),
                "num_frames": _frames_input(0, "Frames of the flow video (Tora: 49)." + _FROM_TRAJECTORIES, least=0),
                "resample_mode": (list(resample.MODES), {"default": "arc_length",
                                                         "tooltip": "arc_length: used when the tracks are not yet one point per frame. tora_official (Tora's "
                                                                    "CLI and .txt files) and tora_app (drawings from Tora's 720x480 app): "
                                                                    "always applied, as the official code."}),
                "normalize": (list(traj_flow.NORMALIZATIONS), {"default": "global", "tooltip": "global: one maximum "
                              "for the whole video (Tora's inference); per_frame: each frame by its own maximum."}),
            }
        }

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("flow_video",)
    FUNCTION = "flow"
    CATEGORY = CATEGORY

    def flow(self, trajectories, width, height, num_frames, resample_mode, normalize):
        num_frames = resample.frame_count(num_frames, trajectories)
        width, height = width or trajectories.width, height or trajectories.height
        if resample_mode != "arc_length" or not (trajectories.per_frame() and trajectories.num_frames == num_frames):
            trajectories = resample.resample(trajectories, num_frames, resample_mode, "clamp")
        video = traj_flow.trajectories_to_flow_video(trajectories, width, height, normalize,
                                                     check_interrupt=host.check_interrupt)
        return (video.to(host.intermediate_device()),)


class MotionKitPreviewTrajectories:
    DESCRIPTION = ("Draws the tracks (line, arrow head, track colour) and each object's position in the current "
                   "frame over an image batch. Without images: dark frames of the canvas size.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "trajectories": (TRAJECTORY, {"tooltip": "Tracks to draw."}),
                "line_width": ("INT", {"default": 3, "min": 1, "max": 32, "tooltip": "Line width in pixels."}),
            },
            "optional": {
                "images": ("IMAGE", {"tooltip": "Frames to draw on; tracks are scaled from their canvas to this size."}),
            },
        }

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    FUNCTION = "preview"
    CATEGORY = CATEGORY

    def preview(self, trajectories, line_width, images=None):
        traj_data.validate(trajectories)
        drawn = preview.draw_trajectories(trajectories, None if images is None else images.cpu(), line_width)
        return (drawn.to(host.intermediate_device()),)


NODE_CLASS_MAPPINGS = {
    "MotionKitDrawTrajectories": MotionKitDrawTrajectories,
    "MotionKitLoadTrajectories": MotionKitLoadTrajectories,
    "MotionKitResampleTrajectories": MotionKitResampleTrajectories,
    "MotionKitTrajectoriesToFlow": MotionKitTrajectoriesToFlow,
    "MotionKitPreviewTrajectories": MotionKitPreviewTrajectories,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "MotionKitDrawTrajectories": "Draw Trajectories (MotionKit)",
    "MotionKitLoadTrajectories": "Load Trajectories (MotionKit)",
    "MotionKitResampleTrajectories": "Resample Trajectories (MotionKit)",
    "MotionKitTrajectoriesToFlow": "Trajectories to Flow (MotionKit)",
    "MotionKitPreviewTrajectories": "Preview Trajectories (MotionKit)",
}
