//! Every TOML file shipped in configs/ loads and builds a model: no stale keys.

use clasp_core::config::{load::load_file, model::vit_config};

fn toml_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            toml_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "toml") {
            out.push(p);
        }
    }
}

#[test]
fn shipped_configs_are_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut files = Vec::new();
    toml_files(&root, &mut files);
    assert!(files.len() >= 3, "found {files:?}");
    for f in files {
        let c = load_file(&f).unwrap_or_else(|e| panic!("{}: {e:#}", f.display()));
        vit_config(&c.model).unwrap_or_else(|e| panic!("{}: {e:#}", f.display()));
    }
}
