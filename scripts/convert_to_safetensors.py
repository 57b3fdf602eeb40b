"""Convert a trusted pickled checkpoint (.ckpt/.pt/.pth/.bin) into a safetensors file, once.

    python scripts/convert_to_safetensors.py <file> <out.safetensors> --trust-pickle

MotionKit reads pickles only with `torch.load(weights_only=True)`, which refuses files that store
Python objects (training arguments, optimizer state...) beside the tensors. Unpickling such a file
may run code from it: only convert a file you trust (an official release). The output holds every
tensor of the checkpoint's state dict (under "state_dict" or "module" when the file nests it),
with its key names unchanged.
"""
import argparse
import sys

import safetensors.torch
import torch


def load_trusted(path: str) -> dict:
    """The state dict of a pickled checkpoint, unpickled without restriction (trusted files only)."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    for container in ("state_dict", "module"):
        if isinstance(state, dict) and isinstance(state.get(container), dict):
            state = state[container]
    return state


def save_tensors(state: dict, target: str, keep=lambda key: True) -> int:
    """Write the tensors of `state` whose keys `keep` accepts; return how many."""
    tensors = {k: v.contiguous() for k, v in state.items() if torch.is_tensor(v) and keep(k)}
    if tensors:
        safetensors.torch.save_file(tensors, target)
    return len(tensors)


def parse(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="confirm you trust the file: unpickling can execute code stored in it")
    args = parser.parse_args()
    if not args.trust_pickle:
        sys.exit("refusing to unpickle without --trust-pickle (see --help)")
    return args


def main() -> int:
    args = parse(__doc__)
    count = save_tensors(load_trusted(args.source), args.target)
    if not count:
        print(f"{args.source} holds no tensors", file=sys.stderr)
        return 1
    print(f"wrote {count} tensors to {args.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
