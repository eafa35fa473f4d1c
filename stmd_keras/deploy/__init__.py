"""Deployment: exporting trained stagers (`export`) and running any form of them (`runtime`).

`runtime` is light (numpy, plus LiteRT for `.tflite`); `export` needs
TensorFlow and is imported on first use.
"""

from stmd_keras.deploy.runtime import MODEL_CARD, ModelCardError, Stager, load_stager


def __getattr__(name):
    if name in ("ExportError", "export_checkpoint"):
        from stmd_keras.deploy import export

        return getattr(export, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["MODEL_CARD", "ExportError", "ModelCardError", "Stager", "export_checkpoint", "load_stager"]
