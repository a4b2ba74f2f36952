//! When targets are scraped for a GET of /metrics (the snapshot itself is
//! in `crate::snapshot`).
//!
//! While nobody has asked for /metrics for a while ([`Demand::serving`]),
//! the scrape loops render nothing and keep nothing (remote write still
//! gets every sample): the first GET after such an idle time has every
//! target scraped at once and waits (bounded) for those results, rendered
//! as the scrapes go from then on. A relay that only remote-writes holds
//! neither a body nor a rendered copy of it.
//!
//! Without remote write ([`Demand::on_demand`]) nothing but GETs consumes
//! the scrapes, so there are no interval scrapes at all: every GET has each
//! target scraped for it (see [`Demand::before_get`]), and what a
//! Prometheus stores through relay is what the app said at that scrape.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

/// What the GETs want of one target.
struct Slot {
    /// `job/instance`, for the log.
    name: String,
    /// GETs wait (bounded) for a rendered result of a scrape begun at or
    /// after this instant, which has not come yet.
    want_from: Option<Instant>,
    /// When the scrape of the latest rendered result began.
    scraped_at: Option<Instant>,
    /// When the scrape the GETs wait for must be over (see
    /// [`Demand::scrape_budget`]).
    scrape_by: Option<tokio::time::Instant>,
}

impl Slot {
    fn new(name: String) -> Slot {
        Slot {
            name,
            want_from: None,
            scraped_at: None,
            scrape_by: None,
        }
    }

    /// Whether the latest rendered result comes from a scrape begun at or
    /// after `from`.
    fn fresh_since(&self, from: Instant) -> bool {
        self.scraped_at.is_some_and(|at| at >= from)
    }

    /// Whether a GET still waits for a scrape of this target.
    fn owes(&self) -> bool {
        self.want_from.is_some_and(|from| !self.fresh_since(from))
    }

    fn forget_want(&mut self) {
        self.want_from = None;
        self.scrape_by = None;
    }
}

/// How long after the last GET of /metrics scrapes still render as they
/// go; `RELAY_SERVING_FOR_MS` shortens it (for tests).
fn serving_for() -> Duration {
    std::env::var("RELAY_SERVING_FOR_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(600), Duration::from_millis)
}

/// How old a target's result may be and still answer a GET without a
/// scrape of its own, for a GET that waits `wait` (nine tenths of its
/// scrape timeout): a tenth of that timeout, between 100 ms and 1 s. An HA
/// pair's two scrapes within it share one scrape of the app, and the value
/// is then at most that much older than the scraper's timestamp, within
/// the time a scrape itself may take. The floor bounds how often a flood
/// of GETs hits the app: at most ten times a second.
fn reuse_for(wait: Duration) -> Duration {
    (wait / 9).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

/// The scheduler of scrapes on demand, shared between the scrape loops
/// (which ask it whether and how long to scrape) and the server (whose
/// GETs ask for scrapes and wait for them). Targets come and go with config
/// reloads, each under a lasting id.
pub struct Demand {
    slots: Mutex<BTreeMap<u64, Slot>>,
    /// Milliseconds from `started` to the last GET of /metrics, plus one;
    /// 0 before the first.
    last_get: AtomicU64,
    started: Instant,
    serving_for: Duration,
    /// Bumped by a GET that wants targets scraped: each scrape loop then
    /// scrapes at once (see [`Demand::scrape_now`]).
    demand: watch::Sender<u64>,
    /// Notified on every published result, for GETs waiting for fresh ones.
    published: Notify,
    /// Set while nothing but GETs consumes the scrapes (no remote write):
    /// targets are scraped for each GET, not on an interval.
    on_demand: AtomicBool,
}

impl Default for Demand {
    fn default() -> Self {
        Self::new()
    }
}

impl Demand {
    /// No targets, no GET yet, interval scrapes.
    pub fn new() -> Demand {
        Demand {
            slots: Mutex::new(BTreeMap::new()),
            last_get: AtomicU64::new(0),
            started: Instant::now(),
            serving_for: serving_for(),
            demand: watch::Sender::new(0),
            published: Notify::new(),
            on_demand: AtomicBool::new(false),
        }
    }

    /// A new target named `job/instance` (started, or a reload added it).
    pub fn add(&self, id: u64, name: String) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.insert(id, Slot::new(name));
    }

    /// A target a reload removed: no GET waits for it any more.
    pub fn remove(&self, id: u64) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.remove(&id);
    }

    /// Target `id` published a scrape's result (to the snapshot, before
    /// this call); `complete` says whether it holds the body's lines (not
    /// when nobody was reading, see [`Demand::serving`]): only a complete
    /// one is what a GET waits for, if its scrape began (`scraped_at`) late
    /// enough for that GET.
    pub fn published(&self, id: u64, complete: bool, scraped_at: Instant) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = slots.get_mut(&id).filter(|_| complete) {
            slot.scraped_at = Some(scraped_at);
            if !slot.owes() {
                slot.forget_want();
            }
        }
        drop(slots);
        self.published.notify_waiters();
    }

    /// A receiver that changes when a GET wants targets scraped now (a
    /// scrape loop selects on it next to its interval).
    pub fn scrape_now(&self) -> watch::Receiver<u64> {
        self.demand.subscribe()
    }

    /// Whether target `id` still owes a GET a rendered result.
    pub fn wanted(&self, id: u64) -> bool {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.get(&id).is_some_and(Slot::owes)
    }

    /// How long the scrape target `id` owes the waiting GETs may take:
    /// it must end (a hung app: `up 0`, no app series) before they stop
    /// waiting and serve the older result. None: no GET waits.
    pub fn scrape_budget(&self, id: u64) -> Option<Duration> {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let by = slots.get(&id).filter(|s| s.owes())?.scrape_by?;
        Some(by.saturating_duration_since(tokio::time::Instant::now()))
    }

    /// Says whether GETs are the only consumer of the scrapes (no remote
    /// write): then each GET has the targets scraped for it.
    pub fn set_on_demand(&self, on: bool) {
        self.on_demand.store(on, Ordering::Relaxed);
    }

    /// Whether targets are scraped for each GET rather than on an interval.
    pub fn on_demand(&self) -> bool {
        self.on_demand.load(Ordering::Relaxed)
    }

    /// Whether /metrics was asked for lately: scrapes then render as they
    /// go, so that a GET finds their lines ready.
    pub fn serving(&self) -> bool {
        let last = self.last_get.load(Ordering::Relaxed);
        last != 0 && self.millis().saturating_sub(last - 1) < self.serving_for.as_millis() as u64
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn mark_get(&self) {
        self.last_get
            .store(self.millis().saturating_add(1), Ordering::Relaxed);
    }

    /// What a GET of `/metrics` does before it reads the snapshot. Without
    /// remote write ([`Demand::on_demand`]) every GET has each target
    /// scraped now, unless its result is at most [`reuse_for`] old, and
    /// concurrent GETs share one scrape per target: the central Prometheus
    /// stores what the app says at its own scrape, as if it scraped the
    /// app. With remote write (interval scrapes) only the GET after an idle
    /// time (the scrapes did not render) has every target scraped now. The
    /// results are awaited up to `wait`; whatever is there then is served.
    pub async fn before_get(&self, wait: Duration) {
        let now = Instant::now();
        let deadline = tokio::time::Instant::now() + wait;
        // The scrapes end before this GET stops waiting: a tenth of the
        // wait is left for the pipeline's end, the merge and the answer.
        let scrape_by = tokio::time::Instant::now() + wait.mul_f64(0.9);
        let needs = if self.on_demand() {
            self.mark_get();
            let from = now.checked_sub(reuse_for(wait)).unwrap_or(now);
            self.demand_fresh(from, scrape_by)
        } else if !self.serving() {
            self.mark_get();
            self.demand_fresh(now, scrape_by)
        } else {
            self.mark_get();
            // A GET while serving waits only for scrapes a GET asked for.
            let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            slots
                .iter()
                .filter(|(_, s)| s.owes())
                .filter_map(|(id, s)| Some((*id, s.want_from?)))
                .collect()
        };
        self.await_fresh(&needs, deadline).await;
    }

    /// Asks for a result of every target from a scrape begun at or after
    /// `from` (ended by `scrape_by`); returns what the GET then waits for.
    fn demand_fresh(&self, from: Instant, scrape_by: tokio::time::Instant) -> Vec<(u64, Instant)> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let mut needs = Vec::new();
        for (id, slot) in slots.iter_mut().filter(|(_, s)| !s.fresh_since(from)) {
            // A scrape begun after the latest `from` serves every GET
            // waiting; it may run until the latest of their deadlines.
            slot.want_from = Some(slot.want_from.map_or(from, |w| w.max(from)));
            slot.scrape_by = Some(slot.scrape_by.map_or(scrape_by, |b| b.max(scrape_by)));
            needs.push((*id, from));
        }
        drop(slots);
        if !needs.is_empty() {
            self.demand.send_modify(|n| *n = n.wrapping_add(1));
        }
        needs
    }

    /// Waits until every target in `needs` has a result from a scrape
    /// begun at or after its instant (or is gone), or until `deadline`.
    async fn await_fresh(&self, needs: &[(u64, Instant)], deadline: tokio::time::Instant) {
        loop {
            let published = self.published.notified();
            tokio::pin!(published);
            // Registered before looking, so a publish in between wakes it.
            published.as_mut().enable();
            let waiting = {
                let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
                needs
                    .iter()
                    .any(|(id, from)| slots.get(id).is_some_and(|s| !s.fresh_since(*from)))
            };
            if !waiting {
                return;
            }
            if tokio::time::timeout_at(deadline, published).await.is_err() {
                // Given up: what is there is served, and the GETs after
                // this one do not wait for the same scrapes again (unless
                // they ask for their own).
                let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
                for (id, from) in needs {
                    let Some(slot) = slots.get_mut(id).filter(|s| !s.fresh_since(*from)) else {
                        continue;
                    };
                    if slot.want_from.is_some_and(|w| w <= *from) {
                        slot.forget_want();
                    }
                    tracing::debug!(target = %slot.name, "a GET stopped waiting for this target's fresh scrape; its last result is served");
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A GET that gave up waiting for a target's fresh result (its scrape
    /// is slow, or its loop is gone) is served what is there, and the GETs
    /// after it do not wait for that scrape again.
    #[tokio::test]
    async fn a_get_that_gave_up_waiting_does_not_make_the_next_ones_wait() {
        let demand = Demand::new();
        demand.add(0, "app/a:1".into());
        demand.published(0, true, Instant::now());
        assert!(!demand.serving(), "idle before the first GET");
        demand.before_get(Duration::from_millis(20)).await;
        assert!(demand.serving());
        assert!(!demand.wanted(0), "the wait was given up");
        let next = tokio::time::timeout(
            Duration::from_secs(30),
            demand.before_get(Duration::from_secs(60)),
        )
        .await;
        assert!(next.is_ok(), "the next GET did not wait its whole minute");
    }

    /// Without remote write every GET asks for a scrape begun after it
    /// (less the reuse time), and GETs that come together share one.
    #[tokio::test]
    async fn on_demand_gets_share_one_scrape_and_reuse_only_a_fresh_result() {
        let demand = Arc::new(Demand::new());
        demand.add(0, "app/a:1".into());
        demand.set_on_demand(true);
        let scraped = Instant::now();
        demand.published(0, true, Instant::now());
        let mut wanted = demand.scrape_now();
        wanted.mark_unchanged();
        // A GET right after a scrape (within 100 ms): served at once.
        let now = tokio::time::timeout(
            Duration::from_secs(30),
            demand.before_get(Duration::from_millis(900)),
        )
        .await;
        assert!(now.is_ok() && !wanted.has_changed().unwrap_or(true));
        // Later, two GETs together: one demand, both answered by one scrape.
        // (A 2 s timeout: results up to 200 ms old are reused.)
        tokio::time::sleep(Duration::from_millis(300)).await;
        let gets: Vec<_> = (0..2)
            .map(|_| {
                let demand = demand.clone();
                tokio::spawn(async move { demand.before_get(Duration::from_millis(1800)).await })
            })
            .collect();
        tokio::time::timeout(Duration::from_secs(30), wanted.changed())
            .await
            .expect("a demand")
            .expect("the scheduler is there");
        assert!(demand.wanted(0));
        let budget = demand.scrape_budget(0).expect("a GET waits");
        assert!(budget <= Duration::from_millis(1620), "{budget:?}");
        // A result from before the GETs does not answer them...
        demand.published(0, true, scraped);
        assert!(demand.wanted(0));
        // ...nor one without the body's lines...
        demand.published(0, false, Instant::now());
        assert!(demand.wanted(0));
        // ...one begun now does, both.
        demand.published(0, true, Instant::now());
        assert!(!demand.wanted(0));
        for get in gets {
            let answered = tokio::time::timeout(Duration::from_secs(30), get).await;
            assert!(matches!(answered, Ok(Ok(_))), "a GET was not answered");
        }
        assert_eq!(demand.scrape_budget(0), None);
    }
}
