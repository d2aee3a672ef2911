//! Deterministic, normalised tar layers from build-context sources, with pinned compression
