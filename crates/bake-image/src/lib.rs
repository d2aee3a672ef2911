//! OCI config, manifest and index assembly; OCI layout and docker-archive reading and writing
