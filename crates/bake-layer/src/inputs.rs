//! What a `Copy` source reads from the host, listed without building
//! anything: the walk a layer cache hashes to decide whether a layer must be
//! rebuilt.

use std::fs::Metadata;
use std::path::{Path, PathBuf};

use crate::LayerError;
use globset::GlobSet;

use crate::layer::globs;
use crate::paths::join;

/// One host node a [`Source::Copy`](crate::Source::Copy) reads.
#[derive(Debug, Clone)]
pub struct InputNode {
    /// The path relative to the copied directory, `/`-separated: `""` for
    /// the copied directory itself, or for a copied single file or symlink.
    pub rel: String,
    /// The host path.
    pub path: PathBuf,
    /// `lstat` of the node (symlinks are not followed).
    pub metadata: Metadata,
}

/// The nodes a [`Source::Copy`](crate::Source::Copy) of `src` with
/// `exclude` reads, in the order the layer walks them: `src` first, then
/// each directory's entries sorted by name bytes, depth first, with
/// excluded paths (and everything below an excluded directory) left out.
/// Special files are listed too (building the layer refuses them).
///
/// This is exactly the set of host nodes whose names, types, sizes,
/// permission bits, mtimes, link targets, inode identities and contents the layer's
/// bytes can depend on, so a hash over them (and the source's definition)
/// identifies the layer. `index` is the source's position, for errors.
pub fn copy_inputs(index: usize, src: &Path, exclude: &[String]) -> Result<Vec<InputNode>, LayerError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| LayerError::Io { index, path, source }
    };
    let metadata = fs_err::symlink_metadata(src).map_err(io(src))?;
    let is_dir = metadata.is_dir();
    let mut nodes = vec![InputNode {
        rel: String::new(),
        path: src.to_owned(),
        metadata,
    }];
    if is_dir {
        let exclude = globs(index, exclude)?;
        walk(index, src, "", &exclude, &mut nodes)?;
    }
    Ok(nodes)
}

fn walk(
    index: usize,
    dir: &Path,
    rel: &str,
    exclude: &GlobSet,
    nodes: &mut Vec<InputNode>,
) -> Result<(), LayerError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| LayerError::Io { index, path, source }
    };
    let mut names = Vec::new();
    for item in fs_err::read_dir(dir).map_err(io(dir))? {
        names.push(item.map_err(io(dir))?.file_name());
    }
    names.sort();
    for name in names {
        let host = dir.join(&name);
        let Some(name) = name.to_str() else {
            return Err(LayerError::NotUtf8 {
                index,
                path: host,
                what: "the file name",
            });
        };
        let rel = join(rel, name);
        if exclude.is_match(&rel) {
            continue;
        }
        let metadata = fs_err::symlink_metadata(&host).map_err(io(&host))?;
        let is_dir = metadata.is_dir();
        nodes.push(InputNode {
            rel: rel.clone(),
            path: host.clone(),
            metadata,
        });
        if is_dir {
            walk(index, &host, &rel, exclude, nodes)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Compression, LayerOptions, Owner, Source, read_layer_entries, write_layer};

    fn write(path: &Path, content: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    /// The walk lists exactly what the layer contains: a key over it can
    /// neither miss a file the layer reads nor depend on an excluded one.
    #[test]
    fn lists_exactly_what_the_layer_copies() {
        let ctx = tempfile::tempdir().unwrap();
        let root = ctx.path().join("tree");
        for p in [
            "a.txt",
            "keep.tmp/x",
            "b/c.tmp",
            "b/d/e.txt",
            "target/debug/big",
            "z/y/x/w",
        ] {
            write(&root.join(p), p);
        }
        std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
        std::fs::create_dir_all(root.join("empty")).unwrap();
        let exclude = vec!["*.tmp".to_owned(), "target/**".to_owned(), "**/x".to_owned()];
        let nodes = copy_inputs(0, &root, &exclude).unwrap();
        let listed: Vec<&str> = nodes.iter().map(|n| n.rel.as_str()).collect();

        let src = Source::Copy {
            src: root.clone(),
            to: "/".into(),
            mode: None,
            owner: Owner::default(),
            exclude,
            mtime: crate::CopyMtime::Epoch,
            capabilities: None,
        };
        let opts = LayerOptions {
            epoch: 0,
            compression: Compression::None,
            tmp_dir: ctx.path().to_owned(),
            below_links: Default::default(),
        };
        let (tar, _) = write_layer(&[src], &opts, Vec::new()).unwrap();
        let in_layer: Vec<String> = read_layer_entries(&tar[..])
            .unwrap()
            .into_iter()
            .map(|e| e.path.trim_end_matches('/').to_owned())
            .collect();
        let mut expected: Vec<&str> = vec![""];
        expected.extend(in_layer.iter().map(String::as_str));
        let mut sorted = listed.clone();
        sorted.sort();
        expected.sort();
        assert_eq!(sorted, expected);
        assert_eq!(
            listed[..3],
            ["", "a.txt", "b"],
            "walk order is by name, depth first"
        );
    }

    #[test]
    fn a_single_file_is_one_node() {
        let ctx = tempfile::tempdir().unwrap();
        let f = ctx.path().join("f");
        write(&f, "x");
        let nodes = copy_inputs(3, &f, &["*".to_owned()]).unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].rel, "");
        let err = copy_inputs(3, &ctx.path().join("nope"), &[]).unwrap_err();
        assert_eq!(err.source_index(), Some(3));
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
