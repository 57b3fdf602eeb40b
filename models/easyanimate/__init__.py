"""EasyAnimate's video VAEs (MagViT-style causal 3D VAEs, 8x spatial, 4x temporal)."""
