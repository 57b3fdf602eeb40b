"""Peak tensor memory of a call, measured without a GPU.

`PeakMemory` is a TorchDispatchMode: every tensor an operator returns is counted by its
storage from the moment it appears until the storage is freed (a weakref finalizer), so
`peak` is the most bytes of tensor storage alive at once during the block. Tensors made
before the block (weights, inputs) are not counted; views and in-place results of
counted storages are not counted twice. It also counts FakeTensors (torch's FakeTensorMode:
shapes and dtypes without data or arithmetic), which is how bench/motion_vae_memory.py and
bench/slice_vae_memory.py trace full-size VAEs on a CPU: fake tensors on the meta device stand
for the GPU, fake CPU tensors for host memory, and `devices=("meta",)` counts the GPU side only.
Used by tests/test_video_vae_memory.py, tests/test_tora.py and those benchmarks.
"""
from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class PeakMemory(TorchDispatchMode):
    def __init__(self, devices: tuple[str, ...] | None = None, existing=()):
        """Count tensors on the `devices` types only (e.g. ("meta",) for fake tensors standing in for a
        GPU); None counts every device but the meta device. `existing`: tensors made before the block
        (weights) whose storages an operator may hand back as views (a linear's transposed weight):
        never counted."""
        super().__init__()
        self.devices = devices
        self.live = 0
        self.peak = 0
        self._sizes: dict[int, int] = {t.untyped_storage()._cdata: 0 for t in existing}

    def _counted(self, device_type: str) -> bool:
        return device_type != "meta" if self.devices is None else device_type in self.devices

    def _free(self, key: int) -> None:
        self.live -= self._sizes.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor) and self._counted(tensor.device.type):
                storage = tensor.untyped_storage()
                key = storage._cdata
                if key not in self._sizes:
                    self._sizes[key] = storage.nbytes()
                    self.live += storage.nbytes()
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(storage, self._free, key)
        return out


def peak_bytes(fn, *args, devices: tuple[str, ...] | None = None, existing=(), **kwargs) -> tuple[int, object]:
    """(peak bytes of tensors alive at once while fn runs, fn's result); `devices`, `existing` as in PeakMemory."""
    with PeakMemory(devices, existing) as meter:
        result = fn(*args, **kwargs)
    return meter.peak, result
