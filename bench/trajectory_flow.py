"""Tora's flow front end at 49 frames 480x720 with 1 to 2000 tracks: this pack vs the official pipeline vs a dense
separable blur, all in one run.

- official: alibaba/Tora sat/utils/flow_utils.py `process_traj` + torchvision's flow_to_image (re-implemented in
  references/trajectory_reference.py): a dense cv2.filter2D of every frame, every pixel coloured;
- dense blur: cv2.sepFilter2D (float32, reflect-101) of every frame's sparse flow, the blur alone (no colouring):
  the floor the issue sets ("never slower than 1.2x the dense blur");
- ours: Trajectories to Flow on the resampled tracks (the cheaper of the window and banded paths per frame),
  colouring and the IMAGE video included.

A second table times Preview Trajectories (no images: dark frames) and Trajectory Error (49-frame 480x720 moving
texture) at the same counts: both stay linear in tracks x frames.

Random straight tracks, seeded. Each line also checks parity against the official output (max |flow difference|,
RGB pixels differing off the colour-wheel seam). Times are CPU seconds of this process (time.process_time) with
one thread for torch and OpenCV: on a shared machine that measures the work and not the waiting for a core; on an
idle machine it equals the wall time. Best of --repeats, interleaved.
Run: .venv/bin/python -m bench.trajectory_flow [--torch-threads N] [--counts 1,3,10,100,500,2000] [--repeats 2]
Both pipelines colour with torch, so they share --torch-threads (default 1); OpenCV runs with the same thread count.
"""
import argparse
import time

import cv2
import numpy as np
import torch

from scripts import harness

# the host's shims first: they let a CUDA-built torchvision import beside a CPU torch (the reference uses it)
harness.setup_comfy_in_process()
harness.import_pack()
from motionkit.models.trajectory import data, flow, preview, resample, tracking  # noqa: E402
from references.trajectory_reference import official_video  # noqa: E402

FRAMES, HEIGHT, WIDTH = 49, 480, 720


def random_tracks(count: int, seed: int = 0) -> data.Trajectories:
    """`count` straight tracks with random ends inside the canvas, resampled to FRAMES points."""
    rng = np.random.default_rng(seed)
    starts, ends = rng.uniform(0, [WIDTH - 1, HEIGHT - 1], (count, 2)), rng.uniform(0, [WIDTH - 1, HEIGHT - 1], (count, 2))
    drawn = data.Trajectories(WIDTH, HEIGHT, [data.Track([tuple(a), tuple(b)], f"t{i}")
                                              for i, (a, b) in enumerate(zip(starts, ends))])
    return resample.resample(drawn, FRAMES)


def dense_blur(pixels: torch.Tensor) -> None:
    """The sparse flow of every frame blurred by a dense float32 separable filter (cv2.sepFilter2D, reflect-101)."""
    kernel = flow.gaussian_1d().to(torch.float32).numpy()
    sparse = flow.flow_sources(pixels, WIDTH, HEIGHT)
    frame = np.zeros((HEIGHT, WIDTH, 2), np.float32)
    for i in range(1, FRAMES):
        x, y, disp = sparse.of_frame(i)
        frame[:] = 0
        frame[y.numpy(), x.numpy()] = disp.numpy()
        cv2.sepFilter2D(frame, -1, kernel, kernel, borderType=cv2.BORDER_REFLECT_101)


def moving_texture() -> torch.Tensor:
    """FRAMES frames of a blurred-noise texture moving 2 pixels right per frame: IMAGE [F, H, W, 3]."""
    noise = np.random.default_rng(0).random((HEIGHT + 40, WIDTH + 2 * FRAMES + 40)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), 2)
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    frames = np.stack([np.roll(noise, 2 * t, axis=1)[20:20 + HEIGHT, 20:20 + WIDTH] for t in range(FRAMES)])
    return torch.from_numpy(np.repeat(frames[..., None], 3, -1))


def best(function, repeats: int) -> float:
    """The least CPU time of `repeats` calls (one thread each, see the module docstring)."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        function()
        times.append(time.process_time() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--counts", default="1,3,10,100,500,2000")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--official-up-to", type=int, default=100000,
                        help="skip the official pipeline above this many tracks")
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)
    cv2.setNumThreads(args.torch_threads)
    print(f"frames {FRAMES}, {HEIGHT}x{WIDTH}, torch threads {torch.get_num_threads()}, "
          f"OpenCV threads {cv2.getNumThreads()}, CPU seconds, best of {args.repeats} interleaved")
    print(f"{'tracks':>6} {'ours s':>8} {'official s':>10} {'dense blur s':>12} {'official/ours':>13} "
          f"{'ours/dense':>10} {'ours ms/track':>13} {'max|dflow|':>10} {'RGB off-seam':>12}")
    for count in [int(c) for c in args.counts.split(",")]:
        tracks = random_tracks(count)
        pixels = flow.track_pixels(tracks, WIDTH, HEIGHT)
        ours_t, official_t, dense_t = [], [], []
        run_official = count <= args.official_up_to
        for _ in range(args.repeats):
            ours_t.append(best(lambda: flow.trajectories_to_flow_video(tracks, WIDTH, HEIGHT), 1))
            dense_t.append(best(lambda: dense_blur(pixels), 1))
            if run_official:
                official_t.append(best(lambda: official_video(pixels.tolist(), FRAMES, HEIGHT, WIDTH), 1))
        ours, dense = min(ours_t), min(dense_t)
        if run_official:
            official = min(official_t)
            video = flow.trajectories_to_flow_video(tracks, WIDTH, HEIGHT)
            ref_rgb, ref_flow = official_video(pixels.tolist(), FRAMES, HEIGHT, WIDTH)
            field = flow.flow_field(pixels, HEIGHT, WIDTH)
            rgb = (video * 255).round().to(torch.uint8)
            seam = (field[..., 1] == 0) & (field[..., 0] > 0)
            off_seam = int(((rgb != ref_rgb).any(-1) & ~seam).sum())
            parity = f"{(field - ref_flow).abs().max().item():10.1e} {off_seam:12d}"
            official_text, ratio = f"{official:10.3f}", f"{official / ours:12.1f}x"
        else:
            parity, official_text, ratio = f"{'-':>10} {'-':>12}", f"{'skipped':>10}", f"{'-':>13}"
        print(f"{count:6d} {ours:8.3f} {official_text} {dense:12.3f} {ratio} {ours / dense:9.2f}x "
              f"{1000 * ours / count:13.3f} {parity}", flush=True)
    video = moving_texture()
    print(f"\n{'tracks':>6} {'Preview Trajectories s':>22} {'Trajectory Error s':>18}")
    for count in [int(c) for c in args.counts.split(",")]:
        tracks = random_tracks(count)
        drawn = best(lambda: preview.draw_trajectories(tracks), 1)
        measured = best(lambda: tracking.trajectory_error(video, tracks), 1)
        print(f"{count:6d} {drawn:22.3f} {measured:18.3f}", flush=True)


if __name__ == "__main__":
    main()
