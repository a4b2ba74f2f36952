//! A loopback OAuth2 token endpoint (client credentials grant, RFC 6749
//! 4.4): a form POST whose client id and secret (Basic header or form) are
//! checked; it answers `{"access_token":"token-N","token_type":"bearer",
//! "expires_in":E}` with N counting the tokens issued, or 401 when the
//! credentials are wrong or the test says so.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use base64::Engine as _;

/// What the endpoint checks and answers.
struct State {
    client_id: String,
    client_secret: String,
    expires_in: u64,
    refuse: bool,
    issued: u64,
    /// Each request's head and form body.
    requests: Vec<(String, String)>,
}

/// A running token endpoint; `url` goes into `oauth2.token_url`.
pub struct TokenEndpoint {
    pub addr: String,
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl TokenEndpoint {
    /// Issues tokens valid for `expires_in` seconds to `client_id` with
    /// `client_secret`.
    pub fn start(client_id: &str, client_secret: &str, expires_in: u64) -> TokenEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the token endpoint");
        let addr = listener.local_addr().expect("addr").to_string();
        let state = Arc::new(Mutex::new(State {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            expires_in,
            refuse: false,
            issued: 0,
            requests: Vec::new(),
        }));
        let shared = state.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = shared.clone();
                thread::spawn(move || answer(stream, &shared));
            }
        });
        TokenEndpoint {
            url: format!("http://{addr}/oauth2/token"),
            addr,
            state,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answer every request with 401 (`true`) or check them again.
    pub fn refuse(&self, refuse: bool) {
        self.state().refuse = refuse;
    }

    /// How many tokens were issued.
    pub fn issued(&self) -> u64 {
        self.state().issued
    }

    /// Every request so far: its head and its form body.
    pub fn requests(&self) -> Vec<(String, String)> {
        self.state().requests.clone()
    }
}

/// The value of `name` in a form body (`+` and `%XX` decoded).
pub fn form_value(body: &str, name: &str) -> Option<String> {
    body.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (decode(k) == name).then(|| decode(v))
    })
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn answer(stream: TcpStream, state: &Mutex<State>) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let length = header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    // The id and secret: a Basic header (each form-encoded) or the form.
    let from_header = header("authorization")
        .and_then(|v| v.strip_prefix("Basic ").map(str::to_owned))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|d| String::from_utf8(d).ok())
        .and_then(|d| d.split_once(':').map(|(i, s)| (decode(i), decode(s))));
    let credentials = from_header.or_else(|| {
        Some((
            form_value(&body, "client_id")?,
            form_value(&body, "client_secret")?,
        ))
    });
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    s.requests.push((head.clone(), body.clone()));
    let good = !s.refuse
        && head.starts_with("POST ")
        && form_value(&body, "grant_type").as_deref() == Some("client_credentials")
        && credentials == Some((s.client_id.clone(), s.client_secret.clone()));
    let (status, reply) = if good {
        s.issued += 1;
        (
            "200 OK",
            format!(
                "{{\"access_token\":\"token-{}\",\"token_type\":\"bearer\",\"expires_in\":{}}}",
                s.issued, s.expires_in
            ),
        )
    } else {
        (
            "401 Unauthorized",
            "{\"error\":\"invalid_client\"}".to_owned(),
        )
    };
    drop(s);
    let mut stream = stream;
    let _ = stream.write_all(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
            reply.len()
        )
        .as_bytes(),
    );
}
