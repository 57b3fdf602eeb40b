"""Tora's flow front end, 49 frames 480x720 with 3 tracks: this pack vs the official per-frame pipeline.

The official pipeline (alibaba/Tora sat/utils/flow_utils.py + torchvision's flow_to_image, re-implemented
in tests/trajectory_reference.py) blurs every dense frame with cv2.filter2D and colours every pixel.
Run: .venv/bin/python bench/trajectory_flow.py
"""
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))
import harness  # noqa: E402

harness.import_pack()
import torch  # noqa: E402
from motionkit.models.trajectory import data, flow, resample  # noqa: E402
from trajectory_reference import official_video  # noqa: E402

FRAMES, HEIGHT, WIDTH, REPEATS = 49, 480, 720, 3


def best_of(function):
    times, result = [], None
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def main():
    drawn = data.Trajectories(WIDTH, HEIGHT, [
        data.Track([(80, 380), (300, 330), (640, 360)], "car"),
        data.Track([(600, 80), (420, 150), (200, 60)], "bird"),
        data.Track([(360, 420), (360, 240), (380, 400)], "ball")])
    tracks = resample.resample(drawn, FRAMES)
    pixels = flow.track_pixels(tracks, WIDTH, HEIGHT).tolist()

    official_time, (ref_rgb, ref_flow) = best_of(lambda: official_video(pixels, FRAMES, HEIGHT, WIDTH))
    blur_start = time.perf_counter()
    from trajectory_reference import official_flow
    official_flow(pixels, FRAMES, HEIGHT, WIDTH)
    official_blur = time.perf_counter() - blur_start
    ours_time, video = best_of(lambda: flow.trajectories_to_flow_video(tracks, WIDTH, HEIGHT))

    rgb = (video * 255).round().to(torch.uint8)
    field = flow.flow_field(torch.tensor(pixels), HEIGHT, WIDTH)
    seam = (field[..., 1] == 0) & (field[..., 0] > 0)
    off_seam = ((rgb != ref_rgb).any(-1) & ~seam).sum().item()
    print(f"frames {FRAMES}, {HEIGHT}x{WIDTH}, 3 tracks, torch threads {torch.get_num_threads()}, best of {REPEATS}")
    print(f"official per-frame cv2.filter2D + flow_to_image: {official_time:.3f} s (blur alone {official_blur:.3f} s)")
    print(f"MotionKit sparse separable blur + sparse colour: {ours_time:.3f} s")
    print(f"speed-up: {official_time / ours_time:.1f}x")
    print(f"max |flow difference| {(field - ref_flow).abs().max().item():.2e}; RGB pixels differing off the colour-wheel "
          f"seam: {off_seam}; on the seam: {((rgb != ref_rgb).any(-1) & seam).sum().item()} of {seam.sum().item()}")


if __name__ == "__main__":
    main()
