//! What a process costs, from `/proc`: resident memory and CPU time.

use std::time::Instant;

use anyhow::{Context, Result};

/// `VmRSS` and `VmHWM` of a process, in MiB.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub rss_mib: f64,
    pub hwm_mib: f64,
}

pub fn memory(pid: u32) -> Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| -> Result<f64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("no {name} in /proc/{pid}/status"))?;
        let kib: f64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .with_context(|| format!("bad {name} line {line:?}"))?;
        Ok(kib / 1024.0)
    };
    Ok(Memory {
        rss_mib: field("VmRSS:")?,
        hwm_mib: field("VmHWM:")?,
    })
}

/// utime + stime of a process (all its threads), in seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name is in parentheses and may hold spaces: fields count from after it.
    let after = &stat[stat.rfind(')').context("malformed /proc/<pid>/stat")? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of the whole line (utime, stime) are 11 and 12 after the name.
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks / hz)
}

/// CPU use of several processes over one window: start it, wait, then `finish`.
pub struct CpuWindow {
    pids: Vec<u32>,
    start: Vec<f64>,
    began: Instant,
}

impl CpuWindow {
    pub fn start(pids: &[u32]) -> Result<CpuWindow> {
        Ok(CpuWindow {
            pids: pids.to_vec(),
            start: pids
                .iter()
                .map(|&p| cpu_seconds(p))
                .collect::<Result<_>>()?,
            began: Instant::now(),
        })
    }

    /// Per process: CPU seconds used per wall second, in percent of one core.
    pub fn finish(self) -> Result<Vec<f64>> {
        let wall = self.began.elapsed().as_secs_f64();
        self.pids
            .iter()
            .zip(&self.start)
            .map(|(&p, &s)| Ok(100.0 * (cpu_seconds(p)? - s) / wall))
            .collect()
    }
}

/// The pid of the `kube-apiserver` whose command line mentions `marker` (a path of its
/// control plane's scratch directory).
pub fn find_process(binary_name: &str, marker: &str) -> Option<u32> {
    let entries = std::fs::read_dir("/proc").ok()?;
    entries.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline);
        let argv0 = cmdline.split('\0').next()?;
        (argv0.ends_with(binary_name) && cmdline.contains(marker)).then_some(pid)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let mem = memory(me).unwrap();
        assert!(mem.rss_mib > 0.0 && mem.hwm_mib >= mem.rss_mib);
        assert!(cpu_seconds(me).unwrap() >= 0.0);
        let window = CpuWindow::start(&[me]).unwrap();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(window.finish().unwrap()[0] >= 0.0);
    }
}
