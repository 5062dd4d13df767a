//! The task plugins as shared libraries, built once per test binary, and helpers for tests that
//! load them.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The plugin crates these tests load, built once per test run as shared libraries.
const PLUGIN_CRATES: [&str; 7] = [
    "clasp-plugin-attribute",
    "clasp-plugin-reid",
    "clasp-plugin-parsing",
    "clasp-plugin-pose",
    "clasp-test-plugin-faulty",
    "clasp-test-plugin-bad-spec",
    "clasp-test-plugin-old-interface",
];

/// `cargo test` builds libraries only as rlibs, so the `cdylib`s are built here, with cargo, into
/// their own target directory (`target/test-plugins`; the test run holds no lock on it).
pub fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf();
        let target = root.join("target").join("test-plugins");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        cmd.current_dir(&root)
            .arg("build")
            .env("CARGO_TARGET_DIR", &target);
        for c in PLUGIN_CRATES {
            cmd.args(["-p", c]);
        }
        let status = cmd
            .status()
            .expect("running cargo to build the test plugins");
        assert!(status.success(), "building the plugins failed");
        target.join("debug")
    })
}

/// Builds the cargo workspace at `dir` (relative to the repository) into its own target
/// directory, apart from this workspace, and returns its library `lib<name>.so`.
pub fn build_apart(dir: &str, name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    // Apart from `plugin_dir`: tests scan that folder and keep what they load mapped (plugins
    // are never unloaded), so a library rebuilt there would be shadowed by its old image.
    let target = root.join("target").join("test-plugins-apart");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .current_dir(root)
        .args(["build", "--manifest-path", &format!("{dir}/Cargo.toml")])
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .unwrap();
    assert!(status.success(), "{dir} must build on its own");
    let lib = target.join("debug").join(format!("lib{name}.so"));
    assert!(lib.exists(), "{} was not built", lib.display());
    lib
}

pub fn library(name: &str) -> PathBuf {
    let path = plugin_dir().join(format!("lib{name}.so"));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// The `clasp` binary beside the test binary (`cargo test --workspace` builds it).
pub fn clasp_exe() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("clasp")
}

/// The error's full chain, for matching on messages; panics on success.
pub fn err(r: anyhow::Result<impl Sized>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

/// `NAME=PATH`: one result file of `clasp eval --task T --input`.
pub fn input(name: &str, path: &Path) -> std::ffi::OsString {
    let mut arg = std::ffi::OsString::from(format!("{name}="));
    arg.push(path);
    arg
}
