//! Last-resort cleanup when the process exits.
//!
//! A shared cluster lives in a `static`, which Rust never drops. Its process groups, scratch
//! directory and pod network are registered here and removed by an `atexit` hook, which runs when
//! the test harness returns from `main` or calls `std::process::exit`. (If the process is
//! SIGKILLed instead, `PR_SET_PDEATHSIG` still kills the children, see `process`, and the
//! next harness to claim a pod network removes the dead one's, see `network`.)

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// Process group ids, with whether the group gets SIGTERM and a moment before SIGKILL.
static GROUPS: Mutex<BTreeMap<i32, bool>> = Mutex::new(BTreeMap::new());
static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// What else to undo at exit, by a name its owner unregisters it with (a pod network).
type Undo = Box<dyn FnOnce() + Send>;
static LAST: Mutex<BTreeMap<String, Undo>> = Mutex::new(BTreeMap::new());
static INSTALL: Once = Once::new();

fn install() {
    INSTALL.call_once(|| {
        // SAFETY: registers a plain `extern "C"` function with no captured state.
        unsafe {
            libc::atexit(run_at_exit);
        }
    });
}

pub(crate) fn register_group(pgid: i32, graceful: bool) {
    install();
    GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(pgid, graceful);
}

pub(crate) fn unregister_group(pgid: i32) {
    GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&pgid);
}

pub(crate) fn register_dir(dir: PathBuf) {
    install();
    DIRS.lock().unwrap_or_else(|e| e.into_inner()).push(dir);
}

pub(crate) fn unregister_dir(dir: &std::path::Path) {
    DIRS.lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|d| d != dir);
}

/// Runs `undo` at exit, after the processes are gone, unless `unregister_last(name)` first.
pub(crate) fn register_last(name: String, undo: impl FnOnce() + Send + 'static) {
    install();
    LAST.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name, Box::new(undo));
}

pub(crate) fn unregister_last(name: &str) {
    LAST.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
}

fn signal(pgid: i32, signal: libc::c_int) {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory involved.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

extern "C" fn run_at_exit() {
    // try_lock: never block the exit of the process on a lock held by a dying thread.
    if let Ok(groups) = GROUPS.try_lock() {
        let graceful: Vec<i32> = groups
            .iter()
            .filter(|(_, graceful)| **graceful)
            .map(|(pgid, _)| *pgid)
            .collect();
        for pgid in &graceful {
            signal(*pgid, libc::SIGTERM);
        }
        // Give those a moment to stop their own children; they are our children, so
        // waitpid tells when they are gone.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut pending = graceful;
        while !pending.is_empty() && Instant::now() < deadline {
            pending.retain(|pgid| {
                let mut status = 0;
                // SAFETY: waitpid on our own child with a valid out-pointer.
                unsafe { libc::waitpid(*pgid, &mut status, libc::WNOHANG) == 0 }
            });
            std::thread::sleep(Duration::from_millis(10));
        }
        for pgid in groups.keys() {
            signal(*pgid, libc::SIGKILL);
        }
    }
    if let Ok(dirs) = DIRS.try_lock()
        && !crate::session::keep_scratch()
    {
        for dir in dirs.iter() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    // After the processes: the pod runner removes its pods' namespaces as it stops.
    if let Ok(mut last) = LAST.try_lock() {
        for (_, undo) in std::mem::take(&mut *last) {
            undo();
        }
    }
}
