"""The video VAE family: one streaming engine for every video VAE version of the pack.

- `engine`: `VideoVAE` (the node type MOTIONKIT_VIDEO_VAE) and `VideoVAENetwork`, the protocol each
  version follows (EasyAnimate V2-V5.1 in models/easyanimate/magvit.py, CogVideoX in models/cogvideox/vae.py);
- `stream`: `StreamState`, what a stream carries from chunk to chunk;
- `tiles`: overlapping spatial tiles, blended per chunk;
- `formats`: detection, building and `load_video_vae`.
"""
from .engine import LATENT_FAMILY_KEY, VideoVAE, VideoVAEError, VideoVAENetwork
from .formats import FORMATS, build_video_vae, detect_format, load_video_vae, read_json_config
from .stream import StreamState
from .tiles import TilePlan

__all__ = ["FORMATS", "LATENT_FAMILY_KEY", "StreamState", "TilePlan", "VideoVAE", "VideoVAEError", "VideoVAENetwork",
           "build_video_vae", "detect_format", "load_video_vae", "read_json_config"]
