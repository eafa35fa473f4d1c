"""Models: signals `(B, L, C, S)` -> `{"logits": (B, L, 5), "features": (B, L, C, m)}`."""

from stmd_keras.models.cnn_gcn import GraphConvolution, build_cnn_gcn, cnn_gcn_student, cnn_gcn_teacher
from stmd_keras.models.cnn_rnn import build_cnn_rnn, cnn_rnn_student, cnn_rnn_teacher
from stmd_keras.models.encoder import MultiChannelEncoder

ARCHITECTURES = {
    "cnn_rnn": {"teacher": cnn_rnn_teacher, "student": cnn_rnn_student},
    "cnn_gcn": {"teacher": cnn_gcn_teacher, "student": cnn_gcn_student},
}


def build_model(architecture, role, **kwargs):
    """Builds `role` ("teacher" or "student") of `architecture` by name."""
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
    "build_model",
    "cnn_gcn_student",
    "cnn_gcn_teacher",
    "cnn_rnn_student",
    "cnn_rnn_teacher",
]
