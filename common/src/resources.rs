//! What this process has used so far: CPU time and resident memory, read from Linux's `/proc`.
//!
//! The enclave reports both in its status (the parent cannot see inside the enclave's VM), the
//! proxy exports its own in `/metrics`, and `nitro-signer bench` turns them into CPU time per
//! request for each process. Both are `None` where `/proc` is missing or unreadable.

use std::time::Duration;

/// Clock ticks per second of the times in `/proc/<pid>/stat`: `USER_HZ`, which Linux fixes at 100
/// for user space on every architecture it supports.
const USER_HZ: u64 = 100;

/// CPU time used by this process (all threads, user and system), with a resolution of 10 ms.
pub fn cpu_time() -> Option<Duration> {
    parse_stat_cpu(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// Resident memory of this process, in bytes.
pub fn resident_bytes() -> Option<u64> {
    parse_status_rss(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// `utime + stime` from a `/proc/<pid>/stat` line. The command name (field 2) may contain
/// spaces and parentheses, so fields are counted from its closing parenthesis.
fn parse_stat_cpu(stat: &str) -> Option<Duration> {
    let (_, after_name) = stat.rsplit_once(')')?;
    // After the name: state (field 3) … utime (field 14), stime (field 15).
    let mut fields = after_name.split_ascii_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    let ticks = user.checked_add(system)?;
    Some(Duration::from_millis(ticks.checked_mul(1000 / USER_HZ)?))
}

/// `VmRSS` from `/proc/<pid>/status`, which states its unit (kB).
fn parse_status_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let mut parts = line.trim_start_matches("VmRSS:").split_ascii_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next()? {
        "kB" => value.checked_mul(1024),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        let stat = "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194560 1534 0 0 0 250 17 0 0 20 0 \
                    6 0 123 456 789";
        assert_eq!(parse_stat_cpu(stat), Some(Duration::from_millis(2670)));
        assert_eq!(parse_stat_cpu("4242 (x) S 1 2"), None);
        assert_eq!(parse_stat_cpu("no name"), None);
    }

    #[test]
    fn rss_is_read_in_its_stated_unit() {
        let status = "Name:\tnitro-signer\nVmPeak:\t  30000 kB\nVmRSS:\t   16404 kB\nThreads:\t3\n";
        assert_eq!(parse_status_rss(status), Some(16404 * 1024));
        assert_eq!(parse_status_rss("VmRSS:\t12 MB\n"), None);
        assert_eq!(parse_status_rss("Name:\tx\n"), None);
    }

    #[test]
    fn this_process_is_measured() {
        let rss = resident_bytes().unwrap();
        assert!(rss > 1 << 20, "{rss}");
        let before = cpu_time().unwrap();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        // Busy for 60 ms: at least one 10 ms tick more, even on a loaded machine.
        assert!(cpu_time().unwrap() > before);
    }
}
