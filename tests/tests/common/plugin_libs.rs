//! The task plugins as shared libraries, as the test build wrote them, and helpers for tests
//! that load them.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The plugin crates these tests load as shared libraries.
const PLUGIN_CRATES: [&str; 7] = [
    "clasp-plugin-attribute",
    "clasp-plugin-reid",
    "clasp-plugin-parsing",
    "clasp-plugin-pose",
    "clasp-test-plugin-faulty",
    "clasp-test-plugin-bad-spec",
    "clasp-test-plugin-old-interface",
];

/// A library's file name on this platform: `libX.so`, `libX.dylib`, `X.dll`.
fn library_file(lib_name: &str) -> String {
    use std::env::consts::{DLL_PREFIX, DLL_SUFFIX};
    format!("{DLL_PREFIX}{lib_name}{DLL_SUFFIX}")
}

/// The plugins' shared libraries, gathered in a folder of their own. Every plugin crate is a
/// dev-dependency of this package, so the `cargo test` that built this binary also wrote their
/// `cdylib`s beside it, in `<target>/<profile>/deps` (a lib's every crate type is built, even as
/// a dependency): no second cargo build of the plugins and their dependencies. They are copied
/// into `<target>/<profile>/test-plugin-libs` because tests load every library of the folder
/// they are given, and `deps` holds other shared objects (proc macros). A copy is skipped when
/// it is as long as the built library and no older; otherwise it is written to a temporary file
/// beside its place and renamed into it, so a test process that mapped the old file keeps its
/// image.
pub fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary's path");
        let deps = exe.parent().expect("the test binary's folder");
        let dir = deps.parent().unwrap().join("test-plugin-libs");
        std::fs::create_dir_all(&dir).unwrap();
        for c in PLUGIN_CRATES {
            let file = library_file(&c.replace('-', "_"));
            let built = deps.join(&file);
            let source = std::fs::metadata(&built).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (is {c} a dev-dependency of clasp-tests?)",
                    built.display()
                )
            });
            let copy = dir.join(&file);
            if let Ok(existing) = std::fs::metadata(&copy) {
                let fresh = existing.len() == source.len()
                    && existing.modified().unwrap() >= source.modified().unwrap();
                if fresh {
                    continue;
                }
            }
            let mut partial = tempfile::NamedTempFile::new_in(&dir).unwrap();
            let mut from = std::fs::File::open(&built).unwrap();
            std::io::copy(&mut from, &mut partial)
                .unwrap_or_else(|e| panic!("copying {}: {e}", built.display()));
            partial.persist(&copy).unwrap();
        }
        dir
    })
}

/// Builds the cargo workspace at `dir` (relative to the repository) into its own target
/// directory, apart from this workspace, and returns its library (`lib<name>.so` on Linux).
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
    let lib = target.join("debug").join(library_file(name));
    assert!(lib.exists(), "{} was not built", lib.display());
    lib
}

pub fn library(name: &str) -> PathBuf {
    let path = plugin_dir().join(library_file(name));
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
