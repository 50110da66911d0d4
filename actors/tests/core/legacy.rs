//! Legacy import tests (placeholder until the legacy slice).
