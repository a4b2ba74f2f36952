//! The SigV4 algorithm itself, pure: canonical request, string to sign,
//! signing key and signature, as AWS's "Signature Version 4" reference
//! specifies them. No clock and no I/O, so the AWS test vectors and the
//! botocore comparison test pin it down.

use reqwest::header::HeaderMap;
use reqwest::Url;
use ring::{digest, hmac};

/// Headers never signed: hop-by-hop ones a proxy may change, and those
/// the SDKs leave out (botocore's list, plus Prometheus's `uber-trace-id`).
const UNSIGNED: &[&str] = &[
    "authorization",
    "baggage",
    "connection",
    "content-length",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "traceparent",
    "tracestate",
    "trailer",
    "transfer-encoding",
    "uber-trace-id",
    "upgrade",
    "user-agent",
    "x-amzn-trace-id",
];

/// The secret half of a signature: what a request is signed with.
pub(crate) struct Key<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
}

/// Where a signature is valid: region, service and day.
pub(crate) struct Scope<'a> {
    pub region: &'a str,
    pub service: &'a str,
    /// `YYYYMMDDTHHMMSSZ`, the request's `X-Amz-Date`.
    pub amz_date: &'a str,
}

/// Lowercase hex of SHA-256 (the payload hash and the canonical request's).
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

/// The `Authorization` header's value for a request whose headers
/// (x-amz-date, x-amz-content-sha256 and the token already among them) are
/// `headers`, to `url`, with the body's hash `payload_hash`.
pub(crate) fn authorization(
    key: &Key<'_>,
    scope: &Scope<'_>,
    method: &str,
    url: &Url,
    headers: &HeaderMap,
    payload_hash: &str,
) -> String {
    let (canonical, signed_headers) = canonical_request(method, url, headers, payload_hash);
    let day = scope.amz_date.get(..8).unwrap_or(scope.amz_date);
    let credential_scope = format!("{day}/{}/{}/aws4_request", scope.region, scope.service);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{credential_scope}\n{}",
        scope.amz_date,
        sha256_hex(canonical.as_bytes())
    );
    let mut signing_key = format!("AWS4{}", key.secret_access_key).into_bytes();
    for part in [day, scope.region, scope.service, "aws4_request"] {
        signing_key = mac(&signing_key, part.as_bytes());
    }
    let signature = hex(&mac(&signing_key, string_to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{credential_scope}, SignedHeaders={signed_headers}, Signature={signature}",
        key.access_key_id
    )
}

/// The canonical request and its `SignedHeaders` list.
pub(crate) fn canonical_request(
    method: &str,
    url: &Url,
    headers: &HeaderMap,
    payload_hash: &str,
) -> (String, String) {
    let mut pairs: Vec<(String, String)> = Vec::new();
    if !headers.contains_key("host") {
        pairs.push(("host".to_owned(), host_header(url)));
    }
    for name in headers.keys() {
        if UNSIGNED.contains(&name.as_str()) {
            continue;
        }
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| collapse_spaces(&String::from_utf8_lossy(v.as_bytes())))
            .collect();
        pairs.push((name.as_str().to_owned(), values.join(",")));
    }
    pairs.sort();
    let mut canonical_headers = String::new();
    for (name, value) in &pairs {
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(value);
        canonical_headers.push('\n');
    }
    let signed: Vec<&str> = pairs.iter().map(|(n, _)| n.as_str()).collect();
    let signed = signed.join(";");
    let canonical = format!(
        "{method}\n{}\n{}\n{canonical_headers}\n{signed}\n{payload_hash}",
        canonical_uri(url),
        canonical_query(url),
    );
    (canonical, signed)
}

/// `Host` as HTTP clients send it: the port only when not the scheme's.
pub(crate) fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// The path, URI-encoded once more (every service but S3 double-encodes:
/// the path's own `%XX` become `%25XX`).
fn canonical_uri(url: &Url) -> String {
    let path = url.path();
    if path.is_empty() {
        return "/".to_owned();
    }
    encode(path, true)
}

/// Query parameters sorted by name then value, each URI-encoded.
fn canonical_query(url: &Url) -> String {
    let mut pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (encode(&k, false), encode(&v, false)))
        .collect();
    pairs.sort();
    let pairs: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join("&")
}

/// AWS's URI encoding: unreserved characters kept, every other byte as
/// `%XX` in upper case; `/` kept in a path.
pub(crate) fn encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/');
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Trimmed, runs of spaces as one (the canonical form of a header value).
fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::sign(&key, data).as_ref().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    const KEY: Key<'static> = Key {
        access_key_id: "AKIDEXAMPLE",
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    };
    const SCOPE: Scope<'static> = Scope {
        region: "us-east-1",
        service: "service",
        amz_date: "20150830T123600Z",
    };

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    /// AWS's published test suite, case `get-vanilla`.
    #[test]
    fn the_aws_get_vanilla_vector() {
        let url = Url::parse("https://example.amazonaws.com/").unwrap();
        let h = headers(&[("x-amz-date", "20150830T123600Z")]);
        let auth = authorization(&KEY, &SCOPE, "GET", &url, &h, &sha256_hex(b""));
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    /// AWS's test suite, case `get-vanilla-query-order-key-case`: parameters
    /// sorted by name, then value.
    #[test]
    fn the_aws_query_order_vector() {
        let url = Url::parse("https://example.amazonaws.com/?Param2=value2&Param1=value1").unwrap();
        let h = headers(&[("x-amz-date", "20150830T123600Z")]);
        let (canonical, signed) = canonical_request("GET", &url, &h, &sha256_hex(b""));
        assert_eq!(signed, "host;x-amz-date");
        assert_eq!(
            canonical,
            "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let auth = authorization(&KEY, &SCOPE, "GET", &url, &h, &sha256_hex(b""));
        assert!(
            auth.ends_with(
                "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
            ),
            "{auth}"
        );
    }

    #[test]
    fn headers_are_lowercased_sorted_trimmed_and_the_user_agent_is_left_out() {
        let url = Url::parse("http://127.0.0.1:9201/api/v1/write").unwrap();
        let h = headers(&[
            ("x-amz-date", "20150830T123600Z"),
            ("content-type", "  application/x-protobuf  "),
            ("user-agent", "relay/1"),
            ("x-custom", "a   b"),
        ]);
        let (canonical, signed) = canonical_request("POST", &url, &h, "abc");
        assert_eq!(signed, "content-type;host;x-amz-date;x-custom");
        assert!(canonical.contains("\nhost:127.0.0.1:9201\n"), "{canonical}");
        assert!(canonical.contains("\nx-custom:a b\n"), "{canonical}");
        assert!(
            canonical.starts_with("POST\n/api/v1/write\n\n"),
            "{canonical}"
        );
    }

    #[test]
    fn a_path_is_encoded_once_more() {
        let url = Url::parse("https://h/a%20b/c").unwrap();
        assert_eq!(canonical_uri(&url), "/a%2520b/c");
    }
}
