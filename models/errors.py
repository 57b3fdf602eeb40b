"""The pack's error base class.

ComfyUI's error dialog shows an exception as `<module>.<qualname>` (execution.full_type_name). ComfyUI
imports the pack under its folder path, so a plain class would read `/…/custom_nodes/<folder>.models.….Error`;
subclasses of MotionKitError read `MotionKit.<Name>`.
"""


class MotionKitError(ValueError):
    """Bad input to a MotionKit node; the message names the input or file, what was expected and the fix."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.__module__ = "MotionKit"


MotionKitError.__module__ = "MotionKit"
