//! CPU time and resident memory of a process from /proc (Linux), for the report: the broker's
//! (`--broker-pid`) and the load generator's own, so a run shows whether the generator was the
//! bottleneck.

/// Clock ticks per second of /proc/<pid>/stat times (`getconf CLK_TCK`; 100 on Linux).
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// One reading: user + system CPU time in ticks, and VmRSS in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub cpu_ticks: u64,
    pub rss_kib: u64,
}

/// Reads `/proc/<pid>/stat` (utime, stime) and `/proc/<pid>/status` (VmRSS); `pid` may be
/// "self". None when the process is gone or /proc is not there.
pub fn sample(pid: &str) -> Option<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: split after the last ')'.
    // What follows starts at field 3 (state); utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some(Sample {
        cpu_ticks: utime + stime,
        rss_kib,
    })
}

/// CPU share over a run as a percentage of one core (200 = two cores busy).
pub fn cpu_percent(start: Sample, end: Sample, ticks_per_sec: f64, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        return 0.0;
    }
    end.cpu_ticks.saturating_sub(start.cpu_ticks) as f64 / ticks_per_sec / seconds * 100.0
}
