//! Hostile recipes at the parser: variables are not recursive (a value
//! holding `${…}` is used as written), substitution is bounded, and deep
//! TOML nesting is an error with a position, not a stack overflow.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use bake_recipe::{Overrides, RecipeError, StepKind, parse};

fn content_of(text: &str, overrides: &Overrides) -> Result<Vec<u8>, RecipeError> {
    let r = parse(Path::new("bake.toml"), text, overrides)?;
    match &r.layers[0].steps[0].kind {
        StepKind::File { content, .. } => Ok(content.clone().into_bytes()),
        other => panic!("{other:?}"),
    }
}

fn recipe(vars: &str, content: &str) -> String {
    format!(
        "[variables]\n{vars}\n[image]\nname = \"x\"\n[[layer]]\n[[layer.step]]\nfile = \"/f\"\ncontent = \"{content}\"\n"
    )
}

#[test]
fn variables_are_not_recursive() {
    // A variable whose value names itself or another is used as written:
    // substitution is one pass over the recipe's strings, never over values.
    let text = recipe("a = \"${a}${b}\"\nb = \"${a}\"", "[${a}|${b}]");
    assert_eq!(
        content_of(&text, &Overrides::default()).unwrap(),
        b"[${a}${b}|${a}]"
    );
    // Overrides are not expanded either.
    let o = Overrides {
        cli: vec![("a".into(), "${b}${b}${b}".into())],
        env: vec![],
    };
    assert_eq!(content_of(&text, &o).unwrap(), b"[${b}${b}${b}|${a}]");
}

#[test]
fn substitution_is_bounded() {
    // A 1 MiB override referenced 100 times is 100 MiB: refused at the
    // reference, with its position, before the memory is used.
    let refs = "${big}".repeat(100);
    let text = recipe("big = \"\"", &refs);
    let o = Overrides {
        cli: vec![("big".into(), "x".repeat(1 << 20))],
        env: vec![],
    };
    let err = content_of(&text, &o).unwrap_err().to_string();
    assert!(err.starts_with("bake.toml:"), "{err}");
    assert!(err.contains(&(64usize << 20).to_string()), "{err}");
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for (open, close) in [("[", "]"), ("{a=", "}")] {
        let deep = format!(
            "[image]\nname = \"x\"\n[variables]\nv = {}1{}\n",
            open.repeat(100_000),
            close.repeat(100_000)
        );
        let err = parse(Path::new("bake.toml"), &deep, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("bake.toml:4:"), "{err}");
        assert!(err.contains("recurs"), "{err}");
    }
    let dotted = format!("[image]\nname = \"x\"\n[{}]\n", vec!["k"; 100_000].join("."));
    let err = parse(Path::new("bake.toml"), &dotted, &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("bake.toml:"), "{err}");
}

#[test]
fn huge_and_odd_values_are_errors() {
    for (what, text) in [
        (
            "mode",
            recipe("", "x").replace("content = \"x\"", "content = \"x\"\nmode = 99999999999999999999"),
        ),
        (
            "owner",
            recipe("", "x").replace("content = \"x\"", "content = \"x\"\nowner = \"99999999999:1\""),
        ),
        (
            "nul",
            recipe("", "x").replace("file = \"/f\"", "file = \"/f\\u0000g\""),
        ),
        (
            "escape",
            recipe("", "x").replace("file = \"/f\"", "file = \"/../../etc/passwd\""),
        ),
        (
            "epoch",
            format!("epoch = 99999999999999999999\n{}", recipe("", "x")),
        ),
        (
            "tags",
            recipe("", "x").replace(
                "name = \"x\"",
                &format!("name = \"x\"\ntags = [\"{}\"]", "t".repeat(200)),
            ),
        ),
    ] {
        let err = parse(Path::new("bake.toml"), &text, &Overrides::default());
        assert!(err.is_err(), "{what}: accepted");
        assert!(err.unwrap_err().to_string().starts_with("bake.toml:"), "{what}");
    }
}

/// A recipe whose `[config]` holds `labels = { k = "${v}" }`, with `v`
/// set to `value`.
fn with_label(value: &str) -> (String, Overrides) {
    let text =
        "[variables]\nv = \"\"\n[image]\nname = \"x\"\n[config]\nuser = \"1\"\nlabels = { k = \"${v}\" }\n";
    let o = Overrides {
        cli: vec![("v".into(), value.into())],
        env: vec![],
    };
    (text.into(), o)
}

#[test]
fn config_and_annotations_stay_within_what_image_readers_accept() {
    use bake_recipe::{MAX_CONFIG_JSON, MAX_TAGS_JSON};
    // `user = "1"` takes 16 + 3 bytes, the label `"k":"…",` 7 + its value.
    let fits = MAX_CONFIG_JSON - 19 - 7;
    let (text, o) = with_label(&"v".repeat(fits));
    let r = parse(Path::new("bake.toml"), &text, &o).unwrap();
    assert_eq!(r.config.labels["k"].len(), fits);
    let (text, o) = with_label(&"v".repeat(fits + 1));
    let err = parse(Path::new("bake.toml"), &text, &o).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "bake.toml:7:10: `labels` brings what the recipe writes into the image config to {} bytes of JSON, more than the {MAX_CONFIG_JSON} allowed",
            MAX_CONFIG_JSON + 1
        )
    );
    // Escaping counts: a control character is 6 bytes of JSON.
    let (text, o) = with_label(&"\u{1}".repeat(fits / 6 + 1));
    assert!(parse(Path::new("bake.toml"), &text, &o).is_err());

    // Every key counts, wherever the bytes come from.
    let big = "x".repeat(MAX_CONFIG_JSON / 2);
    for (key, config) in [
        ("cmd", format!("entrypoint = [\"{big}\"]\ncmd = [\"{big}\"]")),
        ("env", format!("env = {{ A = \"{big}\", B = \"{big}\" }}")),
        ("volumes", format!("workdir = \"/{big}\"\nvolumes = [\"/{big}\"]")),
        (
            "stop_signal",
            format!("user = \"{big}\"\nstop_signal = \"{big}\""),
        ),
    ] {
        let text = format!("[image]\nname = \"x\"\n[config]\n{config}\n");
        let err = parse(Path::new("bake.toml"), &text, &Overrides::default()).unwrap_err();
        assert!(
            matches!(&err, RecipeError::JsonTooLarge { key: k, .. } if *k == key),
            "{key}: {err}"
        );
        assert!(err.to_string().starts_with("bake.toml:"), "{err}");
    }

    // Annotations go into the manifest: the same budget.
    let text = format!(
        "[image]\nname = \"x\"\nannotations = {{ a = \"{}\" }}\n",
        "a".repeat(MAX_CONFIG_JSON)
    );
    let err = parse(Path::new("bake.toml"), &text, &Overrides::default()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("bake.toml:3:15: `annotations` brings"),
        "{err}"
    );
    let text = format!(
        "[image]\nname = \"x\"\nannotations = {{ a = \"{}\" }}\n",
        "a".repeat(MAX_CONFIG_JSON - 7)
    );
    assert!(parse(Path::new("bake.toml"), &text, &Overrides::default()).is_ok());

    // Tags become docker-archive RepoTags.
    let tags: Vec<String> = (0..MAX_TAGS_JSON / 100)
        .map(|i| format!("\"{i:0>120}\""))
        .collect();
    let text = format!("[image]\nname = \"x\"\ntags = [{}]\n", tags.join(","));
    let err = parse(Path::new("bake.toml"), &text, &Overrides::default()).unwrap_err();
    assert!(
        err.to_string().starts_with("bake.toml:3:8: `tags` brings"),
        "{err}"
    );
}
