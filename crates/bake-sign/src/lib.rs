//! cosign-compatible keys, simple-signing payloads, signatures and verification; no network
