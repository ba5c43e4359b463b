//! The overview's period, folded once and kept between page loads. Folding
//! 100,000 records takes seconds (each is parsed from the JSON that was
//! hashed) and the page is loaded far more often than runs end, so the fold is
//! kept and each page folds only the records appended since the one before.
//! The period starts at 00:00 UTC [`PERIOD_DAYS`] days back, so the kept fold
//! is started again once a day, when its oldest day leaves the period, and a
//! page never shows a record older than the period it names.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};

use super::ChainCache;
use crate::db::Db;
use crate::db::evidence::ChainEntry;
use crate::report::fold::Gather;
use crate::report::{Report, ReportOptions, rfc, value_of};

/// How many whole days back the console's pages look, besides today.
pub const PERIOD_DAYS: i64 = 90;

/// Where the period of a page shown at `now` starts.
pub fn start(now: DateTime<Utc>) -> DateTime<Utc> {
    (now.date_naive() - Duration::days(PERIOD_DAYS)).and_time(NaiveTime::MIN).and_utc()
}

/// A plan's newest drill, as the matrix shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Last {
    pub run_id: i64,
    pub result: String,
    pub started_at: String,
    pub rto_ms: Option<f64>,
    pub rpo_ms: Option<f64>,
}

/// Drills of one day that passed, failed, and ended otherwise (aborted).
pub type Day = (usize, usize, usize);

/// A check that failed: how often, and its newest output and run.
#[derive(Debug, Clone, PartialEq)]
pub struct Failing {
    pub count: usize,
    pub output: String,
    pub run_id: i64,
}

/// What the overview draws besides the plans' summaries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    /// Each plan's newest drill (skipped runs left out).
    pub last: HashMap<String, Last>,
    pub days: BTreeMap<NaiveDate, Day>,
    /// Failed checks by (plan, kind, description).
    pub checks: BTreeMap<(String, String, String), Failing>,
}

impl View {
    fn add(&mut self, e: &ChainEntry) {
        let r = &e.record;
        for c in r.checks.iter().filter(|c| !c.passed) {
            let key = (r.plan.clone(), c.kind.clone(), c.description.clone());
            let f = self.checks.entry(key).or_insert(Failing { count: 0, output: String::new(), run_id: 0 });
            // Records come in chain order: the last one seen is the newest.
            f.count += 1;
            f.output.clone_from(&c.output);
            f.run_id = r.run_id;
        }
        if !e.ran() {
            return;
        }
        let last = Last {
            run_id: r.run_id,
            result: r.result.clone(),
            started_at: r.started_at.clone(),
            rto_ms: value_of(r, "rto"),
            rpo_ms: value_of(r, "rpo"),
        };
        match self.last.get_mut(&r.plan) {
            Some(l) => *l = last,
            None => {
                self.last.insert(r.plan.clone(), last);
            }
        }
        if let Some(t) = rfc(&r.started_at) {
            let d = self.days.entry(t.date_naive()).or_default();
            match r.result.as_str() {
                "passed" => d.0 += 1,
                "failed" => d.1 += 1,
                _ => d.2 += 1,
            }
        }
    }
}

/// The fold of one period's records, up to chain entry `after`.
struct Period {
    since: DateTime<Utc>,
    /// The newest chain entry folded (0 before the first).
    after: i64,
    gather: Gather,
    view: View,
}

impl Period {
    fn new(since: DateTime<Utc>) -> Period {
        // The overview lists no records, so the fold keeps only the newest.
        Period { since, after: 0, gather: Gather::new(Some(1), None), view: View::default() }
    }

    fn add(&mut self, e: ChainEntry) {
        self.after = self.after.max(e.seq);
        self.view.add(&e);
        self.gather.add(e);
    }
}

/// The kept fold; one per daemon.
#[derive(Default)]
pub struct PeriodCache {
    kept: Mutex<Option<Period>>,
}

impl PeriodCache {
    /// The report and view of the period that contains `now`: the kept fold
    /// caught up with the records appended since it was last asked, or a new
    /// fold when the period moved on or the chain is not the one folded.
    pub fn read(
        &self,
        db: &Db,
        chain: &ChainCache,
        now: DateTime<Utc>,
        max_interval: Option<std::time::Duration>,
    ) -> anyhow::Result<(Report, View)> {
        let (head, verified) = chain.status(db)?;
        let since = start(now);
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let head_seq = head.as_ref().map_or(0, |h| h.0);
        let period = match kept.take() {
            Some(p) if p.since == since && p.after <= head_seq => kept.insert(p),
            _ => kept.insert(Period::new(since)),
        };
        let from = crate::db::ts(since);
        db.for_each_evidence_after(period.after, Some(&from), |e| {
            period.add(e);
            Ok(())
        })?;
        let opts = ReportOptions { since: Some(since), plan: None, now, max_interval };
        let report = Report::from_gather(period.gather.clone(), verified, head, db, &opts)?;
        Ok((report, period.view.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// Runs `n` drills of plans a, b and c, started from `first` an hour
    /// apart; every third one fails its check, every fifth is aborted.
    fn drills(db: &Db, first: DateTime<Utc>, n: usize) {
        for i in 0..n {
            let started = first + Duration::hours(i as i64);
            let plan = ["a", "b", "c"][i % 3];
            let new = crate::db::NewRun {
                plan,
                plan_file: "",
                plan_sha256: "ab",
                description: "",
                trigger: "schedule",
                host: "here",
                started_at: started,
            };
            let id = db.start_run(&new).unwrap();
            let failed = i % 3 == 1;
            let status = if i % 5 == 4 {
                "aborted"
            } else if failed {
                "failed"
            } else {
                "passed"
            };
            let end = crate::db::RunEnd {
                status: status.into(),
                finished_at: Some(started + Duration::seconds(30)),
                backup_id: Some(format!("b{}", i / 2)),
                store: Some("local".into()),
                ..Default::default()
            };
            let restore = crate::record::PhaseRecord {
                name: "restore".into(),
                started_at: started,
                duration_ms: 1.0,
                status: "ok".into(),
                detail: String::new(),
            };
            let check = crate::record::CheckRecord {
                kind: "command".into(),
                description: format!("check of {plan}"),
                passed: !failed,
                attempts: 1,
                duration_ms: 1.0,
                output: format!("output {i}"),
            };
            let rto = crate::record::Measurement {
                name: "rto".into(),
                value_ms: Some(1000.0 + i as f64),
                target_ms: Some(60_000.0),
                method: "monotonic".into(),
                met: Some(true),
            };
            db.finish_run(id, &end, &[restore], &[check], &[rto]).unwrap();
        }
    }

    /// What a page shows of a read: summaries (as the JSON report has them), trends and the view.
    fn shown(read: (Report, View)) -> (String, String, View) {
        let (report, view) = read;
        (serde_json::to_string(&report.plans).unwrap(), format!("{:?}", report.trends), view)
    }

    #[test]
    fn the_kept_fold_caught_up_equals_a_fold_from_scratch() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("d.db")).unwrap();
        let now = Utc::now();
        let chain = ChainCache::default();
        // A record from before the period is never folded.
        drills(&db, start(now) - Duration::days(3), 4);
        drills(&db, now - Duration::days(20), 40);
        let kept = PeriodCache::default();
        let first = shown(kept.read(&db, &chain, now, None).unwrap());
        assert_eq!(first.2.last.len(), 3);
        assert!(first.2.days.keys().all(|d| *d >= start(now).date_naive()), "{:?}", first.2.days);
        for more in [1, 7, 0, 13] {
            drills(&db, now - Duration::days(2), more);
            let caught_up = shown(kept.read(&db, &chain, now, None).unwrap());
            let fresh = shown(PeriodCache::default().read(&db, &chain, now, None).unwrap());
            assert_eq!(caught_up, fresh, "after {more} more drills");
        }
        let total: usize = kept.read(&db, &chain, now, None).unwrap().0.plans.iter().map(|p| p.runs).sum();
        assert_eq!(total, 40 + 21);
        let newest = db.evidence_head().unwrap().unwrap().0;
        let shown_newest = kept.read(&db, &chain, now, None).unwrap().1.last.values().map(|l| l.run_id).max();
        assert_eq!(shown_newest, Some(newest));
    }

    #[test]
    fn the_period_starts_at_midnight_utc_ninety_days_back() {
        let now = Utc.with_ymd_and_hms(2026, 12, 3, 17, 45, 12).unwrap();
        assert_eq!(start(now), Utc.with_ymd_and_hms(2026, 9, 4, 0, 0, 0).unwrap());
        // Until midnight the period, and so the kept fold, stays the same.
        assert_eq!(start(now + Duration::hours(6)), start(now));
        assert_eq!(start(now + Duration::hours(7)), Utc.with_ymd_and_hms(2026, 9, 5, 0, 0, 0).unwrap());
    }
}
