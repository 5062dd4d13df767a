//! Finding, checking and loading task plugins. A plugin is loaded once and never unloaded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use abi_stable::library::{lib_header_from_path, LibraryError, RootModule};
use anyhow::{anyhow, bail, Context, Result};
use clasp_sdk::abi::{PluginSpec, INTERFACE_VERSION};
use clasp_sdk::plugin::TaskPluginRef;
use clasp_sdk::SDK_VERSION;

use crate::config::schema::PluginSettings;

/// A loaded plugin with what identifies it.
#[derive(Clone)]
pub struct Plugin {
    pub path: PathBuf,
    pub sha256: String,
    pub module: TaskPluginRef,
    pub spec: PluginSpec,
}

impl Plugin {
    pub fn name(&self) -> &str {
        self.spec.name.as_str()
    }

    /// Prefixes an error from a plugin call with the plugin and the call.
    pub fn call_error(&self, call: &str, msg: impl std::fmt::Display) -> anyhow::Error {
        anyhow!(
            "plugin `{}` ({}) failed in `{call}`: {msg}",
            self.name(),
            self.path.display()
        )
    }
}

pub use crate::file_hash::sha256_file;

/// Shared-library file names of this platform.
fn is_library(p: &Path) -> bool {
    let ext = if cfg!(target_os = "windows") {
        "dll"
    } else if cfg!(target_os = "macos") {
        "dylib"
    } else {
        "so"
    };
    p.extension().is_some_and(|e| e == ext)
}

/// Candidate plugin files in `dirs` (config `plugins.dirs`) and `CLASP_PLUGIN_PATH` (colon-separated).
pub fn discover(dirs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut all: Vec<PathBuf> = dirs.to_vec();
    if let Ok(env) = std::env::var("CLASP_PLUGIN_PATH") {
        all.extend(std::env::split_paths(&env));
    }
    let mut out = Vec::new();
    for dir in all {
        if dir.is_file() && is_library(&dir) {
            out.push(dir);
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            tracing::warn!("plugin directory {} cannot be read; skipped", dir.display());
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_file() && is_library(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Checks `spec` for what the host relies on.
pub fn validate_spec(spec: &PluginSpec) -> Result<()> {
    crate::model::prompts::validate_task_name(spec.name.as_str())
        .map_err(|e| anyhow!("invalid spec: {e}"))?;
    if spec.labels.is_empty() {
        bail!("invalid spec: the task declares zero labels/classes");
    }
    if spec.description.trim().is_empty() {
        bail!("invalid spec: empty description sentence (it seeds the task prompt)");
    }
    if spec.input_size.iter().any(|s| *s == 0 || s % 16 != 0) {
        bail!(
            "invalid spec: input size {:?} is not a multiple of 16",
            spec.input_size
        );
    }
    if !spec.metrics.iter().any(|m| m == &spec.primary_metric) {
        bail!(
            "invalid spec: primary metric `{}` is not among {:?}",
            spec.primary_metric,
            spec.metrics
        );
    }
    Ok(())
}

/// Loads the plugin at `path`. With `pin`, the file's sha256 must match before any of its code
/// runs. Layout (abi_stable), SDK version and interface version are checked, then the spec.
pub fn load(path: &Path, pin: Option<&str>) -> Result<Plugin> {
    if !path.exists() {
        bail!("plugin file {} does not exist", path.display());
    }
    let sha256 = sha256_file(path)?;
    if let Some(want) = pin {
        if !want.eq_ignore_ascii_case(&sha256) {
            bail!(
                "plugin {} refused: sha256 {sha256} does not match the pinned {want}",
                path.display()
            );
        }
    }
    let header = lib_header_from_path(path).map_err(|e| describe(path, e))?;
    let module = header
        .init_root_module::<TaskPluginRef>()
        .map_err(|e| describe(path, e))?;
    if module.interface_version() != INTERFACE_VERSION {
        bail!(
            "plugin {} was built for CLASP plugin interface {} but this host speaks {INTERFACE_VERSION}: rebuild it against clasp-sdk {SDK_VERSION}",
            path.display(),
            module.interface_version()
        );
    }
    let spec = (module.spec())()
        .into_result()
        .map_err(|e| anyhow!("plugin {} failed in `spec`: {e}", path.display()))?;
    validate_spec(&spec).with_context(|| format!("plugin {}", path.display()))?;
    Ok(Plugin {
        path: path.to_path_buf(),
        sha256,
        module,
        spec,
    })
}

fn describe(path: &Path, e: LibraryError) -> anyhow::Error {
    if let LibraryError::IncompatibleVersionNumber { actual_version, .. } = &e {
        return anyhow!(
            "plugin {} was built against clasp-sdk {actual_version}, which this host cannot load: \
             rebuild it against clasp-sdk {SDK_VERSION}",
            path.display()
        );
    }
    let what = match &e {
        LibraryError::OpenError { .. } => "cannot be opened as a shared library",
        LibraryError::GetSymbolError { .. } => {
            "is not a CLASP task plugin (it exports no abi_stable root module)"
        }
        LibraryError::IncompatibleVersionNumber { .. } => {
            "was built against an incompatible clasp-sdk version"
        }
        LibraryError::AbiInstability(_) => {
            "was built against a clasp-sdk whose types have a different layout"
        }
        _ => "could not be loaded",
    };
    let detail = e.to_string();
    if matches!(e, LibraryError::AbiInstability(_)) {
        // abi_stable prints both layouts in full; the summary names what differs.
        tracing::debug!("{}: {detail}", path.display());
        return anyhow!(
            "plugin {} {what}: {}; rebuild it against clasp-sdk {SDK_VERSION} (run with -v for both layouts)",
            path.display(),
            layout_differences(&detail)
        );
    }
    anyhow!(
        "plugin {} {what} (expected root module `{}`): {detail}",
        path.display(),
        TaskPluginRef::NAME
    )
}

/// `too many fields (host 10, plugin 9)` from abi_stable's report, which gives each difference
/// as `Error:<what>` then `Expected:`/`Found:` on the following lines.
fn layout_differences(report: &str) -> String {
    let lines: Vec<&str> = report.lines().map(str::trim).collect();
    let value_after = |from: usize, label: &str| -> String {
        lines[from..]
            .iter()
            .position(|l| *l == label)
            .and_then(|i| lines.get(from + i + 1))
            .map_or(String::from("?"), |v| v.to_string())
    };
    let found: Vec<String> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let what = l.strip_prefix("Error:")?.trim();
            Some(format!(
                "{what} (host {}, plugin {})",
                value_after(i, "Expected:"),
                value_after(i, "Found:")
            ))
        })
        .collect();
    if found.is_empty() {
        "the layouts differ".into()
    } else {
        found.join("; ")
    }
}

/// What discovery found: plugins by task name, and files that failed with why.
pub struct Discovered {
    pub plugins: BTreeMap<String, Plugin>,
    pub failed: Vec<(PathBuf, anyhow::Error)>,
}

/// Every plugin found in `plugins.dirs` and `CLASP_PLUGIN_PATH`, by task name; failures are
/// reported with their file, not fatal here. `plugins.sha256` pins files by name or path; a pin
/// that matches no file found is an error.
pub fn load_all(settings: &PluginSettings) -> Result<Discovered> {
    let dirs: Vec<PathBuf> = settings.dirs.iter().map(PathBuf::from).collect();
    let mut ok = BTreeMap::new();
    let mut failed = Vec::new();
    let files = discover(&dirs)?;
    // A pin that applies to nothing would leave the plugin it meant unpinned, silently.
    for key in settings.sha256.keys() {
        if !files.iter().any(|f| pin_matches(key, f)) {
            bail!(
                "config key `plugins.sha256`: the pin `{key}` matches no plugin file found (by file \
                 name or path) among {:?}",
                files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
            );
        }
    }
    for path in files {
        let pin = settings
            .sha256
            .iter()
            .find(|(key, _)| pin_matches(key, &path))
            .map(|(_, v)| v.as_str());
        match load(&path, pin) {
            Ok(p) => {
                if let Some(prev) = ok.get(p.name()) {
                    let prev: &Plugin = prev;
                    failed.push((
                        path.clone(),
                        anyhow!(
                            "task `{}` is already provided by {}",
                            p.name(),
                            prev.path.display()
                        ),
                    ));
                } else {
                    ok.insert(p.name().to_string(), p);
                }
            }
            Err(e) => failed.push((path, e)),
        }
    }
    Ok(Discovered {
        plugins: ok,
        failed,
    })
}

/// Whether a `plugins.sha256` key names `file`: by its file name, or by its path (as written or
/// once both are made absolute).
fn pin_matches(key: &str, file: &Path) -> bool {
    let key_path = Path::new(key);
    file.file_name().is_some_and(|n| n == key_path.as_os_str())
        || key_path == file
        || matches!(
            (key_path.canonicalize(), file.canonicalize()),
            (Ok(a), Ok(b)) if a == b
        )
}

/// The plugin of task `task` among those [`load_all`] finds; when there is none, the error lists
/// what was found and why other files failed to load.
pub fn find_task(settings: &PluginSettings, task: &str) -> Result<Plugin> {
    let mut found = load_all(settings)?;
    match found.plugins.remove(task) {
        Some(p) => Ok(p),
        None => Err(found.missing(task)),
    }
}

impl Discovered {
    /// Why no plugin provides `task`: what was found, and why each other file failed to load
    /// (a pin mismatch among them).
    pub fn missing(&self, task: &str) -> anyhow::Error {
        let failures: String = self
            .failed
            .iter()
            .map(|(path, e)| format!("\n  {} failed to load: {e:#}", path.display()))
            .collect();
        anyhow!(
            "no plugin provides task `{task}` (found: {:?}); set plugins.dirs or \
             CLASP_PLUGIN_PATH{failures}",
            self.plugins.keys().collect::<Vec<_>>()
        )
    }
}
