//! Waiting on conditions with a deadline, never on a fixed sleep.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};

/// Evaluates `condition` until it returns `Ok(Some(value))` or `timeout` passes.
///
/// Errors from `condition` are treated as "not yet" (the cluster may be settling) and the
/// last one is reported if the deadline passes. Checks start every 50 ms and back off to
/// every 500 ms, so a fast condition is seen fast and a slow one costs little.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut condition: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(50);
    let mut last_error = None;
    loop {
        match condition().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(err) => last_error = Some(err),
        }
        if Instant::now() >= deadline {
            return Err(match last_error {
                Some(err) => {
                    anyhow!("timed out after {timeout:?} waiting for {what}; last error: {err:#}")
                }
                None => anyhow!("timed out after {timeout:?} waiting for {what}"),
            });
        }
        tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn returns_the_value_once_the_condition_holds() {
        let calls = AtomicU32::new(0);
        let value = wait_until("three calls", Duration::from_secs(10), || async {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            Ok((n >= 3).then_some(n))
        })
        .await
        .unwrap();
        assert_eq!(value, 3);
    }

    #[tokio::test]
    async fn times_out_with_the_last_error() {
        let err = wait_until::<(), _, _>("never", Duration::from_millis(120), || async {
            Err(anyhow!("still broken"))
        })
        .await
        .unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("waiting for never") && text.contains("still broken"),
            "{text}"
        );
    }
}
