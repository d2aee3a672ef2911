//! OCI registry client: references, auth, pull, push, retries; the only crate that touches the network
