//! Fields of Linux's `/proc/self/status` (peak memory, umask): `None` where there is no `/proc`.

/// The text after `name:` on its line, trimmed.
pub fn field(name: &str) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    })
}
