"""The demo: tiny random checkpoints, every example workflow through a real ComfyUI, videos out.

    .venv/bin/python -m scripts.demo [--out demo_output]   # from the repository root

Writes the tiny checkpoints into OUT/models, starts the pinned ComfyUI with the
pack loaded, loads each example workflow into the real frontend and queues it,
copies what each one saved into OUT/<workflow>/ and prints the paths.
"""
import argparse
import json
import subprocess
import shutil
import sys
import time
from pathlib import Path

from scripts import harness


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=harness.ROOT / "demo_output")
    args = parser.parse_args()
    if harness.find_host() is None:
        print("no ComfyUI host found: set COMFYUI_PATH to a comfyui-host folder (see README)", file=sys.stderr)
        return 2
    models = args.out / "models"
    shutil.rmtree(models, ignore_errors=True)
    print(f"writing tiny random checkpoints to {models}")
    for path in harness.write_tiny_checkpoints(models):
        print(f"  {path.relative_to(models)}")
    # The Wan ATI example needs Wan 2.1 weights: the demo runs it up to WanTrackToVideo's output (as the tests do),
    # with a random full-size Wan VAE written by ComfyUI's own class in a child process.
    subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; from scripts import harness; "
                    "harness.setup_comfy_in_process(); harness.write_random_wan_vae(Path(sys.argv[1]))", str(models)],
                   cwd=harness.ROOT, check=True)
    server = harness.ComfyServer(models)
    # animatediff_train_motionlora.json trains on a folder of clips in ComfyUI's input folder
    harness.write_training_clips(server.input_dir / "motionkit_pan_right_clips")
    failed = 0
    try:
        for workflow in sorted((harness.ROOT / "example_workflows").glob("*.json")):
            start = time.monotonic()
            runnable = workflow
            if workflow.stem == harness.WAN_ATI_EXAMPLE:
                runnable = models / workflow.name
                runnable.write_text(json.dumps(harness.wan_ati_up_to_conditioning(json.loads(workflow.read_text()))))
                print(f"{workflow.name}: run up to WanTrackToVideo (no Wan 2.1 model here)")
            try:
                outputs = server.run_ui_workflow(runnable)
            except harness.WorkflowFailed as error:
                print(f"FAILED {workflow.name}\n{error}", file=sys.stderr)
                failed += 1
                continue
            target = args.out / workflow.stem
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            print(f"{workflow.name}: {time.monotonic() - start:.1f}s")
            for source in server.output_files(outputs):
                shutil.copy(source, target / source.name)
                print(f"  wrote {target / source.name}")
    finally:
        server.stop()
    if failed:
        print(f"{failed} workflow(s) failed; the server log is {server.log_path}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
