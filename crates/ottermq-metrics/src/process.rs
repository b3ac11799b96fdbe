//! Resource usage of the broker process itself, for the broker-wide gauges and `/metrics`
//! (`process_resident_memory_bytes`, `process_open_fds`, `process_max_fds`).
//!
//! Read from `/proc` on Linux. Every function returns `None` instead of failing when the
//! information is unavailable (another OS, `/proc` not mounted, unexpected format): process
//! stats are nice to have and must never take the sampler down.

/// A reading of the process' resource usage, each figure independently optional.
///
/// Exists so the sampler can take all figures in one call per tick and record whichever it
/// got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessStats {
    /// Resident set size in bytes.
    pub rss_bytes: Option<u64>,
    /// Open file descriptors (sockets included).
    pub open_fds: Option<u64>,
    /// Soft limit on open file descriptors.
    pub max_fds: Option<u64>,
}

impl ProcessStats {
    /// Reads every figure now.
    pub fn read() -> Self {
        Self {
            rss_bytes: rss_bytes(),
            open_fds: open_fds(),
            max_fds: max_fds(),
        }
    }
}

/// Resident memory of the current process in bytes, from the `VmRSS` line of
/// `/proc/self/status` (reported in kB, which avoids needing the page size).
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status_kb(&status, "VmRSS:").map(|kb| kb.saturating_mul(1024))
}

/// Number of open file descriptors of the current process: the entries of `/proc/self/fd`,
/// minus the descriptor used to list that directory.
pub fn open_fds() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    let count = entries.filter(|e| e.is_ok()).count() as u64;
    Some(count.saturating_sub(1))
}

/// Soft limit on open file descriptors, from `/proc/self/limits` (`None` if unlimited or
/// unknown).
pub fn max_fds() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_max_open_files(&limits)
}

/// The number of kB on the `key` line of a `/proc/<pid>/status` text.
fn parse_status_kb(status: &str, key: &str) -> Option<u64> {
    let rest = status.lines().find_map(|l| l.strip_prefix(key))?;
    let mut fields = rest.split_whitespace();
    let value = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") | None => Some(value),
        Some(_) => None,
    }
}

/// The soft limit on the `Max open files` line of a `/proc/<pid>/limits` text.
fn parse_max_open_files(limits: &str) -> Option<u64> {
    let rest = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?;
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status() {
        let text = "Name:\tottermq\nVmPeak:\t  9000 kB\nVmRSS:\t    2024 kB\nThreads:\t4\n";
        assert_eq!(parse_status_kb(text, "VmRSS:"), Some(2024));
        assert_eq!(parse_status_kb(text, "VmSwap:"), None);
        assert_eq!(parse_status_kb("VmRSS:\tlots kB\n", "VmRSS:"), None);
        assert_eq!(parse_status_kb("VmRSS:\t12 MB\n", "VmRSS:"), None);
    }

    #[test]
    fn parses_limits() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max processes             63417                63417                processes \n\
                    Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_open_files(text), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_max_open_files(unlimited), None);
        assert_eq!(parse_max_open_files(""), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_own_process() {
        let stats = ProcessStats::read();
        assert!(stats.rss_bytes.unwrap() > 1024 * 1024);
        let before = stats.open_fds.unwrap();
        assert!(before >= 3, "stdin, stdout, stderr at least: {before}");
        let files: Vec<_> = (0..8)
            .map(|_| std::fs::File::open("/proc/self/status").unwrap())
            .collect();
        let after = open_fds().unwrap();
        // Tolerant: the test harness's other threads may open or close a descriptor meanwhile.
        assert!(
            (before + 6..=before + 10).contains(&after),
            "{before} -> {after}"
        );
        drop(files);
        assert!(stats.max_fds.unwrap() >= before);
    }
}
