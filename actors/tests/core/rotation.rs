//! Rotation tests (placeholder until the rotation slice).
