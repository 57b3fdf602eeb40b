"""The pack's custom socket types. Each is prefixed MOTIONKIT_ so that another pack's type of the same
name never connects to ours; the strings are saved in workflows, so they never change once published."""

TRAJECTORY = "MOTIONKIT_TRAJECTORY"
TORA = "MOTIONKIT_TORA"
VIDEO_VAE = "MOTIONKIT_VIDEO_VAE"
MOTION_MODULE = "MOTIONKIT_MOTION_MODULE"
MOTION_LORA = "MOTIONKIT_MOTION_LORA"
TRAINING_CLIPS = "MOTIONKIT_TRAINING_CLIPS"
