//! `basic_auth_users`: bcrypt hashes checked against the request's
//! credentials. bcrypt is slow on purpose (about 50 ms at cost 10), so, as
//! exporter-toolkit does, an outcome is cached under a digest of user, hash
//! and password (a Prometheus scraping every second costs one bcrypt, not
//! one a second), and one check runs at a time.

use std::collections::{BTreeMap, HashMap};
use std::sync::{LazyLock, Mutex};

use base64::Engine as _;
use hyper::header::HeaderValue;

use crate::config::Secret;

/// Outcomes kept; past this, an arbitrary one is dropped for a new one.
const CACHE_SIZE: usize = 256;

/// Checks credentials, remembering outcomes.
#[derive(Default)]
pub(super) struct Checker {
    /// SHA-256 of user, hash and password → whether they matched.
    cache: Mutex<HashMap<[u8; 32], bool>>,
    /// One bcrypt at a time: a burst of bad passwords costs one core at most.
    one_at_a_time: tokio::sync::Mutex<()>,
}

/// Compared with when the user is unknown, so an unknown user takes as long
/// as a wrong password (no user enumeration by timing).
static UNKNOWN_USER_HASH: LazyLock<String> =
    LazyLock::new(|| bcrypt::hash("relay: no such user", 10).unwrap_or_default());

impl Checker {
    /// Whether `authorization` is `Basic` with a user of `users` and the
    /// password its hash was made from.
    pub(super) async fn check(
        &self,
        users: &BTreeMap<String, Secret>,
        authorization: Option<&HeaderValue>,
    ) -> bool {
        let Some((user, password)) = authorization.and_then(credentials) else {
            return false;
        };
        let hash = users.get(&user).map(|h| h.0.clone());
        let known = hash.is_some();
        let key = cache_key(&user, hash.as_deref().unwrap_or(""), &password);
        if let Some(ok) = self.cached(&key) {
            return ok;
        }
        let _turn = self.one_at_a_time.lock().await;
        // Another request may have checked the same while this one waited.
        if let Some(ok) = self.cached(&key) {
            return ok;
        }
        let verified = tokio::task::spawn_blocking(move || {
            let hash = hash.as_deref().unwrap_or(UNKNOWN_USER_HASH.as_str());
            bcrypt::verify(&password, hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        let ok = known && verified;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_SIZE {
            if let Some(old) = cache.keys().next().copied() {
                cache.remove(&old);
            }
        }
        cache.insert(key, ok);
        ok
    }

    fn cached(&self, key: &[u8; 32]) -> Option<bool> {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .copied()
    }
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
        assert_eq!(checker.cache.lock().expect("lock").len(), 3);
        assert!(checker.check(&users, Some(&basic("alice:right"))).await);
        assert_eq!(checker.cache.lock().expect("lock").len(), 3);
    }
}
