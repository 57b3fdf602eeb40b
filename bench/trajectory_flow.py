"""Tora's flow front end, 49 frames 480x720 with 3 tracks: this pack vs the official per-frame pipeline.

The official pipeline (alibaba/Tora sat/utils/flow_utils.py + torchvision's flow_to_image, re-implemented
in references/trajectory_reference.py) blurs every dense frame with cv2.filter2D and colours every pixel.
Run: .venv/bin/python -m bench.trajectory_flow [--torch-threads N]

Both pipelines colour with torch, so they share --torch-threads (default 1: on a small, busy machine OpenMP threads
waiting for each other dominate and the numbers mean little); OpenCV keeps its own threads for the official blur.
"""
import argparse
import time

from scripts import harness

harness.import_pack()
import cv2  # noqa: E402
import torch  # noqa: E402
from motionkit.models.trajectory import data, flow, resample  # noqa: E402
from references.trajectory_reference import official_flow, official_video  # noqa: E402

FRAMES, HEIGHT, WIDTH, REPEATS = 49, 480, 720, 4


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--torch-threads", type=int, default=1)
    torch.set_num_threads(parser.parse_args().torch_threads)
    drawn = data.Trajectories(WIDTH, HEIGHT, [
        data.Track([(80, 380), (300, 330), (640, 360)], "car"),
        data.Track([(600, 80), (420, 150), (200, 60)], "bird"),
        data.Track([(360, 420), (360, 240), (380, 400)], "ball")])
    tracks = resample.resample(drawn, FRAMES)
    pixels = flow.track_pixels(tracks, WIDTH, HEIGHT).tolist()

    # interleaved, best of REPEATS each: the machine is shared, so both see the same load
    official_times, ours_times = [], []
    for _ in range(REPEATS):
        start = time.perf_counter()
        ref_rgb, ref_flow = official_video(pixels, FRAMES, HEIGHT, WIDTH)
        official_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        video = flow.trajectories_to_flow_video(tracks, WIDTH, HEIGHT)
        ours_times.append(time.perf_counter() - start)
    official_time, ours_time = min(official_times), min(ours_times)
    start = time.perf_counter()
    official_flow(pixels, FRAMES, HEIGHT, WIDTH)
    official_blur = time.perf_counter() - start

    rgb = (video * 255).round().to(torch.uint8)
    field = flow.flow_field(torch.tensor(pixels), HEIGHT, WIDTH)
    seam = (field[..., 1] == 0) & (field[..., 0] > 0)
    off_seam = ((rgb != ref_rgb).any(-1) & ~seam).sum().item()
    print(f"frames {FRAMES}, {HEIGHT}x{WIDTH}, 3 tracks, torch threads {torch.get_num_threads()}, "
          f"OpenCV threads {cv2.getNumThreads()}, best of {REPEATS} interleaved")
    print(f"official per-frame cv2.filter2D + flow_to_image: {official_time:.3f} s (blur alone {official_blur:.3f} s)")
    print(f"MotionKit sparse separable blur + sparse colour: {ours_time:.3f} s")
    print(f"speed-up: {official_time / ours_time:.1f}x")
    print(f"max |flow difference| {(field - ref_flow).abs().max().item():.2e}; RGB pixels differing off the colour-wheel "
          f"seam: {off_seam}; on the seam: {((rgb != ref_rgb).any(-1) & seam).sum().item()} of {seam.sum().item()}")


if __name__ == "__main__":
    main()
