//! The machine's CPU time from Linux's `/proc/stat`, for how much of it a hypervisor took
//! (`steal`): `None` where there is no `/proc`.

/// The machine's CPU time so far, in clock ticks over all cores (the `cpu` line of `/proc/stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// user + nice + system + idle + iowait + irq + softirq + steal.
    pub total: u64,
    /// Time a virtual machine's cores waited for the host (taken by other guests).
    pub steal: u64,
}

impl CpuTimes {
    pub fn now() -> Option<Self> {
        Self::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    fn parse(stat: &str) -> Option<Self> {
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let ticks: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|v| v.parse().ok())
            .collect::<Option<_>>()?;
        (ticks.len() == 8).then(|| Self {
            total: ticks.iter().sum(),
            steal: ticks[7],
        })
    }

    /// The share of the machine's CPU time the host took between `self` and `later`.
    pub fn steal_share_until(&self, later: &CpuTimes) -> Option<f64> {
        let total = later.total.checked_sub(self.total)?;
        let steal = later.steal.checked_sub(self.steal)?;
        (total > 0).then(|| steal as f64 / total as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_is_the_eighth_field_of_the_cpu_line() {
        let a = CpuTimes::parse("cpu  100 0 20 800 5 0 3 2 0 0\ncpu0 1 2 3\n").unwrap();
        assert_eq!(
            a,
            CpuTimes {
                total: 930,
                steal: 2
            }
        );
        let b = CpuTimes::parse("cpu  150 0 30 900 5 0 3 32 0 0\n").unwrap();
        assert_eq!(a.steal_share_until(&b), Some(30.0 / 190.0));
        assert!(CpuTimes::parse("intr 1 2 3").is_none());
    }
}
