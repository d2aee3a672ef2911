//! Command-line flags, parsed by clap: types and help text only, no behaviour.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Bake reproducible OCI images from TOML recipes.
///
/// The same recipe and inputs give the same image digest on any machine: tar
/// entries are sorted and normalised, timestamps come from the build epoch
/// (--source-date-epoch, else SOURCE_DATE_EPOCH, else the recipe's `epoch`), and
/// compression is pinned. See docs/recipe.md for the recipe language.
#[derive(Debug, Parser)]
#[command(name = "bake", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Command {
    /// Whether the command was asked for `--json`: its failure is then a
    /// JSON error object on stdout too. Exhaustive, so a new command says.
    pub fn json(&self) -> bool {
        match self {
            Command::Build(a) => a.json,
            Command::Push(a) => a.json,
            Command::Diff(a) => a.json,
            Command::Check(a) => a.json,
            Command::Store(a) => match &a.command {
                StoreCommand::Verify(a) => a.json,
                StoreCommand::Gc(a) => a.json,
            },
            Command::Login(_)
            | Command::Keygen(_)
            | Command::Sign(_)
            | Command::Verify(_)
            | Command::Lock(_) => false,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build an image from a recipe into an OCI image layout.
    ///
    /// Writes the layout to out/<image name>/ (or --layout DIR), tagging the
    /// manifest with each of the recipe's tags in index.json. Prints the
    /// manifest digest and each layer's digest and size; with --json, one
    /// JSON object on stdout instead.
    Build(BuildArgs),

    /// Push a built image from an OCI layout to a registry.
    ///
    /// Every tag of the image in the layout is pushed (or only TAG when the
    /// image is given as oci:DIR:TAG), plus the tag in REF if it has one.
    /// Blobs the registry already has are not uploaded again; the manifest
    /// goes last, so a failed push never leaves a tag pointing at missing
    /// blobs. A signature in the layout (bake sign) travels with the image.
    Push(PushArgs),

    /// Store credentials for a registry in the Docker config file.
    ///
    /// Reads the password from standard input and writes it to
    /// $DOCKER_CONFIG/config.json (default ~/.docker/config.json), where
    /// bake, docker, podman and skopeo all find it.
    Login(LoginArgs),

    /// Make a cosign-compatible ECDSA P-256 key pair.
    ///
    /// Writes PREFIX.key (PKCS#8 PEM, encrypted with the password from
    /// BAKE_PASSWORD or a terminal prompt, mode 0600) and PREFIX.pub (PKIX
    /// PEM). Prints the key id.
    Keygen(KeygenArgs),

    /// Sign an image's manifest digest, the way `cosign sign --key` does.
    ///
    /// The signature is stored beside the image under the tag
    /// sha256-<hex>.sig, in the registry or in the OCI layout; signing again
    /// with another key adds a signature, with the same key adds nothing.
    Sign(SignArgs),

    /// Check an image's signature with a public key.
    ///
    /// Exits 0 and names the key and identity when a signature by KEY for
    /// this exact manifest digest and repository is found; otherwise exits
    /// 1 saying why (unsigned, another key, another digest, tampered
    /// payload, another repository).
    Verify(VerifyArgs),

    /// Explain how two images differ, top-down.
    ///
    /// A and B are each an OCI layout (oci:DIR[:TAG|@DIGEST], or a layout
    /// directory), a docker-archive tarball (docker-archive:FILE, or the
    /// path of a file), or a registry reference (pulled into a temporary
    /// store). The report goes
    /// from the manifests (media type, config, layer count, annotations) to
    /// the configs (created, author, platform, every config field, Env and
    /// Labels per key, history, rootfs.diff_ids) to each pair of layers:
    /// identical, compression-only (same diffID, other digest: sizes and
    /// gzip headers), or the entries added, removed and changed, with what
    /// changed (content, size, mode, owner, mtime, link target, type, tar
    /// header fields, xattrs), whiteouts as deletions, and order. Layers
    /// only one image has are listed too.
    ///
    /// Exit status: 0 when the images are identical; 1 when they differ
    /// (the report on stdout, nothing on stderr); 1 when an image cannot be
    /// read (a message starting with "error:" on stderr); 2 for a usage
    /// error.
    Diff(DiffArgs),

    /// Prove a recipe reproducible: build it twice and compare digests.
    ///
    /// Builds RECIPE twice from scratch (no cache), each time with `bake
    /// build` in its own temporary root and a copy of the build context,
    /// varying what must not matter: the build path, the copy's creation
    /// order, file mtimes (before the epoch in one copy, after it in the
    /// other) and host permission bits (group/other stripped in one),
    /// umask (022, 077), TZ, LANG/LC_ALL and the CPU count (one build
    /// pinned to one CPU with taskset). Prints "reproducible: DIGEST" when
    /// the manifest digests match. Otherwise prints how the images differ
    /// (as `bake diff` does) and, for each differing file, the recipe step
    /// that wrote it (FILE:LINE:COLUMN).
    ///
    /// With --against, builds once and compares with a published image: a
    /// manifest digest (sha256:…; only the digests are compared), an OCI
    /// layout (oci:DIR[:TAG|@DIGEST]) or a registry reference.
    ///
    /// Exit status: 0 when reproducible; 1 when not (the report on
    /// stdout) or when a build fails (error: on stderr); 2 for a usage
    /// error.
    Check(CheckArgs),

    /// Pin every input of a recipe that can move, in RECIPE.lock.
    ///
    /// Records the base image (a registry reference resolved to what it
    /// points at and to the platform manifest), the sha256 of every .deb
    /// and unpacked archive, a digest of every copied file or tree, the
    /// output-format version and compression. `bake build --locked` then
    /// refuses to build when any input no longer matches, naming it, and
    /// builds a tag-only registry base from its locked digest.
    Lock(LockArgs),

    /// Check or clean a content-addressed store: an OCI layout or the layer cache.
    ///
    /// `bake store verify LAYOUT` (or `--cache`) re-hashes every blob and
    /// reports each corrupt one by digest and path, anything in blobs/sha256
    /// that is not a regular file, and blobs the layout's index.json reaches
    /// but lacks; exit 1 if there is any. `bake store gc LAYOUT` removes
    /// blobs that index.json does not reach (manifests, their configs and
    /// layers, indexes and their children, signatures) and stale .tmp-*
    /// files; `--cache` removes blobs no cache entry names, and the
    /// uncompressed copies of layers below `run` steps (plain/) that no
    /// build used within the grace period.
    Store(StoreArgs),
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    pub command: StoreCommand,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Re-hash every blob; report corrupt, missing and stray ones (exit 1).
    Verify(StoreVerifyArgs),
    /// Remove blobs nothing references, and stale temporary files.
    ///
    /// Only what is older than --grace is removed (blobs by ctime, which a
    /// write or hard link refreshes), so a build writing into the store now
    /// keeps its blobs. A layout is locked while gc runs. Refuses to remove
    /// anything when a manifest or index that index.json reaches cannot be
    /// read.
    Gc(StoreGcArgs),
}

/// Which store: a layout directory, or the layer cache.
#[derive(Debug, Args)]
pub struct StoreTarget {
    /// An OCI image layout directory.
    pub layout: Option<PathBuf>,

    /// The default layer cache ($XDG_CACHE_HOME/bake, else ~/.cache/bake).
    #[arg(long)]
    pub cache: bool,

    /// The layer cache in DIR.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StoreVerifyArgs {
    #[command(flatten)]
    pub target: StoreTarget,

    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StoreGcArgs {
    #[command(flatten)]
    pub target: StoreTarget,

    /// Say what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Keep unreferenced blobs and temporary files younger than this.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub grace: u64,

    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LockArgs {
    /// The recipe file (TOML); the lock is written beside it as RECIPE.lock.
    pub recipe: PathBuf,

    /// Override a recipe variable (repeatable), as for `bake build`.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,

    #[command(flatten)]
    pub compression: CompressionArgs,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Layer compression, overriding the recipe's `[output]`.
#[derive(Debug, Args, Clone, Default, PartialEq)]
pub struct CompressionArgs {
    /// Compress layers with this instead of the recipe's [output]
    /// compression (default gzip). Part of the image's identity: another
    /// compression gives other layer and manifest digests (the same
    /// diffIDs), and a lock records it.
    #[arg(long, value_enum, value_name = "SCHEME")]
    pub compression: Option<CompressionFlag>,

    /// Compression level: gzip 1-9 (default 6), zstd 1-19 (default 3).
    /// Applies to --compression, else to the recipe's compression.
    #[arg(long, value_name = "N")]
    pub level: Option<u32>,
}

/// The values of `--compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompressionFlag {
    /// application/vnd.oci.image.layer.v1.tar+gzip
    Gzip,
    /// application/vnd.oci.image.layer.v1.tar+zstd
    Zstd,
    /// application/vnd.oci.image.layer.v1.tar (uncompressed)
    None,
}

/// Bounds on reading archives written by others.
#[derive(Debug, Args, Clone, PartialEq)]
pub struct LimitsArgs {
    /// The most bytes one archive may hold once decompressed (an `unpack`
    /// archive, a .deb's data, a base or compared image's layer, a
    /// docker-archive): a decompression bomb stops there with an error
    /// naming the archive. SIZE is bytes, or a number with a unit: K, M,
    /// G, T (or KiB, MiB, GiB, TiB) are powers of 1024; KB, MB, GB, TB
    /// powers of 1000. Layers already in the layer cache are not read
    /// again.
    #[arg(long, value_name = "SIZE", default_value = "64GiB", value_parser = parse_size)]
    pub max_archive_size: u64,
}

impl LimitsArgs {
    /// The limits bake-layer reads archives within.
    pub fn read_limits(&self) -> bake_layer::ReadLimits {
        bake_layer::ReadLimits {
            max_tar_bytes: self.max_archive_size,
            ..bake_layer::ReadLimits::DEFAULT
        }
    }
}

/// Parses `--max-archive-size`: a whole number of bytes (`1048576`), or a
/// whole number and a unit, case-insensitive (`512K`, `64GiB`, `10GB`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    if number.is_empty() {
        return Err(format!(
            "{text:?} is not a size: expected a whole number of bytes, optionally with a unit (512M, 64GiB)"
        ));
    }
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is too large a size"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "{text:?} has an unknown unit {other:?}: use B, K/KiB, M/MiB, G/GiB, T/TiB (powers of 1024) or KB, MB, GB, TB (powers of 1000)"
            ));
        }
    };
    let bytes = n
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large a size (more than {} bytes)", u64::MAX))?;
    if bytes == 0 {
        return Err(format!("{text:?}: the size must be more than 0"));
    }
    Ok(bytes)
}

/// Options for talking to registries.
#[derive(Debug, Args, Clone, Default, PartialEq)]
pub struct RegistryArgs {
    /// Use plain HTTP for this registry host (repeatable). Loopback hosts
    /// (127.0.0.0/8, localhost, ::1) always use plain HTTP.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registries: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The image: oci:DIR[:TAG|@DIGEST], or a layout directory.
    pub image: String,

    /// Where to push: REGISTRY/REPOSITORY[:TAG].
    pub reference: String,

    /// Print one JSON object describing the push on stdout.
    #[arg(long)]
    pub json: bool,

    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry host, e.g. registry.example.com or 127.0.0.1:5000.
    pub registry: String,

    /// The user name.
    #[arg(long, short)]
    pub username: String,

    /// Read the password from standard input (the only way: never on the
    /// command line, where other users and shell history would see it).
    #[arg(long)]
    pub password_stdin: bool,

    /// Save the credentials without checking them against the registry
    /// (offline use). By default they are checked with a request to the
    /// registry's /v2/ endpoint (and its token service), and credentials
    /// the registry rejects, or a registry that cannot be reached, are not
    /// saved.
    #[arg(long)]
    pub no_verify: bool,

    #[command(flatten)]
    pub registry_args: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Write PREFIX.key and PREFIX.pub.
    #[arg(long, value_name = "PREFIX", default_value = "cosign")]
    pub output_prefix: std::path::PathBuf,

    /// Write the private key unencrypted.
    #[arg(long)]
    pub no_password: bool,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// The image: a registry reference, or oci:DIR[:TAG|@DIGEST].
    pub image: String,

    /// The private key (PEM: PKCS#8, encrypted PKCS#8, SEC1, or cosign's).
    /// Its password comes from BAKE_PASSWORD or a terminal prompt.
    #[arg(long, value_name = "FILE")]
    pub key: std::path::PathBuf,

    /// The repository the signature names (default: the reference's
    /// repository; required for a layout).
    #[arg(long, value_name = "REPOSITORY")]
    pub identity: Option<String>,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The image: a registry reference, or oci:DIR[:TAG|@DIGEST].
    pub image: String,

    /// The public key (PKIX PEM).
    #[arg(long, value_name = "FILE")]
    pub key: std::path::PathBuf,

    /// The repository the signature must name (default: the reference's
    /// repository; required for a layout unless --any-identity).
    #[arg(long, value_name = "REPOSITORY")]
    pub identity: Option<String>,

    /// Accept a signature naming any repository.
    #[arg(long, conflicts_with = "identity")]
    pub any_identity: bool,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The first image (the report says what B changes relative to A).
    pub a: String,

    /// The second image.
    pub b: String,

    /// Print the whole report as one JSON object on stdout (every entry
    /// change, however many).
    #[arg(long)]
    pub json: bool,

    /// Which platform to compare when an image is a multi-platform index
    /// (default linux/amd64, or the index's only platform). A
    /// single-platform image is compared whatever its platform unless this
    /// is given.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,

    /// List at most N entry changes per layer (0: all). The summary line
    /// still counts them all.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub max_entries: usize,

    #[command(flatten)]
    pub limits: LimitsArgs,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The recipe file (TOML).
    pub recipe: PathBuf,

    /// The inputs of both builds, as for `bake build`.
    #[command(flatten)]
    pub inputs: BuildInputs,

    /// Build once and compare with this image instead: a manifest digest
    /// (sha256:…), an OCI layout (oci:DIR[:TAG|@DIGEST]) or a registry
    /// reference.
    #[arg(long, value_name = "DIGEST|LAYOUT|REF")]
    pub against: Option<String>,

    /// Keep the temporary build roots (contexts, layouts) and print where
    /// they are.
    #[arg(long)]
    pub keep: bool,

    /// When the two builds differ, do not look for the variation the
    /// difference follows. By default up to 7 more builds (cold, like the
    /// first two) each take some of build 2's conditions (umask, TZ, LANG,
    /// one CPU, creation order, modes, mtimes, path) and the rest of build
    /// 1's, halving the set until one condition, or the fewest found
    /// together, gives build 2's digest; a rebuild with build 1's own
    /// conditions first tells a build that is not deterministic at all.
    #[arg(long)]
    pub no_bisect: bool,

    /// Print one JSON object on stdout: reproducible, digests, against,
    /// differences (bake diff's report), steps.
    #[arg(long)]
    pub json: bool,

    /// Print no progress on stderr, only the result (and errors).
    #[arg(long, short)]
    pub quiet: bool,

    /// List at most N entry changes per layer and N files per step (0:
    /// all).
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub max_entries: usize,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The recipe file (TOML). Paths in it are relative to its directory.
    pub recipe: PathBuf,

    /// Write the OCI image layout here instead of out/<image name>/.
    #[arg(long, value_name = "DIR")]
    pub layout: Option<PathBuf>,

    /// Also write a docker-archive tarball (for `podman load` / `docker load`).
    #[arg(long, value_name = "FILE")]
    pub docker_archive: Option<PathBuf>,

    #[command(flatten)]
    pub inputs: BuildInputs,

    /// Print one JSON object describing the build on stdout. On failure,
    /// stdout has one JSON error object instead: {"error", "causes",
    /// "kind", "position": {"file", "line", "column"} or null}.
    #[arg(long)]
    pub json: bool,

    /// Print nothing but errors (and the JSON with --json). The build log
    /// still gets everything.
    #[arg(long, short)]
    pub quiet: bool,

    /// Write the build log here: every layer's result, the output of `run`
    /// steps (prefixed with the layer name), then the summary or the error,
    /// each line with the seconds since the build started. Default: beside
    /// the layout, as <layout>.log (out/<image name>.log).
    #[arg(long, value_name = "FILE", conflicts_with = "no_log")]
    pub log: Option<PathBuf>,

    /// Write no build log.
    #[arg(long)]
    pub no_log: bool,

    /// Keep built layers in DIR and reuse each one while nothing it depends
    /// on has changed; the layers below a `run` step are also kept
    /// uncompressed there (plain/), so rebuilding the step does not
    /// decompress them again (`bake store gc --cache` removes unused ones).
    /// Default: $XDG_CACHE_HOME/bake, else ~/.cache/bake.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Build every layer, without reading or writing the layer cache.
    #[arg(long, conflicts_with = "cache_dir")]
    pub no_cache: bool,

    /// After building, push the image to this repository (repeatable):
    /// REGISTRY/REPOSITORY[:TAG]. Every recipe tag is pushed, plus TAG.
    /// Adds to the recipe's [output] push list.
    #[arg(long, value_name = "REF")]
    pub push: Vec<String>,

    /// Build only what RECIPE.lock pins (see `bake lock`): fail, naming
    /// the input, when a copied tree, archive or .deb no longer matches the
    /// lock; build a tag-only registry base from its locked digest; refuse
    /// a registry base that is neither pinned by digest nor locked.
    #[arg(long)]
    pub locked: bool,

    /// Sign each pushed manifest digest with --key (cosign-compatible).
    #[arg(long, requires = "key")]
    pub sign: bool,

    /// The private key for --sign.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
}

/// What a build's result depends on besides the recipe and its context —
/// variables, the epoch, compression, archive limits, how registries are
/// reached. `bake build` and `bake check` share it, and check passes its
/// builds exactly this ([`BuildInputs::to_argv`]), so a flag added here
/// reaches them, and one that is not handled there does not compile.
#[derive(Debug, Args, Clone, PartialEq)]
pub struct BuildInputs {
    /// Override a recipe variable (repeatable). Also read from BAKE_VAR_<name>;
    /// the command line wins.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,

    /// Build epoch in seconds since 1970: every timestamp in the image.
    /// This flag wins over SOURCE_DATE_EPOCH; both win over the recipe's
    /// `epoch` (default 0). The output and --json say which was used.
    #[arg(long, value_name = "SECONDS")]
    pub source_date_epoch: Option<u64>,

    #[command(flatten)]
    pub compression: CompressionArgs,

    #[command(flatten)]
    pub limits: LimitsArgs,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

impl BuildInputs {
    /// These inputs as `bake build` flags: parsing them gives them back.
    /// Destructured whole, so a new field must be handled here.
    pub fn to_argv(&self) -> Vec<std::ffi::OsString> {
        let BuildInputs {
            vars,
            source_date_epoch,
            compression: CompressionArgs { compression, level },
            limits: LimitsArgs { max_archive_size },
            registry: RegistryArgs { insecure_registries },
        } = self;
        let mut v: Vec<std::ffi::OsString> = Vec::new();
        for var in vars {
            v.push("--var".into());
            v.push(var.into());
        }
        if let Some(e) = source_date_epoch {
            v.push("--source-date-epoch".into());
            v.push(e.to_string().into());
        }
        if let Some(c) = compression {
            v.push("--compression".into());
            v.push(
                clap::ValueEnum::to_possible_value(c).map_or_else(|| "gzip".into(), |p| p.get_name().into()),
            );
        }
        if let Some(l) = level {
            v.push("--level".into());
            v.push(l.to_string().into());
        }
        v.push("--max-archive-size".into());
        v.push(max_archive_size.to_string().into());
        for host in insecure_registries {
            v.push("--insecure-registry".into());
            v.push(host.into());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs_of(argv: &[&str]) -> BuildInputs {
        match Cli::try_parse_from(["bake", "build"].iter().chain(argv).chain(&["r.toml"])) {
            Ok(Cli {
                command: Command::Build(b),
                ..
            }) => b.inputs,
            other => panic!("{argv:?}: {other:?}"),
        }
    }

    /// What `bake check` passes its builds parses back to what it was given,
    /// for every input flag (and a check takes the same flags as a build).
    #[test]
    fn build_inputs_round_trip_through_to_argv() {
        for argv in [
            &[][..],
            &[
                "--var",
                "a=1",
                "--var",
                "b=x y",
                "--source-date-epoch",
                "1700000000",
            ],
            &["--compression", "zstd", "--level", "19"],
            &["--compression", "none"],
            &["--compression", "gzip", "--level", "1"],
            &[
                "--max-archive-size",
                "512K",
                "--insecure-registry",
                "reg:5000",
                "--insecure-registry",
                "other",
            ],
        ] {
            let inputs = inputs_of(argv);
            let again: Vec<String> = inputs
                .to_argv()
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let again: Vec<&str> = again.iter().map(String::as_str).collect();
            assert_eq!(inputs_of(&again), inputs, "{argv:?} -> {again:?}");
            let check = Cli::try_parse_from(["bake", "check"].iter().chain(argv).chain(&["r.toml"])).unwrap();
            match check.command {
                Command::Check(c) => assert_eq!(c.inputs, inputs, "{argv:?}"),
                _ => unreachable!(),
            }
        }
    }

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("64GiB"), Ok(64 << 30));
        assert_eq!(parse_size("64gib"), Ok(64 << 30));
        assert_eq!(parse_size("2 MiB"), Ok(2 << 20));
        assert_eq!(parse_size("10GB"), Ok(10_000_000_000));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size("7b"), Ok(7));
    }

    #[test]
    fn bad_sizes_say_why() {
        for (text, why) in [
            ("", "not a size"),
            ("GiB", "not a size"),
            ("-1", "not a size"),
            ("1.5G", "unknown unit \".5g\""),
            ("12 parsecs", "unknown unit \"parsecs\""),
            ("0", "more than 0"),
            ("99999999999999999999", "too large"),
            ("17000000T", "too large"),
        ] {
            let err = parse_size(text).unwrap_err();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }
}
