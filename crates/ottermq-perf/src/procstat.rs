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

/// The machine's CPU time from the first line of /proc/stat, in ticks: all of it, and the
/// part the hypervisor gave to someone else ("steal"). On a shared VM a run's tail latency
/// follows the steal during it, so the report carries it.
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineSample {
    pub total: u64,
    pub steal: u64,
}

/// None when /proc/stat is not there or not in the Linux format.
pub fn machine() -> Option<MachineSample> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]; guest time is
    // already counted in user, so the total is the first eight.
    Some(MachineSample {
        total: fields.iter().take(8).sum(),
        steal: *fields.get(7)?,
    })
}

/// Steal over a run as a percentage of all the machine's CPU time.
pub fn steal_percent(start: MachineSample, end: MachineSample) -> f64 {
    let total = end.total.saturating_sub(start.total);
    if total == 0 {
        return 0.0;
    }
    end.steal.saturating_sub(start.steal) as f64 / total as f64 * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_is_a_share_of_all_cpu_time() {
        let a = MachineSample {
            total: 1_000,
            steal: 10,
        };
        let b = MachineSample {
            total: 1_400,
            steal: 14,
        };
        assert!((steal_percent(a, b) - 1.0).abs() < 1e-9);
        assert_eq!(steal_percent(b, b), 0.0);
        let m = machine().expect("/proc/stat on Linux");
        assert!(m.total > 0 && m.steal <= m.total);
    }
}
