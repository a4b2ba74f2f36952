//! `basic_auth_users`: bcrypt hashes checked against the request's
//! credentials. bcrypt is slow on purpose (about 50 ms at cost 10), so, as
//! exporter-toolkit does, an outcome is cached under a digest of user, hash
//! and password (a Prometheus scraping every second costs one bcrypt, not
//! one a second).
//!
//! Built to degrade gracefully under a flood of wrong passwords (issue 19):
//! - successes and failures are cached apart, so wrong passwords can only
//!   evict other failures; a success stays until its user's hash changes or
//!   the user leaves the file, and is answered without waiting for anything;
//! - bcrypt runs on a small pool of blocking threads, never on the runtime's,
//!   and an outcome is cached even if the request went away meanwhile (a
//!   scraper that timed out finds it on its next try);
//! - an unknown user is checked against a configured user's hash, so it
//!   costs what a real user costs even when users' costs differ.
//!
//! There is no per-client limit: a flood still delays a user whose outcome is
//! not cached yet (first request, or after a password change) by its queue.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;
use hyper::header::HeaderValue;
use tokio::sync::Semaphore;

use crate::config::Secret;
use crate::telemetry::WebAuthChecks;

/// Failed outcomes kept; past this, the oldest goes.
const FAILURES_KEPT: usize = 256;

/// Successful outcomes kept. Only a right password gets in, one per user
/// and hash, so this is reached only with that many users.
const SUCCESSES_KEPT: usize = 1024;

/// Checks credentials, remembering outcomes.
pub(super) struct Checker {
    outcomes: Arc<Mutex<Outcomes>>,
    /// bcrypt runs at most this many at a time, so a flood of wrong
    /// passwords leaves CPUs for scraping and serving.
    pool: Arc<Semaphore>,
    /// Where checks are counted, once relay's metrics exist.
    counted: OnceLock<WebAuthChecks>,
}

impl Default for Checker {
    fn default() -> Self {
        Checker {
            outcomes: Arc::default(),
            pool: Arc::new(Semaphore::new(pool_size())),
            counted: OnceLock::new(),
        }
    }
}

/// Half the CPUs relay may use (cgroup quota included), at least 1, at
/// most 2.
fn pool_size() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get() / 2)
        .clamp(1, 2)
}

/// Cached outcomes, keyed by [`cache_key`].
#[derive(Default)]
struct Outcomes {
    /// Keys that matched → the user and the hash they matched.
    good: HashMap<[u8; 32], (String, String)>,
    /// Keys that did not match, with their order of arrival.
    bad: HashSet<[u8; 32]>,
    bad_order: VecDeque<[u8; 32]>,
}

impl Outcomes {
    fn get(&self, key: &[u8; 32]) -> Option<bool> {
        if self.good.contains_key(key) {
            Some(true)
        } else if self.bad.contains(key) {
            Some(false)
        } else {
            None
        }
    }

    fn remember_good(&mut self, key: [u8; 32], user: String, hash: String) {
        // The user's earlier hashes are dead: their entries go.
        self.good.retain(|_, (u, h)| *u != user || *h == hash);
        if self.good.len() >= SUCCESSES_KEPT {
            if let Some(old) = self.good.keys().next().copied() {
                self.good.remove(&old);
            }
        }
        self.good.insert(key, (user, hash));
    }

    fn remember_bad(&mut self, key: [u8; 32]) {
        if !self.bad.insert(key) {
            return;
        }
        self.bad_order.push_back(key);
        while self.bad_order.len() > FAILURES_KEPT {
            if let Some(old) = self.bad_order.pop_front() {
                self.bad.remove(&old);
            }
        }
    }

    /// Drops successes of users no longer in the file (or with a new hash).
    fn forget_gone(&mut self, users: &BTreeMap<String, Secret>) {
        self.good
            .retain(|_, (u, h)| users.get(u.as_str()).is_some_and(|s| s.0 == *h));
    }
}

/// How a check was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// No `Basic` credentials, or no users: refused without bcrypt.
    Unusable,
    Cached,
    Verified,
}

impl Checker {
    /// Whether `authorization` is `Basic` with a user of `users` and the
    /// password its hash was made from.
    pub(super) async fn check(
        &self,
        users: &BTreeMap<String, Secret>,
        authorization: Option<&HeaderValue>,
    ) -> bool {
        let (ok, answer) = self.decide(users, authorization).await;
        if let Some(checks) = self.counted.get() {
            let answered_by = match answer {
                Answer::Unusable => "none",
                Answer::Cached => "cache",
                Answer::Verified => "bcrypt",
            };
            let outcome = if ok { "accepted" } else { "refused" };
            checks
                .get_or_create(&vec![
                    ("outcome".to_owned(), outcome.to_owned()),
                    ("answered_by".to_owned(), answered_by.to_owned()),
                ])
                .inc();
        }
        ok
    }

    /// Counts checks into `checks` from now on (the first call wins).
    pub(super) fn count_into(&self, checks: WebAuthChecks) {
        let _ = self.counted.set(checks);
    }

    async fn decide(
        &self,
        users: &BTreeMap<String, Secret>,
        authorization: Option<&HeaderValue>,
    ) -> (bool, Answer) {
        let Some((user, password)) = authorization.and_then(credentials) else {
            return (false, Answer::Unusable);
        };
        let hash = users.get(&user).map(|h| h.0.clone());
        let key = cache_key(&user, hash.as_deref().unwrap_or(""), &password);
        if let Some(ok) = self.cached(&key) {
            return (ok, Answer::Cached);
        }
        let Some(against) = hash.as_deref().or_else(|| stand_in(users, &user)) else {
            return (false, Answer::Unusable);
        };
        let against = against.to_owned();
        let known = hash.is_some();
        let Ok(permit) = self.pool.clone().acquire_owned().await else {
            return (false, Answer::Unusable);
        };
        // Another request may have checked the same while this one waited.
        if let Some(ok) = self.cached(&key) {
            return (ok, Answer::Cached);
        }
        let outcomes = self.outcomes.clone();
        // The permit and the caching go with the blocking task: a request
        // dropped meanwhile neither frees a turn early nor loses the outcome.
        let verified = tokio::task::spawn_blocking(move || {
            let matched = bcrypt::verify(&password, &against).unwrap_or(false);
            let mut outcomes = outcomes.lock().unwrap_or_else(|e| e.into_inner());
            match hash {
                Some(hash) if matched => outcomes.remember_good(key, user, hash),
                _ => outcomes.remember_bad(key),
            }
            drop(permit);
            matched
        })
        .await
        .unwrap_or(false);
        // An unknown user was checked against another user's hash.
        let ok = known && verified;
        if ok {
            self.lock().forget_gone(users);
        }
        (ok, Answer::Verified)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Outcomes> {
        self.outcomes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cached(&self, key: &[u8; 32]) -> Option<bool> {
        self.lock().get(key)
    }
}

/// A configured user's hash, picked by a digest of `user` and of every
/// configured hash: an unknown user costs what a real one does, the same
/// one for the same name while the file is unchanged, and which one cannot
/// be told without knowing the hashes.
fn stand_in<'a>(users: &'a BTreeMap<String, Secret>, user: &str) -> Option<&'a str> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for hash in users.values() {
        ctx.update(&(hash.0.len() as u64).to_le_bytes());
        ctx.update(hash.0.as_bytes());
    }
    ctx.update(user.as_bytes());
    let digest = ctx.finish();
    let mut first = [0; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    let count = u64::try_from(users.len()).ok().filter(|&n| n > 0)?;
    let index = usize::try_from(u64::from_le_bytes(first) % count).ok()?;
    users.values().nth(index).map(|h| h.0.as_str())
}

/// User and password of a `Basic` `Authorization` header.
fn credentials(header: &HeaderValue) -> Option<(String, Vec<u8>)> {
    let value = header.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

/// Each part length-prefixed, so `("ab", "c")` and `("a", "bc")` differ.
fn cache_key(user: &str, hash: &str, password: &[u8]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user.as_bytes(), hash.as_bytes(), password] {
        ctx.update(&(part.len() as u64).to_le_bytes());
        ctx.update(part);
    }
    let mut key = [0; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

/// Whether `hash` has bcrypt's modular crypt form: `$2a$`, `$2b$`, `$2x$`
/// or `$2y$`, a two-digit cost from 04 to 31, `$`, then 53 characters of
/// bcrypt's base64 (salt and digest).
pub fn is_bcrypt_hash(hash: &str) -> bool {
    let b = hash.as_bytes();
    if b.len() != 60 || !hash.is_ascii() {
        return false;
    }
    let cost = hash.get(4..6).and_then(|c| c.parse::<u32>().ok());
    b[0] == b'$'
        && b[1] == b'2'
        && matches!(b[2], b'a' | b'b' | b'x' | b'y')
        && b[3] == b'$'
        && b[4..6].iter().all(u8::is_ascii_digit)
        && cost.is_some_and(|c| (4..=31).contains(&c))
        && b[6] == b'$'
        && b[7..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_pass: &str) -> HeaderValue {
        let encoded = base64::engine::general_purpose::STANDARD.encode(user_pass);
        HeaderValue::from_str(&format!("Basic {encoded}")).expect("ascii")
    }

    #[test]
    fn credentials_are_split_at_the_first_colon() {
        assert_eq!(
            credentials(&basic("alice:pa:ss")),
            Some(("alice".into(), b"pa:ss".to_vec()))
        );
        assert_eq!(credentials(&basic("alice")), None);
        assert_eq!(credentials(&HeaderValue::from_static("Bearer abc")), None);
        assert_eq!(credentials(&HeaderValue::from_static("Basic !!!")), None);
    }

    #[test]
    fn bcrypt_hashes_are_recognised() {
        let made = bcrypt::hash("secret", 4).expect("hash");
        assert!(is_bcrypt_hash(&made), "{made}");
        assert!(is_bcrypt_hash(&made.replacen("$2b$", "$2y$", 1)));
        assert!(!is_bcrypt_hash("secret"));
        assert!(!is_bcrypt_hash(&made.replacen("$04$", "$03$", 1)));
        assert!(!is_bcrypt_hash(&made[..59]));
    }

    fn users(list: &[(&str, &str, u32)]) -> BTreeMap<String, Secret> {
        list.iter()
            .map(|(user, password, cost)| {
                let hash = bcrypt::hash(password, *cost).expect("hash");
                ((*user).to_owned(), Secret(hash))
            })
            .collect()
    }

    fn cost(hash: &str) -> Option<u32> {
        hash.get(4..6)?.parse().ok()
    }

    /// Issue 19: a flood of distinct wrong passwords filled the cache and
    /// evicted good users' entries, whose next scrape then queued behind the
    /// flood. Good users' outcomes must stay cached throughout. (Several good
    /// users: one entry could survive an arbitrary eviction by luck.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 3)]
    async fn a_flood_of_wrong_passwords_never_evicts_a_good_user() {
        const ATTACKERS: usize = 4;
        const EACH: usize = 2 * FAILURES_KEPT / ATTACKERS;
        let names: Vec<String> = (0..8).map(|i| format!("scraper{i}")).collect();
        let list: Vec<_> = names.iter().map(|n| (n.as_str(), "right", 4)).collect();
        let users = Arc::new(users(&list));
        let goods: Vec<_> = names.iter().map(|n| basic(&format!("{n}:right"))).collect();
        let checker = Arc::new(Checker::default());
        for good in &goods {
            assert_eq!(
                checker.decide(&users, Some(good)).await,
                (true, Answer::Verified)
            );
        }
        let flood: Vec<_> = (0..ATTACKERS)
            .map(|a| {
                let (users, checker) = (users.clone(), checker.clone());
                tokio::spawn(async move {
                    let mut verified = 0;
                    for i in 0..EACH {
                        let wrong = basic(&format!("scraper{}:wrong-{i}", a % 8));
                        let (ok, answer) = checker.decide(&users, Some(&wrong)).await;
                        assert!(!ok);
                        verified += usize::from(answer == Answer::Verified);
                    }
                    verified
                })
            })
            .collect();
        let mut legit = Vec::new();
        loop {
            let done = flood.iter().all(|f| f.is_finished());
            for good in &goods {
                legit.push(checker.decide(&users, Some(good)).await);
            }
            if done {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let mut verified = 0;
        for f in flood {
            verified += f.await.expect("attacker");
        }
        assert_eq!(
            verified,
            ATTACKERS * EACH,
            "each wrong password: one bcrypt"
        );
        let reverified = legit.iter().filter(|(_, a)| *a == Answer::Verified).count();
        let refused = legit.iter().filter(|(ok, _)| !ok).count();
        assert_eq!(
            (reverified, refused),
            (0, 0),
            "bcrypt runs and refusals among {} good checks during the flood",
            legit.len()
        );
    }

    /// Issue 19: unknown users were checked against a cost-10 hash whatever
    /// the configured users' cost, so timing told which users exist.
    #[test]
    fn unknown_users_are_checked_at_a_configured_users_cost() {
        let one = users(&[("alice", "a", 6)]);
        for name in ["bob", "mallory", "", "alice2"] {
            assert_eq!(stand_in(&one, name).and_then(cost), Some(6), "{name:?}");
        }
        let mixed = users(&[("alice", "a", 4), ("bob", "b", 5), ("carol", "c", 5)]);
        let costs: std::collections::BTreeSet<_> = (0..64)
            .map(|i| stand_in(&mixed, &format!("user{i}")).and_then(cost))
            .collect();
        assert_eq!(costs, [Some(4), Some(5)].into(), "costs unknown names get");
        assert_eq!(
            stand_in(&mixed, "zed"),
            stand_in(&mixed, "zed"),
            "stable per name"
        );
        assert_eq!(stand_in(&BTreeMap::new(), "zed"), None);
    }

    #[tokio::test]
    async fn an_unknown_user_with_a_real_users_password_is_refused() {
        let users = users(&[("alice", "right", 4)]);
        let checker = Checker::default();
        assert_eq!(
            checker.decide(&users, Some(&basic("bob:right"))).await,
            (false, Answer::Verified)
        );
        assert_eq!(
            checker.decide(&users, Some(&basic("bob:right"))).await,
            (false, Answer::Cached)
        );
    }

    #[tokio::test]
    async fn right_password_passes_and_outcomes_are_cached() {
        let users = BTreeMap::from([(
            "alice".to_owned(),
            Secret(bcrypt::hash("right", 4).expect("hash")),
        )]);
        let checker = Checker::default();
        assert!(checker.check(&users, Some(&basic("alice:right"))).await);
        assert!(!checker.check(&users, Some(&basic("alice:wrong"))).await);
        assert!(!checker.check(&users, Some(&basic("bob:right"))).await);
        assert!(!checker.check(&users, None).await);
        let sizes = |c: &Checker| {
            let outcomes = c.lock();
            (outcomes.good.len(), outcomes.bad.len())
        };
        assert_eq!(sizes(&checker), (1, 2), "(successes, failures) cached");
        assert!(checker.check(&users, Some(&basic("alice:right"))).await);
        assert_eq!(sizes(&checker), (1, 2));
    }

    #[tokio::test]
    async fn a_success_is_forgotten_when_its_users_hash_changes() {
        let before = users(&[("alice", "old", 4), ("bob", "b", 4)]);
        let checker = Checker::default();
        assert!(checker.check(&before, Some(&basic("alice:old"))).await);
        assert!(checker.check(&before, Some(&basic("bob:b"))).await);
        let after = users(&[("alice", "new", 4)]);
        assert_eq!(
            checker.decide(&after, Some(&basic("alice:old"))).await,
            (false, Answer::Verified)
        );
        assert_eq!(
            checker.decide(&after, Some(&basic("bob:b"))).await,
            (false, Answer::Verified)
        );
        assert!(checker.check(&after, Some(&basic("alice:new"))).await);
        let good: Vec<_> = checker.lock().good.values().cloned().collect();
        assert_eq!(good, [("alice".to_owned(), after["alice"].0.clone())]);
    }

    /// Polls once: a check answered from the cache must be ready at once.
    fn poll_once<F: std::future::Future>(future: F) -> std::task::Poll<F::Output> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        std::pin::pin!(future).poll(&mut cx)
    }

    #[tokio::test]
    async fn a_good_user_never_waits_for_a_busy_pool() {
        let users = users(&[("alice", "right", 4)]);
        let checker = Checker::default();
        assert!(checker.check(&users, Some(&basic("alice:right"))).await);
        let size = checker.pool.available_permits();
        assert_eq!(size, pool_size());
        // Every turn taken, as by a flood of wrong passwords.
        let taken = checker
            .pool
            .clone()
            .acquire_many_owned(u32::try_from(size).expect("small"))
            .await
            .expect("permits");
        let (good, wrong) = (basic("alice:right"), basic("alice:wrong"));
        let answer = poll_once(checker.check(&users, Some(&good)));
        assert_eq!(answer, std::task::Poll::Ready(true));
        let answer = poll_once(checker.check(&users, Some(&wrong)));
        assert_eq!(answer, std::task::Poll::Pending);
        drop(taken);
    }

    /// A scraper that times out while its check runs finds the outcome on
    /// its next try instead of queueing behind the flood again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_outcome_is_kept_when_its_request_goes_away() {
        // Cost 10 (tens of ms): the check holds its turn long enough to be
        // seen holding it (at cost 4 it could come and go between polls).
        let users = Arc::new(users(&[("alice", "right", 10)]));
        let checker = Arc::new(Checker::default());
        let size = checker.pool.available_permits();
        let request = tokio::spawn({
            let (users, checker) = (users.clone(), checker.clone());
            async move { checker.check(&users, Some(&basic("alice:right"))).await }
        });
        let mut waited = 0;
        while checker.pool.available_permits() == size {
            waited += 1;
            assert!(waited < 10_000, "the check never took a turn");
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        request.abort();
        let _ = request.await;
        // The turn comes back only when bcrypt is done, outcome cached.
        let all = checker
            .pool
            .acquire_many(u32::try_from(size).expect("small"))
            .await
            .expect("permits");
        drop(all);
        assert_eq!(
            checker.decide(&users, Some(&basic("alice:right"))).await,
            (true, Answer::Cached)
        );
    }
}
