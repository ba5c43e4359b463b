//! `[daemon]`: how `drdrill daemon` schedules and stops drills.

use std::time::Duration;

use serde::Deserialize;

use crate::diag::{Bounded, limit};
use crate::duration::{DAY, HOUR, YEAR};

limit!(
    /// Every running drill holds a scratch folder and often a server process.
    pub Concurrency: usize = "[daemon] concurrency", 1, 256
);
limit!(
    /// Longer than systemd waits for a stop (the unit's TimeoutStopSec) is moot.
    pub GracePeriod: Duration = "[daemon] grace_period", Duration::ZERO, Duration::from_secs(HOUR)
);

limit!(
    /// An overdue alert per period: shorter than seconds would be a flood.
    pub MaxInterval: Duration = "max_interval", Duration::from_secs(5), Duration::from_secs(10 * YEAR)
);

limit!(
    /// Each look lists a repository (a restic or pgBackRest process); more often
    /// than every second is load, less often than daily misses a day's backup.
    pub FreshnessInterval: Duration = "[daemon] freshness_interval", Duration::from_secs(1), Duration::from_secs(DAY)
);

/// How `drdrill daemon` schedules and stops drills.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Drills running at once, across all plans; more wait for a free slot.
    pub concurrency: Bounded<Concurrency>,
    /// The zone schedules are read in (`0 3 * * *` is 03:00 there).
    pub timezone: TimeZone,
    /// On SIGTERM, how long running drills may finish before they are aborted.
    pub grace_period: Bounded<GracePeriod>,
    /// How often the newest backup of each `existing` and `latest` plan is
    /// looked at between drills, to call a plan `stale` when it is older than
    /// the plan's RPO target.
    pub freshness_interval: Bounded<FreshnessInterval>,
    /// A plan with no passed run for this long is `overdue`, unless the plan
    /// sets its own `max_interval`. `None`: only plans that set one.
    pub max_interval: Option<Bounded<MaxInterval>>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            concurrency: Bounded::of(2),
            timezone: TimeZone(chrono_tz::UTC),
            grace_period: Bounded::of(Duration::from_secs(30)),
            freshness_interval: Bounded::of(Duration::from_secs(300)),
            max_interval: None,
        }
    }
}

/// An IANA zone name such as `Europe/Paris`, or `UTC`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeZone(pub chrono_tz::Tz);

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse::<chrono_tz::Tz>().map(TimeZone).map_err(|_| {
            serde::de::Error::custom(format!(
                "unknown time zone {text:?}; write an IANA name such as \"UTC\", \"Europe/Paris\" or \"America/New_York\""
            ))
        })
    }
}
