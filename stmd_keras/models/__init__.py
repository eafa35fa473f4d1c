"""Models: signals `(B, L, C, S)` -> `{"logits": (B, L, 5), "features": (B, L, C, m)}`."""

from stmd_keras.models.cnn_gcn import GraphConvolution, build_cnn_gcn, cnn_gcn_student, cnn_gcn_teacher
from stmd_keras.models.cnn_rnn import build_cnn_rnn, cnn_rnn_student, cnn_rnn_teacher
from stmd_keras.models.deepsleepnet import (
    build_deepsleepnet,
    deepsleepnet_assistant,
    deepsleepnet_student,
    deepsleepnet_teacher,
)
from stmd_keras.models.encoder import MultiChannelEncoder
from stmd_keras.models.salientsleepnet import (
    build_salientsleepnet,
    salientsleepnet_assistant,
    salientsleepnet_student,
    salientsleepnet_teacher,
)

ARCHITECTURES = {
    "cnn_rnn": {"teacher": cnn_rnn_teacher, "student": cnn_rnn_student},
    "cnn_gcn": {"teacher": cnn_gcn_teacher, "student": cnn_gcn_student},
    # SleepKD's single-channel backbones, with a teacher assistant (issue 6).
    "deepsleepnet": {
        "teacher": deepsleepnet_teacher,
        "assistant": deepsleepnet_assistant,
        "student": deepsleepnet_student,
    },
    "salientsleepnet": {
        "teacher": salientsleepnet_teacher,
        "assistant": salientsleepnet_assistant,
        "student": salientsleepnet_student,
    },
}


def build_model(architecture, role, **kwargs):
    """Builds `role` ("teacher", "student", or "assistant" where there is one) of `architecture`."""
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"Unknown architecture {architecture!r}; available: {sorted(ARCHITECTURES)}"
        )
    roles = ARCHITECTURES[architecture]
    if role not in roles:
        raise ValueError(f"Unknown role {role!r}; available: {sorted(roles)}")
    return roles[role](**kwargs)


__all__ = [
    "ARCHITECTURES",
    "GraphConvolution",
    "MultiChannelEncoder",
    "build_cnn_gcn",
    "build_cnn_rnn",
    "build_deepsleepnet",
    "build_model",
    "build_salientsleepnet",
    "cnn_gcn_student",
    "cnn_gcn_teacher",
    "cnn_rnn_student",
    "cnn_rnn_teacher",
    "deepsleepnet_assistant",
    "deepsleepnet_student",
    "deepsleepnet_teacher",
    "salientsleepnet_assistant",
    "salientsleepnet_student",
    "salientsleepnet_teacher",
]
