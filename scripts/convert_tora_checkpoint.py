"""Convert a pickled Tora checkpoint (SAT `mp_rank_00_model_states.pt`) into a safetensors file, once.

    python scripts/convert_tora_checkpoint.py <file.pt> <out.safetensors> --trust-pickle

The SAT checkpoint stores Python objects (training arguments) beside the tensors, so
`torch.load(weights_only=True)` refuses it. Unpickling it may run code from the file: only do
this for a file you trust (the official release). MotionKit itself never unpickles arbitrary objects.
The output keeps the SAT key names of the Tora tensors (trajectory extractor and fusers) only.
"""
import argparse
import sys

import safetensors.torch
import torch

TORA_PREFIXES = ("model.diffusion_model.traj_extractor.", "model.diffusion_model.mixins.adaln_layer.fuser_list.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="confirm you trust the file: unpickling can execute code stored in it")
    args = parser.parse_args()
    if not args.trust_pickle:
        print("refusing to unpickle without --trust-pickle (see --help)", file=sys.stderr)
        return 2
    state = torch.load(args.source, map_location="cpu", weights_only=False)
    state = state.get("module", state.get("state_dict", state))
    tensors = {k: v.contiguous() for k, v in state.items() if k.startswith(TORA_PREFIXES) and torch.is_tensor(v)}
    if not tensors:
        print(f"{args.source} holds no Tora tensors (looked for keys starting with {', '.join(TORA_PREFIXES)})",
              file=sys.stderr)
        return 1
    safetensors.torch.save_file(tensors, args.target)
    print(f"wrote {len(tensors)} tensors to {args.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
