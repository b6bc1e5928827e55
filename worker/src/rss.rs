//! The process's resident memory, as the kernel counts it.

/// A `/proc/<pid>/status` field in bytes (`VmRSS`, `VmHWM`…), or None where it
/// cannot be read.
pub fn status_field_bytes(status_text: &str, field: &str) -> Option<u64> {
    let kilobytes: u64 = status_field(status_text, field)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kilobytes * 1024)
}

/// The value of a `/proc/<pid>/status` field as written (`THP_enabled` → `1`), or None
/// where there is no such field.
fn status_field<'a>(status_text: &'a str, field: &str) -> Option<&'a str> {
    status_text
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .map(str::trim)
}

/// The value of field `field` of `/proc/<pid>/status` as written, or None where it
/// cannot be read (the process is gone, or the kernel has no such field).
pub fn pid_status_field(pid: u32, field: &str) -> Option<String> {
    let status = status_text(&pid.to_string())?;
    status_field(&status, field).map(str::to_string)
}

/// The resident set size of this process in bytes, or None where it cannot be read.
pub fn process_rss() -> Option<u64> {
    status_bytes_of("self", "VmRSS")
}

/// A `/proc/<pid>/status` field of process `pid` in bytes (`VmRSS`, `VmHWM`…), or
/// None where it cannot be read (the process is gone).
pub fn pid_status_bytes(pid: u32, field: &str) -> Option<u64> {
    status_bytes_of(&pid.to_string(), field)
}

fn status_bytes_of(process: &str, field: &str) -> Option<u64> {
    status_field_bytes(&status_text(process)?, field)
}

/// The text of `/proc/<process>/status` (`process` a pid or `self`), or None where it
/// cannot be read.
fn status_text(process: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{process}/status")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's kB figures are read as bytes, and a missing field is None.
    #[test]
    fn reads_status_fields() {
        let text = "Name:\tcairn\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(status_field_bytes(text, "VmRSS"), Some(1024 * 1024));
        assert_eq!(status_field_bytes(text, "VmHWM"), Some(2048 * 1024));
        assert_eq!(status_field_bytes(text, "VmSwap"), None);
        assert_eq!(status_field(text, "Name"), Some("cairn"));
        assert!(pid_status_field(std::process::id(), "Name").is_some());
        assert!(process_rss().is_some_and(|rss| rss > 0));
        assert!(pid_status_bytes(std::process::id(), "VmRSS").is_some_and(|rss| rss > 0));
    }
}
