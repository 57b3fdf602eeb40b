"""Convert a pickled Tora checkpoint (SAT `mp_rank_00_model_states.pt`) into a safetensors file, once.

    python scripts/convert_tora_checkpoint.py <file.pt> <out.safetensors> --trust-pickle

The SAT checkpoint stores Python objects (training arguments) beside the tensors, so
`torch.load(weights_only=True)` refuses it. Unpickling it may run code from the file: only do
this for a file you trust (the official release). MotionKit itself never unpickles arbitrary objects.
The output keeps the SAT key names of the Tora tensors (trajectory extractor and fusers) only.
"""
import sys

from convert_to_safetensors import load_trusted, parse, save_tensors

TORA_PREFIXES = ("model.diffusion_model.traj_extractor.", "model.diffusion_model.mixins.adaln_layer.fuser_list.")


def main() -> int:
    args = parse(__doc__)
    count = save_tensors(load_trusted(args.source), args.target, lambda key: key.startswith(TORA_PREFIXES))
    if not count:
        print(f"{args.source} holds no Tora tensors (looked for keys starting with {', '.join(TORA_PREFIXES)})",
              file=sys.stderr)
        return 1
    print(f"wrote {count} Tora tensors to {args.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
