//! Content-addressed blob store with atomic writes and verified reads
