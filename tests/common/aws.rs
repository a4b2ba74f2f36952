//! AWS stand-ins for the SigV4 tests: botocore (the venv's, an
//! implementation independent of relay's) as the signature oracle, and a
//! loopback STS that answers `AssumeRoleWithWebIdentity`/`AssumeRole` with
//! numbered temporary credentials.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use super::pyclient::python;
use super::rw::Request;

/// The signature check botocore makes: the request as relay sent it (less
/// what the HTTP client adds after signing), botocore's clock set to the
/// request's own `X-Amz-Date`. A body whose hash differs from the
/// `X-Amz-Content-Sha256` header answers `BAD-PAYLOAD-HASH` (botocore takes
/// the header's word for it).
const ORACLE: &str = r#"
import sys, json, base64, datetime, hashlib
from unittest import mock
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
for line in sys.stdin:
    r = json.loads(line)
    body = base64.b64decode(r['body'])
    headers = dict(r['headers'])
    if headers.get('x-amz-content-sha256') != hashlib.sha256(body).hexdigest():
        print('BAD-PAYLOAD-HASH', flush=True)
        continue
    req = AWSRequest(method=r['method'], url=r['url'], data=body, headers=headers)
    when = datetime.datetime.strptime(r['amz_date'], '%Y%m%dT%H%M%SZ')
    creds = Credentials(r['access_key'], r['secret_key'], r.get('token'))
    signer = botocore.auth.SigV4Auth(creds, r['service'], r['region'])
    with mock.patch('botocore.auth.get_current_datetime', return_value=when):
        signer.add_auth(req)
    print(req.headers['Authorization'], flush=True)
"#;

/// Headers reqwest/hyper add after relay signed (not part of what is signed).
const ADDED_BY_TRANSPORT: &[&str] = &[
    "authorization",
    "content-length",
    "accept",
    "accept-encoding",
];

/// One botocore process answering many requests.
pub struct Botocore {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Botocore {
    pub fn start() -> Botocore {
        let mut child = Command::new(python())
            .args(["-c", ORACLE])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start python with botocore");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Botocore {
            child,
            stdin,
            stdout,
        }
    }

    /// The `Authorization` botocore computes for `request` with these
    /// credentials, at the request's `X-Amz-Date`.
    pub fn authorization(
        &mut self,
        request: &Request,
        key: &str,
        secret: &str,
        token: Option<&str>,
        region: &str,
        service: &str,
    ) -> String {
        let headers: Vec<(String, String)> = request
            .headers
            .iter()
            .filter(|(k, _)| !ADDED_BY_TRANSPORT.contains(&k.to_ascii_lowercase().as_str()))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        let host = request.header("host").expect("a Host header");
        let line = serde_json::json!({
            "method": request.method,
            "url": format!("http://{host}{}", request.path),
            "headers": headers,
            "body": base64::engine::general_purpose::STANDARD.encode(&request.body),
            "amz_date": request.header("x-amz-date").unwrap_or("19700101T000000Z"),
            "access_key": key,
            "secret_key": secret,
            "token": token,
            "region": region,
            "service": service,
        });
        writeln!(self.stdin, "{line}").expect("write to botocore");
        let mut answer = String::new();
        self.stdout
            .read_line(&mut answer)
            .expect("read from botocore");
        assert!(!answer.is_empty(), "botocore exited (is it in the venv?)");
        answer.trim_end().to_owned()
    }
}

impl Drop for Botocore {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One call the STS stand-in answered: its form fields, and the
/// credentials it handed out.
#[derive(Clone, Debug)]
pub struct StsCall {
    pub form: Vec<(String, String)>,
    /// The call as a request (path, headers, body), for a signature check.
    pub request: Request,
    pub headers: Vec<(String, String)>,
    pub access_key: String,
    pub secret: String,
    pub token: String,
}

impl StsCall {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A loopback STS: every call gets credentials `ASIATEST<n>`, secret
/// `secret<n>`, token `token<n>`, expiring `lifetime` from now.
pub struct StsStandIn {
    pub url: String,
    calls: Arc<Mutex<Vec<StsCall>>>,
}

impl StsStandIn {
    pub fn start(lifetime: Duration) -> StsStandIn {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the STS stand-in");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let state = calls.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                let mut headers = Vec::new();
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    continue;
                }
                let mut words = line.split_whitespace();
                let method = words.next().unwrap_or_default().to_owned();
                let path = words.next().unwrap_or_default().to_owned();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                    }
                }
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let form = form_fields(&String::from_utf8_lossy(&body));
                let mut calls = state.lock().unwrap_or_else(|e| e.into_inner());
                let n = calls.len() + 1;
                let expires = SystemTime::now() + lifetime;
                let now = std::time::Instant::now();
                let call = StsCall {
                    form,
                    request: Request {
                        arrived: now,
                        answered: now,
                        method,
                        path,
                        headers: headers.clone(),
                        body_len: body.len(),
                        body,
                        status: 200,
                        write: Err("an STS call".into()),
                        v2: None,
                        read_v2: false,
                    },
                    headers,
                    access_key: format!("ASIATEST{n}"),
                    secret: format!("secret{n}"),
                    token: format!("token{n}"),
                };
                let action = call.field("Action").unwrap_or("AssumeRole").to_owned();
                let xml = format!(
                    "<{action}Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><{action}Result><Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey><SessionToken>{}</SessionToken><Expiration>{}</Expiration></Credentials></{action}Result></{action}Response>",
                    call.access_key,
                    call.secret,
                    call.token,
                    iso8601(expires)
                );
                calls.push(call);
                drop(calls);
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                    xml.len()
                );
                let _ = reader.get_mut().write_all(answer.as_bytes());
            }
        });
        StsStandIn { url, calls }
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<StsCall> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// `a=b&c=d`, percent-decoded.
fn form_fields(body: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'%' if i + 2 < b.len() => {
                    let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                    out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                    i += 3;
                }
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                c => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// `YYYY-MM-DDTHH:MM:SSZ` of `t` (the test's own date arithmetic).
fn iso8601(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs() as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days to a civil date, stepping whole years then months.
    let mut year = 1970;
    let mut days = days;
    loop {
        let len = if is_leap(year) { 366 } else { 365 };
        if days < len {
            break;
        }
        days -= len;
        year += 1;
    }
    let months = [
        31,
        if is_leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let mut month = 0;
    while days >= months[month] {
        days -= months[month];
        month += 1;
    }
    format!(
        "{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        month + 1,
        days + 1,
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}
