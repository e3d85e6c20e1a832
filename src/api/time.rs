//! Arithmetic on timestamps that never panics: a time too far in the future is the end of time.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// `t + d`, saturating at [`Timestamp::MAX`].
pub fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}
