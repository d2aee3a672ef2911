//! Behaviour of `bake_recipe::parse` as a user sees it: parsed values for good
//! recipes, and the exact `FILE:LINE:COLUMN: message` for each kind of mistake.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bake_recipe::{
    BaseRef, Compression, Config, CopyMtime, Image, Layer, Output, Overrides, Owner, Platform, Pos, Recipe,
    RecipeError, RunStep, Step, StepKind, VarValue, parse, parse_var_override,
};

fn parse_with(text: &str, overrides: &Overrides) -> Result<Recipe, RecipeError> {
    parse(Path::new("dir/recipe.toml"), text, overrides)
}

fn ok(text: &str) -> Recipe {
    match parse_with(text, &Overrides::default()) {
        Ok(recipe) => recipe,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn err_with(text: &str, overrides: &Overrides) -> String {
    match parse_with(text, overrides) {
        Ok(recipe) => panic!("expected an error, got {recipe:#?}"),
        Err(e) => e.to_string(),
    }
}

fn err(text: &str) -> String {
    err_with(text, &Overrides::default())
}

fn pos(line: usize, column: usize) -> Pos {
    Pos {
        file: PathBuf::from("dir/recipe.toml"),
        line,
        column,
    }
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

const IMAGE: &str = "[image]\nname = \"hello\"\n";

/// The steps of the only layer of `IMAGE` followed by `steps`.
fn steps(steps: &str) -> Vec<StepKind> {
    let recipe = ok(&format!("{IMAGE}[[layer]]\n{steps}"));
    recipe
        .layers
        .into_iter()
        .flat_map(|l| l.steps)
        .map(|s| s.kind)
        .collect()
}

/// The error for `IMAGE` followed by one layer holding `steps`; the layer
/// header is line 3 and the first step header line 4.
fn step_err(steps: &str) -> String {
    err(&format!("{IMAGE}[[layer]]\n{steps}"))
}

// ---- good recipes ----

#[test]
fn minimal_recipe_gets_every_default() {
    let recipe = ok(IMAGE);
    assert_eq!(
        recipe,
        Recipe {
            path: PathBuf::from("dir/recipe.toml"),
            context: PathBuf::from("dir"),
            epoch: None,
            base: BaseRef::Scratch,
            base_pos: None,
            image: Image {
                name: "hello".into(),
                tags: strings(&["latest"]),
                platform: Platform {
                    os: "linux".into(),
                    architecture: "amd64".into(),
                    variant: None
                },
                annotations: BTreeMap::new(),
            },
            output: Output {
                compression: Compression::Gzip,
                level: Some(6),
                push: vec![]
            },
            layers: vec![],
            config: Config::default(),
            variables: BTreeMap::new(),
        }
    );
}

#[test]
fn context_is_the_recipe_directory_or_dot() {
    let context = |p: &str| match parse(Path::new(p), IMAGE, &Overrides::default()) {
        Ok(r) => r.context,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(context("recipe.toml"), PathBuf::from("."));
    assert_eq!(context("a/b/recipe.toml"), PathBuf::from("a/b"));
    assert_eq!(context("/abs/recipe.toml"), PathBuf::from("/abs"));
}

/// The example in docs/recipe.md is the reference recipe: it must parse, to
/// exactly these values.
#[test]
fn the_spec_example_parses() {
    let doc = include_str!("../../../docs/recipe.md");
    let text = doc
        .split_once("```toml\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(toml, _)| toml)
        .expect("docs/recipe.md has a toml example");
    let recipe = ok(text);

    assert_eq!(recipe.epoch, Some(1_700_000_000));
    assert_eq!(recipe.base, BaseRef::Scratch);
    assert_eq!(recipe.base_pos, Some(pos(8, 8)));
    assert_eq!(
        recipe.image,
        Image {
            name: "hello".into(),
            tags: strings(&["latest", "v1.0"]),
            platform: Platform::linux_amd64(),
            annotations: map(&[("org.opencontainers.image.source", "https://example.com/hello")]),
        }
    );
    assert_eq!(
        recipe.variables,
        BTreeMap::from([
            ("debug".to_string(), VarValue::Boolean(false)),
            ("port".to_string(), VarValue::Integer(8080)),
            ("version".to_string(), VarValue::String("1.0".into())),
        ])
    );
    assert_eq!(
        recipe.output,
        Output {
            compression: Compression::Gzip,
            level: Some(6),
            push: vec![]
        }
    );

    assert_eq!(recipe.layers.len(), 3);
    let layer = &recipe.layers[0];
    assert_eq!(layer.name, "app");
    assert_eq!(layer.pos.line, 31);
    assert_eq!(layer.pos.column, 1);
    let kinds: Vec<&StepKind> = layer.steps.iter().map(|s| &s.kind).collect();
    assert_eq!(
        kinds,
        [
            &StepKind::Copy {
                src: "bin/hello".into(),
                to: "/usr/local/bin/hello".into(),
                mode: Some(0o755),
                owner: Owner { uid: 0, gid: 0 },
                exclude: strings(&["*.tmp", "target/**"]),
                mtime: CopyMtime::Epoch,
                capabilities: Some(bake_recipe::FileCaps {
                    permitted: 1 << 10,
                    inheritable: 0,
                    effective: true
                }),
            },
            &StepKind::File {
                path: "/etc/motd".into(),
                content: "hello from 1.0\n".into(),
                mode: 0o644,
                owner: Owner::default(),
                capabilities: None,
            },
            &StepKind::Dir {
                path: "/var/lib/hello".into(),
                mode: 0o750,
                owner: Owner { uid: 1000, gid: 1000 }
            },
            &StepKind::Symlink {
                path: "/usr/bin/hello".into(),
                target: "/usr/local/bin/hello".into(),
                owner: Owner::default(),
            },
            &StepKind::Unpack {
                src: "vendor/rootfs.tar.gz".into(),
                to: "/".into()
            },
        ]
    );
    assert_eq!(layer.steps[0].pos, pos(35, 3)); // the `copy =` key

    assert_eq!(recipe.layers[1].name, "packages");
    assert_eq!(
        recipe.layers[1].steps[0].kind,
        StepKind::Deb {
            src: "debs/busybox-static_1.35.0-4+deb12u1+b1_amd64.deb".into(),
            sha256: format!("sha256:{HEX}").parse().expect("a valid digest"),
        }
    );
    assert_eq!(recipe.layers[2].name, "setup");
    assert_eq!(
        recipe.layers[2].steps[0].kind,
        StepKind::Run(RunStep {
            commands: strings(&["busybox --install -s /bin", "rm /etc/placeholder"]),
            network: false,
            timeout: 300,
            user: Some("0:0".into()),
            env: map(&[("LANG", "C.UTF-8")]),
            workdir: Some("/".into()),
        })
    );

    assert_eq!(
        recipe.config,
        Config {
            entrypoint: Some(strings(&["/usr/local/bin/hello"])),
            cmd: Some(strings(&["--greet", "world"])),
            env: map(&[("PATH", "/usr/local/bin:/usr/bin:/bin"), ("GREETING", "hi")]),
            user: Some("1000:1000".into()),
            workdir: Some("/".into()),
            labels: map(&[("org.opencontainers.image.version", "1.0")]),
            expose: strings(&["8080/tcp", "53/udp"]),
            volumes: strings(&["/data"]),
            stop_signal: Some("SIGTERM".into()),
        }
    );
}

#[test]
fn layers_steps_and_positions() {
    let recipe = ok(r#"
[image]
name = "hello"

[[layer]]
  [[layer.step]]
  dir = "/a"

[[layer]]
name = "second"
  [[layer.step]]
  dir = "/b"
  [[layer.step]]
  symlink = "/c"
  target = "b"
"#);
    assert_eq!(
        recipe.layers,
        vec![
            Layer {
                name: "layer-1".into(),
                pos: pos(5, 1),
                steps: vec![Step {
                    pos: pos(7, 3),
                    kind: StepKind::Dir {
                        path: "/a".into(),
                        mode: 0o755,
                        owner: Owner::default()
                    },
                }],
            },
            Layer {
                name: "second".into(),
                pos: pos(9, 1),
                steps: vec![
                    Step {
                        pos: pos(12, 3),
                        kind: StepKind::Dir {
                            path: "/b".into(),
                            mode: 0o755,
                            owner: Owner::default()
                        },
                    },
                    Step {
                        pos: pos(14, 3),
                        kind: StepKind::Symlink {
                            path: "/c".into(),
                            target: "b".into(),
                            owner: Owner::default()
                        },
                    },
                ],
            },
        ]
    );
}

#[test]
fn inline_tables_work_like_headers() {
    let recipe = ok(r#"
image = { name = "hello" }
layer = [ { name = "x", step = [ { dir = "/d" } ] } ]
"#);
    assert_eq!(recipe.layers[0].name, "x");
    assert_eq!(recipe.layers[0].pos, pos(3, 11));
    assert_eq!(recipe.layers[0].steps[0].pos, pos(3, 36)); // the `dir` key
}

#[test]
fn paths_are_normalised() {
    assert_eq!(
        steps(
            r#"
[[layer.step]]
copy = "./a//b/../c/"
to = "//usr/./local/bin/"
[[layer.step]]
copy = "."
to = "/"
[[layer.step]]
unpack = "x/../root.tar"
[[layer.step]]
unpack = "root.tar"
to = "/opt/../srv/"
[[layer.step]]
file = "/etc//motd"
content = ""
[[layer.step]]
dir = "/"
[[layer.step]]
symlink = "/a/./b"
target = "../../x/./y"
"#
        ),
        vec![
            StepKind::Copy {
                src: "a/c".into(),
                to: "/usr/local/bin".into(),
                mode: None,
                owner: Owner::default(),
                exclude: vec![],
                mtime: CopyMtime::Epoch,
                capabilities: None,
            },
            StepKind::Copy {
                src: ".".into(),
                to: "/".into(),
                mode: None,
                owner: Owner::default(),
                exclude: vec![],
                mtime: CopyMtime::Epoch,
                capabilities: None,
            },
            StepKind::Unpack {
                src: "root.tar".into(),
                to: "/".into()
            },
            StepKind::Unpack {
                src: "root.tar".into(),
                to: "/srv".into()
            },
            StepKind::File {
                path: "/etc/motd".into(),
                content: "".into(),
                mode: 0o644,
                owner: Owner::default(),
                capabilities: None,
            },
            StepKind::Dir {
                path: "/".into(),
                mode: 0o755,
                owner: Owner::default()
            },
            StepKind::Symlink {
                path: "/a/b".into(),
                target: "../../x/./y".into(),
                owner: Owner::default()
            },
        ]
    );
}

#[test]
fn modes_and_owners() {
    assert_eq!(
        steps(
            r#"
[[layer.step]]
file = "/a"
content = "x"
mode = "0600"
owner = "1000"
[[layer.step]]
file = "/b"
content = "x"
mode = 0o4755
owner = "1:2"
[[layer.step]]
dir = "/c"
mode = "0o700"
[[layer.step]]
dir = "/d"
mode = 0
"#
        ),
        vec![
            StepKind::File {
                path: "/a".into(),
                content: "x".into(),
                mode: 0o600,
                owner: Owner { uid: 1000, gid: 1000 },
                capabilities: None,
            },
            StepKind::File {
                path: "/b".into(),
                content: "x".into(),
                mode: 0o4755,
                owner: Owner { uid: 1, gid: 2 },
                capabilities: None,
            },
            StepKind::Dir {
                path: "/c".into(),
                mode: 0o700,
                owner: Owner::default()
            },
            StepKind::Dir {
                path: "/d".into(),
                mode: 0,
                owner: Owner::default()
            },
        ]
    );
}

#[test]
fn copy_mtime_defaults_to_the_epoch_and_accepts_source() {
    let mtimes: Vec<CopyMtime> = steps(
        r#"
[[layer.step]]
copy = "a"
to = "/a"
[[layer.step]]
copy = "a"
to = "/a"
mtime = "epoch"
[[layer.step]]
copy = "a"
to = "/a"
mtime = "source"
[[layer.step]]
copy = "a"
to = "/a"
mtime = "source-unclamped"
"#,
    )
    .into_iter()
    .map(|k| match k {
        StepKind::Copy { mtime, .. } => mtime,
        other => panic!("{other:?}"),
    })
    .collect();
    assert_eq!(
        mtimes,
        [
            CopyMtime::Epoch,
            CopyMtime::Epoch,
            CopyMtime::Source,
            CopyMtime::SourceUnclamped
        ]
    );
    let e = step_err("[[layer.step]]\ncopy = \"a\"\nto = \"/a\"\nmtime = \"host\"\n");
    assert!(e.contains(":7:9: invalid mtime `host`"), "{e}");
    let e = step_err("[[layer.step]]\nfile = \"/a\"\ncontent = \"\"\nmtime = \"source\"\n");
    assert!(e.contains("mtime"), "{e}");
}

#[test]
fn capabilities_on_copy_and_file_steps_are_parsed_and_checked() {
    let caps: Vec<Option<bake_recipe::FileCaps>> = steps(
        r#"
[[layer.step]]
copy = "a"
to = "/a"
capabilities = "cap_net_raw+ep"
[[layer.step]]
file = "/usr/bin/x"
content = ""
mode = 0o755
capabilities = "cap_net_bind_service,cap_net_raw=eip"
[[layer.step]]
file = "/b"
content = ""
"#,
    )
    .into_iter()
    .map(|k| match k {
        StepKind::Copy { capabilities, .. } | StepKind::File { capabilities, .. } => capabilities,
        other => panic!("{other:?}"),
    })
    .collect();
    let net_raw = 1 << 13;
    let bind = 1 << 10;
    assert_eq!(
        caps,
        [
            Some(bake_recipe::FileCaps {
                permitted: net_raw,
                inheritable: 0,
                effective: true
            }),
            Some(bake_recipe::FileCaps {
                permitted: net_raw | bind,
                inheritable: net_raw | bind,
                effective: true
            }),
            None
        ]
    );
    let e = step_err("[[layer.step]]\ncopy = \"a\"\nto = \"/a\"\ncapabilities = \"cap_net_rwa+ep\"\n");
    assert!(
        e.contains(":7:16: invalid capabilities `cap_net_rwa+ep`: unknown capability \"cap_net_rwa\""),
        "{e}"
    );
    let e = step_err(
        "[[layer.step]]\nfile = \"/a\"\ncontent = \"\"\ncapabilities = \"cap_net_raw+ep cap_chown+p\"\n",
    );
    assert!(e.contains(":7:16: invalid capabilities"), "{e}");
    assert!(e.contains("one effective flag"), "{e}");
    let e = step_err("[[layer.step]]\nfile = \"/a\"\ncontent = \"\"\ncapabilities = 13\n");
    assert!(e.contains(":7:16:") && e.contains("capabilities"), "{e}");
    // Only regular files carry capabilities.
    let e = step_err("[[layer.step]]\ndir = \"/a\"\ncapabilities = \"cap_net_raw+ep\"\n");
    assert!(e.contains(":6:1:") && e.contains("capabilities"), "{e}");
}

#[test]
fn image_fields() {
    let recipe = ok(r#"
[image]
name = "registry.example/team/hello-world__x"
tags = ["1.0", "latest", "1.0", "_b-c.d"]
platform = "linux/arm64/v8"
annotations = { a = "1", "b.c" = "2" }
"#);
    assert_eq!(recipe.image.name, "registry.example/team/hello-world__x");
    assert_eq!(recipe.image.tags, strings(&["1.0", "latest", "_b-c.d"]));
    assert_eq!(recipe.image.platform.to_string(), "linux/arm64/v8");
    assert_eq!(recipe.image.annotations, map(&[("a", "1"), ("b.c", "2")]));

    let recipe = ok(&format!("{IMAGE}tags = []\n"));
    assert!(recipe.image.tags.is_empty());
}

#[test]
fn output_fields_and_level_defaults() {
    let output = |body: &str| ok(&format!("{IMAGE}[output]\n{body}")).output;
    assert_eq!(
        output(""),
        Output {
            compression: Compression::Gzip,
            level: Some(6),
            push: vec![]
        }
    );
    assert_eq!(output("compression = \"zstd\"\n").level, Some(3));
    assert_eq!(output("compression = \"zstd\"\nlevel = 19\n").level, Some(19));
    assert_eq!(output("compression = \"gzip\"\nlevel = 1\n").level, Some(1));
    assert_eq!(
        output("compression = \"none\"\n"),
        Output {
            compression: Compression::None,
            level: None,
            push: vec![]
        }
    );
    assert_eq!(
        output("push = [\"localhost:5000/hello:1\", \"ghcr.io/x/y\"]\n").push,
        strings(&["localhost:5000/hello:1", "ghcr.io/x/y"])
    );
}

#[test]
fn bases() {
    let base = |b: &str| {
        let r = ok(&format!("base = \"{b}\"\n{IMAGE}"));
        assert_eq!(r.base_pos, Some(pos(1, 8)));
        r.base
    };
    let digest = format!("sha256:{}", "0123456789abcdef".repeat(4));
    assert_eq!(base("scratch"), BaseRef::Scratch);
    assert_eq!(
        base("oci:./images/base/"),
        BaseRef::OciLayout {
            path: "images/base".into(),
            tag: None,
            digest: None
        }
    );
    assert_eq!(
        base("oci:images/base:v1.2"),
        BaseRef::OciLayout {
            path: "images/base".into(),
            tag: Some("v1.2".into()),
            digest: None
        }
    );
    let pinned = base(&format!("oci:base@{digest}"));
    assert_eq!(
        pinned,
        BaseRef::OciLayout {
            path: "base".into(),
            tag: None,
            digest: digest.parse().ok()
        }
    );
    assert_eq!(pinned.to_string(), format!("oci:base@{digest}"));
    assert_eq!(
        base("docker-archive:base.tar"),
        BaseRef::DockerArchive {
            path: "base.tar".into()
        }
    );
    let reference = format!("docker.io/library/debian:12@{digest}");
    assert_eq!(
        base(&reference),
        BaseRef::Registry {
            reference: reference.clone()
        }
    );
}

#[test]
fn config_expose_accepts_integers_and_dedupes() {
    let config = ok(&format!("{IMAGE}[config]\nexpose = [80, \"80\", \"80/tcp\", \"53/udp\"]\nvolumes = [\"/data/\", \"/data\"]\ncmd = []\n")).config;
    assert_eq!(config.expose, strings(&["80/tcp", "53/udp"]));
    assert_eq!(config.volumes, strings(&["/data"]));
    assert_eq!(config.cmd, Some(vec![]));
    assert_eq!(config.entrypoint, None);
}

// ---- variables ----

const VARS: &str = r#"[variables]
version = "1.0"
port = 8080
debug = false

[image]
name = "hello"
annotations = { v = "v${version}", p = "p${port}", d = "d${debug}", esc = "$${version}", dollars = "$$x$", twice = "${version}${version}" }
"#;

#[test]
fn interpolation_of_every_type() {
    let recipe = ok(VARS);
    assert_eq!(
        recipe.image.annotations,
        map(&[
            ("v", "v1.0"),
            ("p", "p8080"),
            ("d", "dfalse"),
            ("esc", "${version}"),
            ("dollars", "$$x$"),
            ("twice", "1.01.0"),
        ])
    );
}

#[test]
fn interpolation_reaches_every_string() {
    let recipe = ok(r#"
base = "oci:${d}/base"
[variables]
d = "img"
n = "hello"
m = "0700"
u = "7"
[image]
name = "${n}"
platform = "linux/${n}"
annotations = { k = "${n}" }
[output]
push = ["r/${n}"]
[[layer]]
name = "l-${n}"
  [[layer.step]]
  copy = "${d}"
  to = "/${n}"
  mode = "${m}"
  owner = "${u}"
  exclude = ["${n}.tmp"]
  [[layer.step]]
  file = "/f"
  content = "${n} $${n}"
[config]
env = { A = "${n}" }
cmd = ["${n}"]
user = "${u}"
"#);
    assert_eq!(
        recipe.base,
        BaseRef::OciLayout {
            path: "img/base".into(),
            tag: None,
            digest: None
        }
    );
    assert_eq!(recipe.image.name, "hello");
    assert_eq!(recipe.image.platform.architecture, "hello");
    assert_eq!(recipe.image.annotations, map(&[("k", "hello")]));
    assert_eq!(recipe.output.push, strings(&["r/hello"]));
    assert_eq!(recipe.layers[0].name, "l-hello");
    assert_eq!(
        recipe.layers[0].steps[0].kind,
        StepKind::Copy {
            src: "img".into(),
            to: "/hello".into(),
            mode: Some(0o700),
            owner: Owner { uid: 7, gid: 7 },
            exclude: strings(&["hello.tmp"]),
            mtime: CopyMtime::Epoch,
            capabilities: None,
        }
    );
    assert_eq!(
        recipe.layers[0].steps[1].kind,
        StepKind::File {
            path: "/f".into(),
            content: "hello ${n}".into(),
            mode: 0o644,
            owner: Owner::default(),
            capabilities: None,
        }
    );
    assert_eq!(recipe.config.env, map(&[("A", "hello")]));
    assert_eq!(recipe.config.cmd, Some(strings(&["hello"])));
    assert_eq!(recipe.config.user, Some("7".into()));
}

#[test]
fn variable_values_are_not_interpolated() {
    let recipe = ok(
        "[variables]\na = \"${b}\"\nb = \"x\"\n[image]\nname = \"hello\"\nannotations = { k = \"${a}\" }\n",
    );
    assert_eq!(recipe.variables.get("a"), Some(&VarValue::String("${b}".into())));
    assert_eq!(recipe.image.annotations, map(&[("k", "${b}")]));
}

#[test]
fn overrides_are_typed_and_cli_wins() {
    let overrides = Overrides {
        cli: vec![("version".into(), "2.0".into()), ("port".into(), "-1".into())],
        env: vec![
            ("version".into(), "env".into()),
            ("debug".into(), "true".into()),
            ("port".into(), "x".into()),
        ],
    };
    let recipe = match parse_with(VARS, &overrides) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        recipe.variables,
        BTreeMap::from([
            ("debug".to_string(), VarValue::Boolean(true)),
            ("port".to_string(), VarValue::Integer(-1)),
            ("version".to_string(), VarValue::String("2.0".into())),
        ])
    );
    assert_eq!(
        recipe.image.annotations.get("v").map(String::as_str),
        Some("v2.0")
    );
    assert_eq!(recipe.image.annotations.get("p").map(String::as_str), Some("p-1"));
    assert_eq!(
        recipe.image.annotations.get("d").map(String::as_str),
        Some("dtrue")
    );
}

#[test]
fn parse_var_override_splits_at_the_first_equals() {
    assert_eq!(parse_var_override("a=b=c"), Ok(("a".into(), "b=c".into())));
    assert_eq!(parse_var_override("_x1="), Ok(("_x1".into(), "".into())));
    for bad in ["novalue", "=x", "1a=x", "a-b=x", ""] {
        assert_eq!(
            parse_var_override(bad).map_err(|e| e.to_string()),
            Err(format!("invalid --var `{bad}`: expected NAME=VALUE"))
        );
    }
}

#[test]
fn variable_errors() {
    assert_eq!(
        err("[image]\nname = \"x\"\ntags = [\"${nope}\"]\n"),
        "dir/recipe.toml:3:9: undefined variable `nope`"
    );
    assert_eq!(
        err("[image]\nname = \"x\"\ntags = [\"a${b\"]\n"),
        "dir/recipe.toml:3:9: unterminated `${` (write `$${` for a literal `${`)"
    );
    assert_eq!(
        err("[image]\nname = \"x${}\"\n"),
        "dir/recipe.toml:2:8: invalid variable name ``: use letters, digits and `_`, not starting with a digit"
    );
    assert_eq!(
        err("[variables]\n\"a-b\" = 1\n"),
        "dir/recipe.toml:2:1: invalid variable name `a-b`: use letters, digits and `_`, not starting with a digit"
    );
    assert_eq!(
        err("[variables]\nx = 1.5\n"),
        "dir/recipe.toml:2:5: `variables.x` must be a string, integer or boolean, found float"
    );
    assert_eq!(
        err("variables = 1\n"),
        "dir/recipe.toml:1:13: `variables` must be a table, found integer"
    );
}

#[test]
fn override_errors() {
    let cli = |name: &str, value: &str| Overrides {
        cli: vec![(name.into(), value.into())],
        env: vec![],
    };
    let env = |name: &str, value: &str| Overrides {
        cli: vec![],
        env: vec![(name.into(), value.into())],
    };
    assert_eq!(
        err_with(VARS, &cli("port", "80x")),
        "dir/recipe.toml:3:1: variable `port` is an integer, but --var sets it to `80x`"
    );
    assert_eq!(
        err_with(VARS, &env("debug", "yes")),
        "dir/recipe.toml:4:1: variable `debug` is a boolean (true or false), but BAKE_VAR_debug sets it to `yes`"
    );
    assert_eq!(
        err_with(VARS, &cli("nope", "1")),
        "dir/recipe.toml:1:1: --var sets undeclared variable `nope`"
    );
    assert_eq!(
        err_with(&format!("{IMAGE}[variables]\na = 1\n"), &env("b", "1")),
        "dir/recipe.toml:3:1: BAKE_VAR_b sets undeclared variable `b`"
    );
    // No [variables] at all: the start of the file.
    assert_eq!(
        err_with(IMAGE, &cli("x", "1")),
        "dir/recipe.toml:1:1: --var sets undeclared variable `x`"
    );
    // A bad environment value does not matter when the command line sets the variable.
    let both = Overrides {
        cli: vec![("port".into(), "1".into())],
        env: vec![("port".into(), "x".into())],
    };
    assert!(parse_with(VARS, &both).is_ok());
}

#[test]
fn expansion_is_bounded() {
    let big = "x".repeat(1 << 20);
    let refs = "${v}".repeat(65);
    let text = format!(
        "[variables]\nv = \"{big}\"\n[image]\nname = \"x\"\n[[layer]]\n[[layer.step]]\nfile = \"/f\"\ncontent = \"{refs}\"\n"
    );
    assert_eq!(
        err(&text),
        "dir/recipe.toml:8:11: variable expansion exceeds 67108864 bytes"
    );
}

// ---- structural errors ----

#[test]
fn syntax_errors_point_into_the_text() {
    assert_eq!(
        err("[image]\nname = \n"),
        "dir/recipe.toml:2:8: invalid toml: string values must be quoted, expected literal string"
    );
    assert_eq!(
        err("a = 1\na = 2\n"),
        "dir/recipe.toml:2:1: invalid toml: duplicate key"
    );
}

#[test]
fn unknown_keys() {
    assert_eq!(
        err("nmae = 1\n[image]\nname = \"x\"\n"),
        "dir/recipe.toml:1:1: unknown key `nmae` in the recipe"
    );
    assert_eq!(
        err("[image]\nname = \"x\"\ntag = \"x\"\n"),
        "dir/recipe.toml:3:1: unknown key `tag` in [image]"
    );
    assert_eq!(
        err(&format!("{IMAGE}[output]\ncompress = 1\n")),
        "dir/recipe.toml:4:1: unknown key `compress` in [output]"
    );
    assert_eq!(
        err(&format!("{IMAGE}[config]\nports = 1\n")),
        "dir/recipe.toml:4:1: unknown key `ports` in [config]"
    );
    assert_eq!(
        step_err("nmae = \"x\"\n"),
        "dir/recipe.toml:4:1: unknown key `nmae` in [[layer]]"
    );
    assert_eq!(
        step_err("[[layer.step]]\ndir = \"/x\"\nowner_ = \"1\"\n"),
        "dir/recipe.toml:6:1: unknown key `owner_` in [[layer.step]]"
    );
    // The first unknown key in the text is reported, not the first alphabetically.
    assert_eq!(
        err("[image]\nname = \"x\"\nzz = 1\naa = 2\n"),
        "dir/recipe.toml:3:1: unknown key `zz` in [image]"
    );
}

#[test]
fn wrong_types() {
    assert_eq!(
        err("epoch = \"1\"\n[image]\nname = \"x\"\n"),
        "dir/recipe.toml:1:9: `epoch` must be an integer, found string"
    );
    assert_eq!(
        err("image = \"x\"\n"),
        "dir/recipe.toml:1:9: `image` must be a table, found string"
    );
    assert_eq!(
        err("[image]\nname = 1\n"),
        "dir/recipe.toml:2:8: `name` must be a string, found integer"
    );
    assert_eq!(
        err("[image]\nname = \"x\"\ntags = \"latest\"\n"),
        "dir/recipe.toml:3:8: `tags` must be an array of strings, found string"
    );
    assert_eq!(
        err("[image]\nname = \"x\"\ntags = [\"a\", 1]\n"),
        "dir/recipe.toml:3:14: `tags[1]` must be a string, found integer"
    );
    assert_eq!(
        err("[image]\nname = \"x\"\nannotations = { a = true }\n"),
        "dir/recipe.toml:3:21: `annotations.a` must be a string, found boolean"
    );
    assert_eq!(
        err(&format!("{IMAGE}[layer]\nname = \"x\"\n")),
        "dir/recipe.toml:3:1: `layer` must be an array of tables, found table"
    );
    assert_eq!(
        err(&format!("layer = [1]\n{IMAGE}")),
        "dir/recipe.toml:1:10: `layer[0]` must be a table, found integer"
    );
    assert_eq!(
        step_err("step = 1\n"),
        "dir/recipe.toml:4:8: `step` must be an array of tables, found integer"
    );
    assert_eq!(
        step_err("step = [\"x\"]\n"),
        "dir/recipe.toml:4:9: `step[0]` must be a table, found string"
    );
    assert_eq!(
        step_err("[[layer.step]]\ndir = \"/x\"\nmode = 1.5\n"),
        "dir/recipe.toml:6:8: `mode` must be an octal integer or string, found float"
    );
    assert_eq!(
        step_err("[[layer.step]]\ndir = \"/x\"\nowner = 0\n"),
        "dir/recipe.toml:6:9: `owner` must be a string, found integer"
    );
    assert_eq!(
        step_err("[[layer.step]]\ndir = 1\n"),
        "dir/recipe.toml:5:7: `dir` must be a string, found integer"
    );
    assert_eq!(
        step_err("[[layer.step]]\ncopy = \"a\"\nto = \"/\"\nexclude = \"*.o\"\n"),
        "dir/recipe.toml:7:11: `exclude` must be an array of strings, found string"
    );
    assert_eq!(
        err(&format!("{IMAGE}[config]\nexpose = [true]\n")),
        "dir/recipe.toml:4:11: `expose[0]` must be a string or an integer, found boolean"
    );
    assert_eq!(
        err(&format!("{IMAGE}[config]\nenv = [\"A=1\"]\n")),
        "dir/recipe.toml:4:7: `env` must be a table of strings, found array"
    );
    assert_eq!(
        err(&format!("{IMAGE}[output]\nlevel = \"6\"\n")),
        "dir/recipe.toml:4:9: `level` must be an integer, found string"
    );
}

#[test]
fn missing_keys() {
    assert_eq!(err(""), "dir/recipe.toml:1:1: missing required table [image]");
    assert_eq!(
        err("epoch = 1\n[image]\ntags = []\n"),
        "dir/recipe.toml:2:1: missing required key `name` in [image]"
    );
    assert_eq!(
        step_err("[[layer.step]]\ncopy = \"a\"\n"),
        "dir/recipe.toml:4:1: missing required key `to` in a copy step"
    );
    assert_eq!(
        step_err("[[layer.step]]\nfile = \"/a\"\n"),
        "dir/recipe.toml:4:1: missing required key `content` in a file step"
    );
    assert_eq!(
        step_err("[[layer.step]]\nsymlink = \"/a\"\n"),
        "dir/recipe.toml:4:1: missing required key `target` in a symlink step"
    );
}

#[test]
fn step_kind_errors() {
    assert_eq!(
        step_err("[[layer.step]]\nmode = 0o644\n"),
        "dir/recipe.toml:4:1: step has no kind: expected one of `copy`, `file`, `dir`, `symlink`, `unpack`, `deb` or `run`"
    );
    assert_eq!(
        step_err("[[layer.step]]\nfile = \"/a\"\ncopy = \"a\"\n"),
        "dir/recipe.toml:6:1: step has two kinds: `file` and `copy`"
    );
    assert_eq!(
        step_err("[[layer.step]]\ncopy = \"a\"\nto = \"/\"\ntarget = \"x\"\n"),
        "dir/recipe.toml:7:1: `target` is not allowed in a copy step"
    );
    assert_eq!(
        step_err("[[layer.step]]\nunpack = \"a.tar\"\nmode = 0o644\n"),
        "dir/recipe.toml:6:1: `mode` is not allowed in an unpack step"
    );
    assert_eq!(
        step_err("[[layer.step]]\ndir = \"/a\"\ncontent = \"\"\n"),
        "dir/recipe.toml:6:1: `content` is not allowed in a dir step"
    );
    assert_eq!(
        step_err("[[layer.step]]\nsymlink = \"/a\"\ntarget = \"b\"\nmode = 0o777\n"),
        "dir/recipe.toml:7:1: `mode` is not allowed in a symlink step"
    );
    assert_eq!(
        step_err("[[layer.step]]\nfile = \"/a\"\ncontent = \"\"\nexclude = []\n"),
        "dir/recipe.toml:7:1: `exclude` is not allowed in a file step"
    );
    assert_eq!(
        step_err("[[layer.step]]\nrun = \"make\"\nmode = 0o644\n"),
        "dir/recipe.toml:6:1: `mode` is not allowed in a run step"
    );
    assert_eq!(
        step_err("[[layer.step]]\ndeb = \"a.deb\"\nto = \"/\"\n"),
        "dir/recipe.toml:6:1: `to` is not allowed in a deb step"
    );
}

#[test]
fn layer_errors() {
    assert_eq!(
        err(&format!("{IMAGE}[[layer]]\nname = \"x\"\n")),
        "dir/recipe.toml:3:1: layer has no steps"
    );
    assert_eq!(
        err(&format!("{IMAGE}[[layer]]\nstep = []\n")),
        "dir/recipe.toml:3:1: layer has no steps"
    );
    assert_eq!(
        err(&format!(
            "{IMAGE}[[layer]]\n[[layer.step]]\ndir = \"/a\"\n[[layer]]\nname = \"layer-1\"\n[[layer.step]]\ndir = \"/b\"\n"
        )),
        "dir/recipe.toml:7:8: duplicate layer name `layer-1`"
    );
    assert_eq!(
        err(&format!("{IMAGE}[[layer]]\nname = \"\"\n")),
        "dir/recipe.toml:4:8: invalid layer name ``: must be non-empty, without control characters"
    );
}

// ---- invalid values ----

#[test]
fn invalid_modes() {
    let mode = |m: &str| step_err(&format!("[[layer.step]]\ndir = \"/a\"\nmode = {m}\n"));
    assert_eq!(
        mode("0o10000"),
        "dir/recipe.toml:6:8: invalid mode `0o10000`: must be between 0 and 0o7777"
    );
    assert_eq!(
        mode("\"10000\""),
        "dir/recipe.toml:6:8: invalid mode `10000`: must be between 0 and 0o7777"
    );
    assert_eq!(
        mode("\"0758\""),
        "dir/recipe.toml:6:8: invalid mode `0758`: expected octal digits, such as \"0755\""
    );
    assert_eq!(
        mode("\"rwx\""),
        "dir/recipe.toml:6:8: invalid mode `rwx`: expected octal digits, such as \"0755\""
    );
    assert_eq!(
        mode("755"),
        "dir/recipe.toml:6:8: invalid mode `755`: decimal modes are refused: write it in octal, such as `0o755` or \"0755\""
    );
}

#[test]
fn invalid_owners() {
    let owner = |o: &str| step_err(&format!("[[layer.step]]\ndir = \"/a\"\nowner = \"{o}\"\n"));
    let msg = |o: &str| {
        format!("dir/recipe.toml:6:9: invalid owner `{o}`: expected \"UID:GID\" or \"UID\" with numeric ids")
    };
    for bad in ["root", "1:", ":1", "1:2:3", "-1", "4294967296"] {
        assert_eq!(owner(bad), msg(bad));
    }
}

#[test]
fn invalid_ports() {
    let msg = |p: &str, col: usize| {
        format!(
            "dir/recipe.toml:4:{col}: invalid port `{p}`: expected \"PORT\" or \"PORT/PROTO\" with PORT 1-65535 and PROTO tcp, udp or sctp"
        )
    };
    assert_eq!(
        err(&format!("{IMAGE}[config]\nexpose = [\"80/http\"]\n")),
        msg("80/http", 11)
    );
    assert_eq!(err(&format!("{IMAGE}[config]\nexpose = [\"0\"]\n")), msg("0", 11));
    assert_eq!(
        err(&format!("{IMAGE}[config]\nexpose = [\"1\", 65536]\n")),
        msg("65536", 16)
    );
}

#[test]
fn invalid_image_values() {
    let name_msg = "expected lower-case [a-z0-9] components separated by `.`, `_`, `__`, `-` or `/`";
    for bad in ["Hello", "a..b", "-a", "a/", "", "a:1"] {
        assert_eq!(
            err(&format!("[image]\nname = \"{bad}\"\n")),
            format!("dir/recipe.toml:2:8: invalid image name `{bad}`: {name_msg}")
        );
    }
    assert_eq!(
        err("[image]\nname = \"x\"\ntags = [\"ok\", \".bad\"]\n"),
        "dir/recipe.toml:3:15: invalid tag `.bad`: expected up to 128 of [A-Za-z0-9_.-], not starting with `.` or `-`"
    );
    for bad in ["linux", "linux/", "Linux/amd64", "linux/arm64/v8/x"] {
        assert_eq!(
            err(&format!("[image]\nname = \"x\"\nplatform = \"{bad}\"\n")),
            format!(
                "dir/recipe.toml:3:12: invalid platform `{bad}`: expected \"OS/ARCH\" or \"OS/ARCH/VARIANT\" in lower case, such as \"linux/amd64\""
            )
        );
    }
    // The recipe takes exactly the platforms the CLI and image indexes do
    // (one syntax, bake_oci::Platform): it refused `.` before.
    for text in [
        "linux/amd64",
        "linux/arm/v7",
        "linux/ppc64le",
        "freebsd/riscv64",
        "linux/arm64/v8.2",
        "linux/a_b",
        "l/a.b/",
        "linux/AMD64",
        "linux//amd64",
        "/linux/amd64",
    ] {
        let recipe = parse_with(
            &format!("[image]\nname = \"x\"\nplatform = \"{text}\"\n"),
            &Overrides::default(),
        );
        let cli = text.parse::<Platform>();
        assert_eq!(recipe.is_ok(), cli.is_ok(), "{text}");
        if let (Ok(r), Ok(c)) = (recipe, cli) {
            assert_eq!(r.image.platform, c, "{text}");
        }
    }
    assert_eq!(
        err("[image]\nname = \"x\"\nannotations = { \"\" = \"v\" }\n"),
        "dir/recipe.toml:3:17: invalid key ``: `annotations` keys must not be empty"
    );
}

#[test]
fn invalid_output_values() {
    assert_eq!(
        err(&format!("{IMAGE}[output]\ncompression = \"lz4\"\n")),
        "dir/recipe.toml:4:15: invalid compression `lz4`: expected \"gzip\", \"zstd\" or \"none\""
    );
    assert_eq!(
        err(&format!("{IMAGE}[output]\nlevel = 10\n")),
        "dir/recipe.toml:4:9: invalid level `10`: gzip levels are 1-9"
    );
    assert_eq!(
        err(&format!("{IMAGE}[output]\nlevel = 0\n")),
        "dir/recipe.toml:4:9: invalid level `0`: gzip levels are 1-9"
    );
    assert_eq!(
        err(&format!("{IMAGE}[output]\ncompression = \"zstd\"\nlevel = 20\n")),
        "dir/recipe.toml:5:9: invalid level `20`: zstd levels are 1-19"
    );
    assert_eq!(
        err(&format!("{IMAGE}[output]\ncompression = \"none\"\nlevel = 1\n")),
        "dir/recipe.toml:5:9: invalid level `1`: compression \"none\" takes no level"
    );
}

#[test]
fn invalid_epoch() {
    assert_eq!(
        err("epoch = -1\n[image]\nname = \"x\"\n"),
        "dir/recipe.toml:1:9: invalid epoch `-1`: must not be negative"
    );
    assert_eq!(
        err("epoch = 99999999999999999999\n[image]\nname = \"x\"\n"),
        "dir/recipe.toml:1:9: invalid integer `99999999999999999999`: out of range for a 64-bit signed integer"
    );
}

#[test]
fn invalid_bases() {
    let base = |b: &str| err(&format!("base = \"{b}\"\n{IMAGE}"));
    assert_eq!(
        base(""),
        "dir/recipe.toml:1:8: invalid base ``: must not be empty"
    );
    assert_eq!(
        base("debian 12"),
        "dir/recipe.toml:1:8: invalid base `debian 12`: a registry reference cannot contain whitespace"
    );
    assert_eq!(
        base("oci:"),
        "dir/recipe.toml:1:8: invalid base `oci:`: missing the layout path after `oci:`"
    );
    assert_eq!(
        base("oci:img@sha256:abc"),
        "dir/recipe.toml:1:8: invalid base `oci:img@sha256:abc`: expected a digest `sha256:` and 64 lower-case hex digits after `@`"
    );
    assert_eq!(
        base("oci:img:-x"),
        "dir/recipe.toml:1:8: invalid base `oci:img:-x`: invalid tag: expected up to 128 of [A-Za-z0-9_.-], not starting with `.` or `-`"
    );
    assert_eq!(
        base("oci:../img"),
        "dir/recipe.toml:1:8: source path `../img` leaves the build context"
    );
    assert_eq!(
        base("docker-archive:/tmp/x.tar"),
        "dir/recipe.toml:1:8: source path `/tmp/x.tar` must be relative to the build context"
    );
}

#[test]
fn paths_that_escape() {
    assert_eq!(
        step_err("[[layer.step]]\ncopy = \"a/../../etc\"\nto = \"/\"\n"),
        "dir/recipe.toml:5:8: source path `a/../../etc` leaves the build context"
    );
    assert_eq!(
        step_err("[[layer.step]]\ncopy = \"/etc/passwd\"\nto = \"/\"\n"),
        "dir/recipe.toml:5:8: source path `/etc/passwd` must be relative to the build context"
    );
    assert_eq!(
        step_err("[[layer.step]]\nunpack = \"../x.tar\"\n"),
        "dir/recipe.toml:5:10: source path `../x.tar` leaves the build context"
    );
    assert_eq!(
        step_err("[[layer.step]]\ncopy = \"a\"\nto = \"/a/../..\"\n"),
        "dir/recipe.toml:6:6: destination `/a/../..` leaves `/`"
    );
    assert_eq!(
        step_err("[[layer.step]]\ncopy = \"a\"\nto = \"usr/bin\"\n"),
        "dir/recipe.toml:6:6: destination `usr/bin` must be an absolute path"
    );
    assert_eq!(
        step_err("[[layer.step]]\ndir = \"/..\"\n"),
        "dir/recipe.toml:5:7: destination `/..` leaves `/`"
    );
    assert_eq!(
        step_err("[[layer.step]]\nfile = \"etc/motd\"\ncontent = \"\"\n"),
        "dir/recipe.toml:5:8: destination `etc/motd` must be an absolute path"
    );
    assert_eq!(
        step_err("[[layer.step]]\nfile = \"/\"\ncontent = \"\"\n"),
        "dir/recipe.toml:5:8: invalid path `/`: `/` cannot be replaced"
    );
    assert_eq!(
        step_err("[[layer.step]]\nsymlink = \"/a/../../b\"\ntarget = \"x\"\n"),
        "dir/recipe.toml:5:11: destination `/a/../../b` leaves `/`"
    );
    assert_eq!(
        step_err("[[layer.step]]\ncopy = \"\"\nto = \"/\"\n"),
        "dir/recipe.toml:5:8: invalid path ``: must not be empty"
    );
    assert_eq!(
        step_err("[[layer.step]]\nsymlink = \"/a\"\ntarget = \"\"\n"),
        "dir/recipe.toml:6:10: invalid symlink target ``: must be non-empty, without NUL bytes"
    );
    assert_eq!(
        err(&format!("{IMAGE}[config]\nworkdir = \"app\"\n")),
        "dir/recipe.toml:4:11: destination `app` must be an absolute path"
    );
    assert_eq!(
        err(&format!("{IMAGE}[config]\nvolumes = [\"/..\"]\n")),
        "dir/recipe.toml:4:12: destination `/..` leaves `/`"
    );
}

#[test]
fn config_env_names() {
    assert_eq!(
        err(&format!("{IMAGE}[config]\nenv = {{ \"A=B\" = \"1\" }}\n")),
        "dir/recipe.toml:4:9: invalid environment variable name `A=B`: must not contain `=` or NUL"
    );
}

#[test]
fn errors_escape_control_characters_and_know_their_position() {
    let e = match parse_with("[image]\nname = \"a\\nb\"\n", &Overrides::default()) {
        Err(e) => e,
        Ok(r) => panic!("{r:?}"),
    };
    assert_eq!(e.pos(), Some(&pos(2, 8)));
    assert!(
        e.to_string()
            .starts_with("dir/recipe.toml:2:8: invalid image name `a\\nb`: "),
        "{e}"
    );
    assert_eq!(parse_var_override("x").map_err(|e| e.pos().cloned()), Err(None));
}

#[test]
fn columns_count_characters_not_bytes() {
    assert_eq!(
        err("# é\n[image] # ü\nname = \"x\"\n\"é\" = 1\n"),
        "dir/recipe.toml:4:1: unknown key `é` in [image]"
    );
    assert_eq!(
        err("[image]\nname = \"x\"\nannotations = { \"é\" = \"üü\", b = 1 }\n"),
        "dir/recipe.toml:3:33: `annotations.b` must be a string, found integer"
    );
}

/// Arbitrary and truncated inputs return an error rather than panicking.
#[test]
fn garbage_does_not_panic() {
    let doc = include_str!("../../../docs/recipe.md");
    let overrides = Overrides {
        cli: vec![("version".into(), "x".into())],
        env: vec![("port".into(), "1".into())],
    };
    for end in 0..doc.len() {
        if let Some(prefix) = doc.get(..end) {
            let _ = parse_with(prefix, &overrides);
        }
    }
    for text in [
        "\u{feff}[image]\nname=\"x\"",
        "[[layer]]\n[[layer.step]]",
        "[image\n",
        "\0",
        "[a.b.c.d]",
        "x = [[[[[[1]]]]]]",
    ] {
        let _ = parse_with(text, &overrides);
    }
}

#[test]
fn integers_with_underscores_and_signs() {
    assert_eq!(
        ok(&format!("epoch = +1_700_000_000\n{IMAGE}")).epoch,
        Some(1_700_000_000)
    );
    assert_eq!(ok(&format!("epoch = 0x10\n{IMAGE}")).epoch, Some(16));
    assert_eq!(
        steps("[[layer.step]]\ndir = \"/a\"\nmode = 0o7_55\n"),
        vec![StepKind::Dir {
            path: "/a".into(),
            mode: 0o755,
            owner: Owner::default()
        }]
    );
}

/// Byte-level mutations of the spec example (a poor man's fuzzer, with a
/// fixed seed): every one must give a result, never a panic.
#[test]
fn mutated_recipes_do_not_panic() {
    let doc = include_str!("../../../docs/recipe.md");
    let seed = doc
        .split_once("```toml\n")
        .and_then(|(_, r)| r.split_once("```"))
        .map_or("", |(t, _)| t);
    let alphabet = b"[]{}=\"'$\\.,#\n 0o7xaz-_/:@";
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let overrides = Overrides::default();
    for _ in 0..3000 {
        let mut bytes = seed.as_bytes().to_vec();
        for _ in 0..(next() % 4 + 1) {
            let at = (next() as usize) % bytes.len().max(1);
            let b = alphabet[(next() as usize) % alphabet.len()];
            match next() % 3 {
                0 => bytes.insert(at.min(bytes.len()), b),
                1 if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ if at < bytes.len() => bytes[at] = b,
                _ => {}
            }
        }
        if let Ok(text) = String::from_utf8(bytes) {
            let _ = parse_with(&text, &overrides);
        }
    }
}

// ---- provisioners: deb and run ----

const HEX: &str = "3d3fdbe91d4660c873e14b092c213fe81c1da6362daa236eb25d0171eb108744";

#[test]
fn deb_steps_take_a_context_path_and_a_digest() {
    let got = steps(&format!(
        "[[layer.step]]\ndeb = \"./debs/../debs/a.deb\"\nsha256 = \"{HEX}\"\n\
         [[layer.step]]\ndeb = \"b.deb\"\nsha256 = \"sha256:{}\"\n",
        HEX.to_uppercase()
    ));
    let digest: bake_digest::Digest = format!("sha256:{HEX}").parse().expect("a valid digest");
    assert_eq!(
        got,
        [
            StepKind::Deb {
                src: "debs/a.deb".into(),
                sha256: digest.clone()
            },
            StepKind::Deb {
                src: "b.deb".into(),
                sha256: digest
            },
        ]
    );
    assert_eq!(got[0].key(), "deb");
}

#[test]
fn deb_errors() {
    assert_eq!(
        step_err("[[layer.step]]\ndeb = \"a.deb\"\n"),
        "dir/recipe.toml:4:1: missing required key `sha256` in a deb step"
    );
    assert_eq!(
        step_err("[[layer.step]]\ndeb = \"a.deb\"\nsha256 = \"abc\"\n"),
        "dir/recipe.toml:6:10: invalid sha256 `abc`: expected 64 hex digits, optionally prefixed by `sha256:`"
    );
    assert_eq!(
        step_err(&format!(
            "[[layer.step]]\ndeb = \"../a.deb\"\nsha256 = \"{HEX}\"\n"
        )),
        "dir/recipe.toml:5:7: source path `../a.deb` leaves the build context"
    );
    assert_eq!(
        step_err(&format!("[[layer.step]]\ndeb = \"/a.deb\"\nsha256 = \"{HEX}\"\n")),
        "dir/recipe.toml:5:7: source path `/a.deb` must be relative to the build context"
    );
}

#[test]
fn run_steps_get_defaults() {
    let got = steps("[[layer.step]]\nrun = \"busybox --install -s /bin\"\n");
    assert_eq!(
        got,
        [StepKind::Run(RunStep {
            commands: strings(&["busybox --install -s /bin"]),
            network: false,
            timeout: 600,
            user: None,
            env: BTreeMap::new(),
            workdir: None,
        })]
    );
    assert_eq!(got[0].key(), "run");
}

#[test]
fn run_steps_take_every_option() {
    let text = format!(
        "{IMAGE}[variables]\nv = \"1\"\n[[layer]]\n[[layer.step]]\n\
         run = [\"echo ${{v}}\", \"make install\"]\nnetwork = true\ntimeout = \"1h30m\"\n\
         user = \"app:staff\"\nenv = {{ A = \"a${{v}}\", PATH = \"/bin\" }}\nworkdir = \"/src/./x/\"\n"
    );
    let recipe = ok(&text);
    let step = &recipe.layers[0].steps[0];
    assert_eq!(step.pos, pos(7, 1));
    assert_eq!(
        step.kind,
        StepKind::Run(RunStep {
            commands: strings(&["echo 1", "make install"]),
            network: true,
            timeout: 5400,
            user: Some("app:staff".into()),
            env: map(&[("A", "a1"), ("PATH", "/bin")]),
            workdir: Some("/src/x".into()),
        })
    );
    let seconds = steps("[[layer.step]]\nrun = \"x\"\ntimeout = 30\nuser = \"1000\"\n");
    let StepKind::Run(run) = &seconds[0] else { panic!() };
    assert_eq!((run.timeout, run.user.as_deref()), (30, Some("1000")));
}

#[test]
fn run_errors() {
    let cases = [
        (
            "run = 5\n",
            "5:7: `run` must be a string or an array of strings, found integer",
        ),
        ("run = []\n", "5:7: invalid run `[]`: give at least one command"),
        (
            "run = [\"a\", \" \"]\n",
            "5:13: invalid command ` `: must be non-empty, without NUL bytes",
        ),
        (
            "run = [\"a\", 1]\n",
            "5:13: `run[1]` must be a string, found integer",
        ),
        (
            "run = \"a\"\nnetwork = \"yes\"\n",
            "6:11: `network` must be a boolean, found string",
        ),
        (
            "run = \"a\"\ntimeout = 0\n",
            "6:11: invalid timeout `0`: expected seconds (1 to 604800) or a duration such as \"90s\", \"5m\" or \"1h30m\"",
        ),
        (
            "run = \"a\"\ntimeout = \"5 minutes\"\n",
            "6:11: invalid timeout `5 minutes`: expected seconds (1 to 604800) or a duration such as \"90s\", \"5m\" or \"1h30m\"",
        ),
        (
            "run = \"a\"\ntimeout = true\n",
            "6:11: `timeout` must be an integer (seconds) or a string, found boolean",
        ),
        (
            "run = \"a\"\nuser = \"a b\"\n",
            "6:8: invalid user `a b`: expected \"UID[:GID]\" or \"NAME[:GROUP]\"",
        ),
        (
            "run = \"a\"\nenv = { \"A=B\" = \"x\" }\n",
            "6:9: invalid environment variable name `A=B`: must not contain `=` or NUL",
        ),
        (
            "run = \"a\"\nenv = { SOURCE_DATE_EPOCH = \"1\" }\n",
            "6:9: invalid environment variable `SOURCE_DATE_EPOCH`: bake sets it to the build epoch",
        ),
        (
            "run = \"a\"\nworkdir = \"src\"\n",
            "6:11: destination `src` must be an absolute path",
        ),
        (
            "run = \"a\"\nto = \"/\"\n",
            "6:1: `to` is not allowed in a run step",
        ),
    ];
    for (step, want) in cases {
        assert_eq!(
            step_err(&format!("[[layer.step]]\n{step}")),
            format!("dir/recipe.toml:{want}"),
            "{step}"
        );
    }
}

#[test]
fn only_deb_and_run_steps_read_the_layers_below() {
    let r = ok("[image]\nname = \"x\"\n\
        [[layer]]\nname = \"static\"\n\
        [[layer.step]]\nfile = \"/a\"\ncontent = \"\"\n\
        [[layer.step]]\ndir = \"/d\"\n\
        [[layer.step]]\nsymlink = \"/l\"\ntarget = \"a\"\n\
        [[layer]]\nname = \"deb\"\n\
        [[layer.step]]\nfile = \"/b\"\ncontent = \"\"\n\
        [[layer.step]]\ndeb = \"x.deb\"\nsha256 = \"44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a\"\n\
        [[layer]]\nname = \"run\"\n\
        [[layer.step]]\nrun = [\"true\"]\n");
    let reads: Vec<(&str, bool)> = r
        .layers
        .iter()
        .map(|l| (l.name.as_str(), l.reads_below()))
        .collect();
    assert_eq!(reads, [("static", false), ("deb", true), ("run", true)]);
}
