//! Summaries folded one record at a time: the only implementation of a plan's
//! counts, health inputs, RTO/RPO statistics, coverage and trend points, used
//! both by reports over records held in memory and by the HTML report that
//! streams a long history (a million runs) without holding it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;

use chrono::{DateTime, Utc};

use super::{CoverageInfo, Point, Stat, TestedBackup, rfc, value_of};
use crate::db::evidence::{ChainEntry, EvidenceRecord, parse_ms};

/// A trend keeps every point up to this many; beyond, it keeps a bounded
/// sample (a chart is 560 px wide and draws at most 400 marks anyway).
pub const MAX_POINTS: usize = 500;
/// Buckets of a sampled trend; each keeps at most [`KEEP`] points.
const BUCKETS: usize = 100;
/// Points kept per bucket: its first, last, highest, lowest and first failed.
const KEEP: usize = 5;

/// How many of the last runs decide whether a plan is failing despite a pass.
const RECENT: usize = 5;

/// One measurement's values over a plan's runs.
#[derive(Debug, Clone, Default)]
struct StatFold {
    /// Every measured value: an exact median needs them all (8 bytes a run,
    /// not a whole record).
    values: Vec<f64>,
    stat: Stat,
}

impl StatFold {
    fn add(&mut self, r: &EvidenceRecord, name: &str) {
        let s = &mut self.stat;
        match r.measurement(name) {
            Some(m) => {
                if let Some(v) = m.value_ms.as_deref().and_then(parse_ms) {
                    self.values.push(v);
                } else {
                    s.not_measured += 1;
                }
                if m.met == Some(false) {
                    s.missed += 1;
                }
                if let Some(t) = m.target_ms.as_deref().and_then(parse_ms) {
                    s.target_ms = Some(t);
                }
            }
            None => s.not_measured += 1,
        }
    }

    fn finish(self) -> Stat {
        let (mut values, mut s) = (self.values, self.stat);
        values.sort_by(f64::total_cmp);
        s.measured = values.len();
        if !values.is_empty() {
            let n = values.len();
            s.median_ms = Some(if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 });
            s.worst_ms = values.last().copied();
        }
        s
    }
}

/// Which backups the plan's drills restored.
#[derive(Debug, Clone, Default)]
pub(super) struct CoverageFold {
    info: CoverageInfo,
    /// Where each (repository, id) is in `info.tested`, by the pair's hash: a
    /// history of fresh backups has one per run, so a search of the list per
    /// run would be quadratic, and keying by the strings would hold each twice.
    index: HashMap<u64, usize>,
    /// Pairs whose hash another pair already has (checked against `tested`).
    collided: HashMap<(Option<String>, String), usize>,
}

/// A fixed hash of a backup's (repository, id).
fn key_hash(store: Option<&str>, id: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one((store, id))
}

impl CoverageFold {
    pub(super) fn add(&mut self, r: &EvidenceRecord) {
        if !r.phases.iter().any(|p| p.name == "restore" && p.status == "ok") {
            return;
        }
        let info = &mut self.info;
        info.restores += 1;
        let Some(id) = &r.backup.id else { return };
        let store = r.backup.store.as_deref();
        let hash = key_hash(store, id);
        let same = |t: &TestedBackup| t.repository.as_deref() == store && &t.id == id;
        let found = match self.index.get(&hash) {
            Some(&i) if same(&info.tested[i]) => Some(i),
            Some(_) => self.collided.get(&(r.backup.store.clone(), id.clone())).copied(),
            None => None,
        };
        match found {
            Some(i) => {
                let t = &mut info.tested[i];
                t.times += 1;
                // Records come oldest first.
                t.last_tested.clone_from(&r.started_at);
                t.last_result.clone_from(&r.result);
            }
            None => {
                match self.index.entry(hash) {
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(info.tested.len());
                    }
                    std::collections::hash_map::Entry::Occupied(_) => {
                        self.collided.insert((r.backup.store.clone(), id.clone()), info.tested.len());
                    }
                }
                info.tested.push(TestedBackup {
                    repository: r.backup.store.clone(),
                    id: id.clone(),
                    created_at: r.backup.created_at.clone(),
                    times: 1,
                    last_tested: r.started_at.clone(),
                    last_result: r.result.clone(),
                });
            }
        }
    }

    pub(super) fn finish(self) -> CoverageInfo {
        let mut info = self.info;
        info.tested.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.id.cmp(&a.id)));
        info
    }
}

/// A trend chart's points: all of them up to [`MAX_POINTS`], then a sample in
/// chain order of at most about as many, so a chart of a million runs costs
/// what one of 500 does and still shows the worst value and the failures.
#[derive(Debug, Clone, Default)]
pub struct Trend {
    raw: Vec<Point>,
    sampled: bool,
    /// Full buckets of `per` points each, reduced to at most [`KEEP`].
    buckets: Vec<Vec<Point>>,
    per: usize,
    /// The bucket being filled, and how many points went into it.
    open: Vec<Point>,
    open_n: usize,
}

impl Trend {
    pub fn add(&mut self, p: Point) {
        if !self.sampled {
            self.raw.push(p);
            if self.raw.len() <= MAX_POINTS {
                return;
            }
            self.sampled = true;
            self.per = MAX_POINTS / BUCKETS;
            for p in std::mem::take(&mut self.raw) {
                self.bucket(p);
            }
            return;
        }
        self.bucket(p);
    }

    fn bucket(&mut self, p: Point) {
        self.open.push(p);
        self.open_n += 1;
        if self.open.len() >= 2 * KEEP {
            self.open = reduce(std::mem::take(&mut self.open));
        }
        if self.open_n < self.per {
            return;
        }
        self.buckets.push(reduce(std::mem::take(&mut self.open)));
        self.open_n = 0;
        if self.buckets.len() == BUCKETS {
            // Twice as many points per bucket from now on: neighbours merge.
            self.buckets = self.buckets.chunks(2).map(|pair| reduce(pair.concat())).collect();
            self.per *= 2;
        }
    }

    /// The points to draw, in the order they came.
    pub fn finish(self) -> Vec<Point> {
        if !self.sampled {
            return self.raw;
        }
        let mut out: Vec<Point> = self.buckets.into_iter().flatten().collect();
        out.extend(reduce(self.open));
        out
    }
}

/// The first, last, highest, lowest and first failed of `points`, in their order.
fn reduce(points: Vec<Point>) -> Vec<Point> {
    if points.len() <= KEEP {
        return points;
    }
    let by_value = |want: std::cmp::Ordering| {
        let mut best: Option<(usize, f64)> = None;
        for (i, v) in points.iter().enumerate().filter_map(|(i, p)| p.value_ms.map(|v| (i, v))) {
            if best.is_none_or(|(_, b)| v.total_cmp(&b) == want) {
                best = Some((i, v));
            }
        }
        best.map(|(i, _)| i)
    };
    let mut keep: Vec<usize> = [
        Some(0),
        Some(points.len() - 1),
        by_value(std::cmp::Ordering::Greater),
        by_value(std::cmp::Ordering::Less),
        points.iter().position(|p| !p.passed),
    ]
    .into_iter()
    .flatten()
    .collect();
    keep.sort_unstable();
    keep.dedup();
    keep.into_iter().map(|i| points[i]).collect()
}

/// A plan's RTO and RPO trend points.
#[derive(Debug, Clone, Default)]
pub struct Trends {
    pub rto: Vec<Point>,
    pub rpo: Vec<Point>,
}

/// Everything a plan's summary needs, folded from its records oldest first.
#[derive(Debug, Clone, Default)]
pub struct PlanFold {
    runs: usize,
    passed: usize,
    failed: usize,
    aborted: usize,
    last_run: Option<String>,
    last_result: Option<String>,
    last_success: Option<String>,
    /// Whether each of the last [`RECENT`] runs did not pass.
    recent: VecDeque<bool>,
    starts: Vec<DateTime<Utc>>,
    rto: StatFold,
    rpo: StatFold,
    coverage: CoverageFold,
    rto_trend: Trend,
    rpo_trend: Trend,
}

/// What [`PlanFold::finish`] yields before the schedule is looked at.
pub(super) struct Folded {
    pub runs: usize,
    pub passed: usize,
    pub failed: usize,
    pub aborted: usize,
    pub last_run: Option<String>,
    pub last_result: Option<String>,
    pub last_success: Option<String>,
    /// Runs among the last [`RECENT`] that did not pass.
    pub recent_failures: usize,
    pub starts: Vec<DateTime<Utc>>,
    pub rto: Stat,
    pub rpo: Stat,
    pub coverage: CoverageInfo,
    pub trends: Trends,
}

impl PlanFold {
    pub(super) fn add(&mut self, r: &EvidenceRecord) {
        self.runs += 1;
        match r.result.as_str() {
            "passed" => {
                self.passed += 1;
                // clone_from reuses the buffer: no allocation per record.
                let at = r.finished_at.as_ref().unwrap_or(&r.started_at);
                self.last_success.get_or_insert_with(String::new).clone_from(at);
            }
            "failed" => self.failed += 1,
            "aborted" => self.aborted += 1,
            _ => {}
        }
        self.last_run.get_or_insert_with(String::new).clone_from(&r.started_at);
        self.last_result.get_or_insert_with(String::new).clone_from(&r.result);
        self.recent.push_back(r.result != "passed");
        if self.recent.len() > RECENT {
            self.recent.pop_front();
        }
        let start = rfc(&r.started_at);
        self.starts.extend(start);
        self.rto.add(r, "rto");
        self.rpo.add(r, "rpo");
        self.coverage.add(r);
        if let Some(at) = start {
            let passed = r.result == "passed";
            self.rto_trend.add(Point { at, value_ms: value_of(r, "rto"), passed });
            self.rpo_trend.add(Point { at, value_ms: value_of(r, "rpo"), passed });
        }
    }

    pub(super) fn finish(self) -> Folded {
        Folded {
            runs: self.runs,
            passed: self.passed,
            failed: self.failed,
            aborted: self.aborted,
            last_run: self.last_run,
            last_result: self.last_result,
            last_success: self.last_success,
            recent_failures: self.recent.iter().filter(|f| **f).count(),
            starts: self.starts,
            rto: self.rto.finish(),
            rpo: self.rpo.finish(),
            coverage: self.coverage.finish(),
            trends: Trends { rto: self.rto_trend.finish(), rpo: self.rpo_trend.finish() },
        }
    }
}

/// A report's records folded in chain order: per-plan folds of the drills that
/// ran, the count of every selected record, and the newest `keep` records (all
/// of them when `keep` is `None`). Cloning one is how a caller that keeps
/// folding (the console) makes a report and goes on.
#[derive(Debug, Clone)]
pub struct Gather {
    pub plans: BTreeMap<String, PlanFold>,
    pub runs: usize,
    pub first_start: Option<DateTime<Utc>>,
    pub kept: VecDeque<ChainEntry>,
    keep: Option<usize>,
    /// Whether the records seen so far are consecutive in the chain.
    pub contiguous: bool,
}

impl Gather {
    pub fn new(keep: Option<usize>, plan: Option<&str>) -> Gather {
        let mut plans = BTreeMap::new();
        if let Some(p) = plan {
            plans.insert(p.to_string(), PlanFold::default());
        }
        Gather { plans, runs: 0, first_start: None, kept: VecDeque::new(), keep, contiguous: true }
    }

    pub fn add(&mut self, e: ChainEntry) {
        if self.runs == 0 {
            self.first_start = rfc(&e.record.started_at);
        }
        self.runs += 1;
        if let Some(prev) = self.kept.back() {
            self.contiguous &= e.seq == prev.seq + 1;
        }
        // A skipped run is in the chain (and the runs table) but was no drill:
        // summaries, charts and test counts are of drills that ran.
        if e.ran() {
            match self.plans.get_mut(&e.record.plan) {
                Some(p) => p.add(&e.record),
                None => {
                    let mut p = PlanFold::default();
                    p.add(&e.record);
                    self.plans.insert(e.record.plan.clone(), p);
                }
            }
        }
        self.kept.push_back(e);
        if self.keep.is_some_and(|k| self.kept.len() > k.max(1)) {
            self.kept.pop_front();
        }
    }
}

/// The plan file's path of `name`, if it ran from one.
pub(super) fn file_of<'a>(files: &'a BTreeMap<String, String>, name: &str) -> Option<&'a Path> {
    files.get(name).map(Path::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn point(i: usize, v: f64, passed: bool) -> Point {
        Point {
            at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::seconds(i as i64),
            value_ms: Some(v),
            passed,
        }
    }

    #[test]
    fn a_short_trend_keeps_every_point() {
        let mut t = Trend::default();
        let pts: Vec<Point> = (0..MAX_POINTS).map(|i| point(i, i as f64, i % 3 != 0)).collect();
        for p in &pts {
            t.add(*p);
        }
        let out = t.finish();
        assert_eq!(out.len(), MAX_POINTS);
        assert!(out.iter().zip(&pts).all(|(a, b)| a.at == b.at && a.value_ms == b.value_ms && a.passed == b.passed));
    }

    #[test]
    fn a_long_trend_is_bounded_and_keeps_the_worst_the_ends_and_the_failures() {
        let n = 1_000_003;
        let mut t = Trend::default();
        for i in 0..n {
            // One spike and one failure, far from the ends.
            let v = if i == 777_777 { 1e9 } else { (i % 1000) as f64 };
            t.add(point(i, v, i != 333_333));
        }
        let out = t.finish();
        assert!(out.len() <= MAX_POINTS + KEEP, "{} points", out.len());
        assert!(out.len() > MAX_POINTS / 4, "{} points", out.len());
        assert_eq!(out.first().map(|p| p.at), Some(point(0, 0.0, true).at));
        assert_eq!(out.last().map(|p| p.at), Some(point(n - 1, 0.0, true).at));
        assert!(out.iter().any(|p| p.value_ms == Some(1e9)), "the spike was dropped");
        assert!(out.iter().any(|p| !p.passed), "the failure was dropped");
        assert!(out.windows(2).all(|w| w[0].at < w[1].at), "points out of order");
    }
}
