//! Golden digests: every recipe in `recipes/` builds to the manifest digest
//! checked in under `testdata/golden/`. A change here is a change of output
//! format: regenerate on purpose with `cargo xtask golden` and say why.

#![allow(clippy::unwrap_used)]

use crate::common::*;

#[test]
fn every_recipe_matches_its_golden_digest() {
    let all = recipe_names();
    assert!(
        all.len() >= 2,
        "expected at least two example recipes, found {all:?}"
    );
    // Without the full suite, those that need root, runc or fetched .debs
    // are skipped (and say so); at least one builds anywhere.
    let names = buildable_recipe_names();
    assert!(
        !names.is_empty(),
        "no example recipe builds without the full suite: {all:?}"
    );
    let tmp = tempfile::tempdir().unwrap();
    for name in names {
        let golden_path = repo().join(format!("testdata/golden/{name}.digest"));
        let golden = fs_err::read_to_string(&golden_path)
            .unwrap_or_else(|_| panic!("no golden digest for recipe {name}: run `cargo xtask golden`"));
        let recipe = repo().join(format!("recipes/{name}/bake.toml"));
        let v = build_json(tmp.path(), &recipe, &tmp.path().join(&name));
        assert_eq!(
            v["digest"].as_str().unwrap(),
            golden.trim(),
            "recipe {name} no longer builds to its golden digest (if intended: cargo xtask golden)"
        );
    }
}
