//! The pure part of leader election: given the Lease as this replica last saw it, and when it
//! saw it change, decide whether to follow, acquire or renew. Expiry is judged by this
//! replica's monotonic clock from the moment it saw the record change, never by comparing
//! the holder's `renewTime` with the local wall clock (clocks drift; observations don't).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::LeaseSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use tokio::time::Instant;

/// The Lease record as last seen, and when it was first seen in that form.
#[derive(Debug, Clone)]
pub struct Observation {
    pub record: LeaseSpec,
    pub seen_at: Instant,
}

impl Observation {
    /// Records what was just read; the clock restarts only when the record changed.
    pub fn update(previous: Option<Observation>, record: LeaseSpec, now: Instant) -> Observation {
        match previous {
            Some(prev) if prev.record == record => prev,
            _ => Observation {
                record,
                seen_at: now,
            },
        }
    }

    pub fn holder(&self) -> Option<&str> {
        self.record
            .holder_identity
            .as_deref()
            .filter(|h| !h.is_empty())
    }

    /// When the holder's claim runs out, by this replica's clock.
    pub fn expires_at(&self) -> Instant {
        let secs = self.record.lease_duration_seconds.unwrap_or(0).max(0) as u64;
        self.seen_at + Duration::from_secs(secs)
    }
}

/// What to do with the Lease now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Another replica holds an unexpired Lease.
    Follow { holder: String, expires_at: Instant },
    /// The Lease is free, released or expired: take it.
    Acquire,
    /// This replica holds it: renew.
    Renew,
}

pub fn decide(identity: &str, observed: &Observation, now: Instant) -> Decision {
    match observed.holder() {
        Some(holder) if holder == identity => Decision::Renew,
        Some(holder) if now < observed.expires_at() => Decision::Follow {
            holder: holder.to_string(),
            expires_at: observed.expires_at(),
        },
        _ => Decision::Acquire,
    }
}

/// Whether a write starts a new leader term or renews the one this replica leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// A new term, even when the Lease still names this replica (it stepped down and takes
    /// the Lease back): a new acquire time and one more transition, so a term's identity
    /// (holder, transitions) never repeats.
    NewTerm,
    /// A renewal during the term.
    Renewal,
}

/// The record to write: renewing keeps the acquire time and transitions; a new term counts
/// one more transition.
pub fn next_record(
    identity: &str,
    old: Option<&LeaseSpec>,
    write: Write,
    lease_duration: Duration,
    now: Timestamp,
) -> LeaseSpec {
    let renewing =
        write == Write::Renewal && old.and_then(|o| o.holder_identity.as_deref()) == Some(identity);
    let old_transitions = old.and_then(|o| o.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(lease_duration.as_secs().max(1) as i32),
        acquire_time: if renewing {
            old.and_then(|o| o.acquire_time.clone())
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        // As client-go, a new Lease starts at 0 and every change of holder counts one; so
        // does a replica taking its own Lease back for a new term.
        lease_transitions: Some(match (renewing, old.is_some()) {
            (true, _) => old_transitions,
            (false, true) => old_transitions + 1,
            (false, false) => 0,
        }),
        ..Default::default()
    }
}

/// The record a leader writes when it steps down on shutdown: no holder, so followers take
/// over on their next try instead of waiting for expiry.
pub fn released_record(old: &LeaseSpec, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(String::new()),
        lease_duration_seconds: Some(1),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: old.lease_transitions,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, secs: i32, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(secs),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_lease_is_followed_until_it_expires_by_our_clock() {
        let start = Instant::now();
        let seen = Observation::update(None, lease("other", 15, 3), start);
        assert_eq!(
            decide("me", &seen, start + Duration::from_secs(14)),
            Decision::Follow {
                holder: "other".into(),
                expires_at: start + Duration::from_secs(15)
            }
        );
        assert_eq!(
            decide("me", &seen, start + Duration::from_secs(15)),
            Decision::Acquire
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_clock_restarts_only_when_the_record_changes() {
        let start = Instant::now();
        let seen = Observation::update(None, lease("other", 15, 3), start);
        // The same record read again later does not extend the holder's claim...
        let again = Observation::update(
            Some(seen.clone()),
            lease("other", 15, 3),
            start + Duration::from_secs(10),
        );
        assert_eq!(again.seen_at, start);
        // ...but a renewal (a changed record) does.
        let mut renewed = lease("other", 15, 3);
        renewed.renew_time = Some(MicroTime(Timestamp::UNIX_EPOCH));
        let later = Observation::update(Some(again), renewed, start + Duration::from_secs(10));
        assert_eq!(later.seen_at, start + Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn free_or_released_leases_are_acquired_at_once() {
        let now = Instant::now();
        let released = Observation::update(None, lease("", 1, 4), now);
        assert_eq!(decide("me", &released, now), Decision::Acquire);
        let empty = Observation::update(None, LeaseSpec::default(), now);
        assert_eq!(decide("me", &empty, now), Decision::Acquire);
    }

    #[tokio::test(start_paused = true)]
    async fn our_own_lease_is_renewed() {
        let now = Instant::now();
        let mine = Observation::update(None, lease("me", 15, 2), now);
        assert_eq!(
            decide("me", &mine, now + Duration::from_secs(100)),
            Decision::Renew
        );
    }

    #[test]
    fn transitions_count_changes_of_holder() {
        let now = Timestamp::UNIX_EPOCH;
        let d = Duration::from_secs(15);
        let new = Write::NewTerm;
        assert_eq!(
            next_record("me", None, new, d, now).lease_transitions,
            Some(0)
        );
        let taken = next_record("me", Some(&lease("other", 15, 3)), new, d, now);
        assert_eq!(taken.lease_transitions, Some(4));
        assert_eq!(taken.acquire_time, Some(MicroTime(now)));
        let mut held = lease("me", 15, 4);
        held.acquire_time = Some(MicroTime(Timestamp::from_second(5).unwrap()));
        let renewed = next_record(
            "me",
            Some(&held),
            Write::Renewal,
            d,
            Timestamp::from_second(9).unwrap(),
        );
        assert_eq!(renewed.lease_transitions, Some(4));
        assert_eq!(renewed.acquire_time, held.acquire_time);
        assert_eq!(
            renewed.renew_time,
            Some(MicroTime(Timestamp::from_second(9).unwrap()))
        );
        // Taking a released lease is a transition too.
        let released = released_record(&held, now);
        assert_eq!(released.holder_identity.as_deref(), Some(""));
        assert_eq!(
            next_record("other", Some(&released), new, d, now).lease_transitions,
            Some(5)
        );
    }

    #[test]
    fn taking_its_own_lease_back_is_a_new_term() {
        let d = Duration::from_secs(15);
        let mut held = lease("me", 15, 4);
        held.acquire_time = Some(MicroTime(Timestamp::from_second(5).unwrap()));
        let later = Timestamp::from_second(60).unwrap();
        let again = next_record("me", Some(&held), Write::NewTerm, d, later);
        assert_eq!(again.lease_transitions, Some(5), "a new identity");
        assert_eq!(again.acquire_time, Some(MicroTime(later)));
    }
}
