//! The two AWS STS calls relay makes, over its own reqwest client:
//! `AssumeRoleWithWebIdentity` (EKS IRSA: a projected service-account
//! token traded for temporary credentials, unsigned) and `AssumeRole`
//! (`role_arn`: signed with the credentials found first). Both answer
//! the same XML `Credentials` element.

use std::time::SystemTime;

use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use reqwest::Url;

use super::credentials::Credentials;
use super::sign::{self, Scope};
use super::time::{amz_date, parse_iso8601};

/// How much of an error answer is kept for the message.
const ERROR_KEPT: usize = 300;

/// One STS endpoint and the client that reaches it.
pub(crate) struct Sts {
    pub client: reqwest::Client,
    pub endpoint: String,
    pub region: String,
}

impl Sts {
    /// `AssumeRoleWithWebIdentity` with the token read from its file now
    /// (the kubelet rotates it).
    pub async fn assume_role_with_web_identity(
        &self,
        role_arn: &str,
        session_name: &str,
        token: &str,
    ) -> Result<Credentials, String> {
        let form = form(&[
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", role_arn),
            ("RoleSessionName", session_name),
            ("WebIdentityToken", token),
        ]);
        self.call("AssumeRoleWithWebIdentity", form, None).await
    }

    /// `AssumeRole`, signed with `base`.
    pub async fn assume_role(
        &self,
        base: &Credentials,
        role_arn: &str,
        session_name: &str,
        external_id: Option<&str>,
    ) -> Result<Credentials, String> {
        let mut params = vec![
            ("Action", "AssumeRole"),
            ("Version", "2011-06-15"),
            ("RoleArn", role_arn),
            ("RoleSessionName", session_name),
        ];
        if let Some(id) = external_id {
            params.push(("ExternalId", id));
        }
        self.call("AssumeRole", form(&params), Some(base)).await
    }

    async fn call(
        &self,
        action: &str,
        body: String,
        signed_by: Option<&Credentials>,
    ) -> Result<Credentials, String> {
        let url = Url::parse(&self.endpoint)
            .map_err(|e| format!("STS endpoint {:?}: {e}", self.endpoint))?;
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        if let Some(creds) = signed_by {
            creds.sign_into(
                &Scope {
                    region: &self.region,
                    service: "sts",
                    amz_date: &amz_date(SystemTime::now()),
                },
                "POST",
                &url,
                &mut headers,
                body.as_bytes(),
            )?;
        }
        let where_ = format!(
            "STS {action} at {}",
            crate::config::redact_url(&self.endpoint)
        );
        let response = self
            .client
            .post(url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "{where_}: {}",
                    crate::http::error_message(e, &self.endpoint)
                )
            })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| format!("{where_}: reading the answer: {e}"))?;
        if !status.is_success() {
            let code = element(&text, "Code").unwrap_or_default();
            let message = element(&text, "Message")
                .unwrap_or_else(|| text.chars().take(ERROR_KEPT).collect());
            return Err(format!(
                "{where_}: HTTP {}: {code} {message}",
                status.as_u16()
            ));
        }
        parse_credentials(&text).map_err(|e| format!("{where_}: {e}"))
    }
}

/// A form body (`application/x-www-form-urlencoded`), AWS-encoded.
fn form(params: &[(&str, &str)]) -> String {
    let pairs: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", sign::encode(k, false), sign::encode(v, false)))
        .collect();
    pairs.join("&")
}

/// The `Credentials` element of an STS answer.
pub(crate) fn parse_credentials(xml: &str) -> Result<Credentials, String> {
    let block = element(xml, "Credentials").ok_or("the answer has no Credentials element")?;
    let get = |name: &str| element(&block, name).ok_or(format!("Credentials has no {name}"));
    let expiration = get("Expiration")?;
    let expires = parse_iso8601(&expiration).ok_or(format!(
        "Credentials.Expiration {expiration:?} is not an ISO 8601 UTC time"
    ))?;
    Ok(Credentials::new(
        get("AccessKeyId")?,
        get("SecretAccessKey")?,
        Some(get("SessionToken")?),
        Some(expires),
    ))
}

/// The text of the first `<name>…</name>`, entities decoded.
fn element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(unescape(xml[start..end].trim()))
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_read_from_an_sts_answer() {
        let xml = "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
            <AssumeRoleWithWebIdentityResult><Credentials>\
            <SessionToken>tok&amp;en</SessionToken><SecretAccessKey>sec</SecretAccessKey>\
            <Expiration>2026-12-02T19:30:00Z</Expiration><AccessKeyId>ASIA1</AccessKeyId>\
            </Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>";
        let c = parse_credentials(xml).unwrap();
        assert_eq!(c.access_key_id(), "ASIA1");
        assert_eq!(c.session_token(), Some("tok&en"));
        assert_eq!(c.expires(), parse_iso8601("2026-12-02T19:30:00Z"));
    }

    #[test]
    fn an_answer_without_credentials_says_what_is_missing() {
        let e = parse_credentials("<Credentials><AccessKeyId>A</AccessKeyId></Credentials>");
        assert_eq!(e.err().as_deref(), Some("Credentials has no Expiration"));
    }

    #[test]
    fn a_form_is_aws_encoded() {
        assert_eq!(
            form(&[("RoleArn", "arn:aws:iam::1:role/r"), ("X", "a b")]),
            "RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fr&X=a%20b"
        );
    }
}
