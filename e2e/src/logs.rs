//! Reading log files back, mostly to explain failures.

use std::path::{Path, PathBuf};

/// The last `lines` lines of a file, or a note saying why it cannot be read.
pub fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => last_lines(&String::from_utf8_lossy(&bytes), lines),
        Err(err) => format!("(cannot read {}: {err})", path.display()),
    }
}

/// The last `lines` lines of a file that contain `needle`.
pub fn tail_matching(path: &Path, needle: &str, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let matching: Vec<&str> = text.lines().filter(|l| l.contains(needle)).collect();
            last_lines(&matching.join("\n"), lines)
        }
        Err(err) => format!("(cannot read {}: {err})", path.display()),
    }
}

fn last_lines(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Every regular file under `dir`, sorted, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// One log to print when a test fails.
#[derive(Clone, Debug)]
pub struct LogSource {
    pub path: PathBuf,
    /// Only lines containing this text (e.g. the test's namespace in a shared log).
    pub filter: Option<String>,
    pub lines: usize,
}

/// Prints each log's tail to stderr (which the test harness shows for failed tests).
pub fn print_logs(title: &str, sources: &[LogSource]) {
    eprintln!("\n======== logs for {title} ========");
    for source in sources {
        let text = match &source.filter {
            Some(needle) => tail_matching(&source.path, needle, source.lines),
            None => tail(&source.path, source.lines),
        };
        let which = match &source.filter {
            Some(needle) => format!("lines with {needle:?}, last {}", source.lines),
            None => format!("last {} lines", source.lines),
        };
        eprintln!(
            "-------- {} ({which}) --------\n{text}",
            source.path.display()
        );
    }
    eprintln!("======== end of logs for {title} ========\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_keep_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.log");
        std::fs::write(&file, "one ns-a\ntwo\nthree ns-a\nfour\n").unwrap();
        assert_eq!(tail(&file, 2), "three ns-a\nfour");
        assert_eq!(tail(&file, 10), "one ns-a\ntwo\nthree ns-a\nfour");
        assert_eq!(tail_matching(&file, "ns-a", 1), "three ns-a");
        assert!(tail(&dir.path().join("missing"), 3).starts_with("(cannot read"));
    }

    #[test]
    fn files_are_listed_recursively() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("ns/pod")).unwrap();
        std::fs::write(dir.path().join("ns/pod/c.log"), "x").unwrap();
        std::fs::write(dir.path().join("top.log"), "y").unwrap();
        let files = files_under(dir.path());
        assert_eq!(
            files,
            vec![dir.path().join("ns/pod/c.log"), dir.path().join("top.log")]
        );
    }
}
