//! A loopback HTTP proxy that records what it is asked: `CONNECT host:port`
//! opens a tunnel (how a client reaches an https URL through a proxy), and
//! an absolute-form request (`GET http://host:port/path`) is forwarded as
//! a plain HTTP forward proxy does, one request per connection. Every host
//! is reached at 127.0.0.1 (its port kept), so a test may name a host only
//! the proxy "resolves" (a client that bypasses the proxy cannot reach it).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

/// A running proxy; `url` goes into `proxy_url`.
pub struct Proxy {
    pub addr: String,
    pub url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    pub fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("addr").to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                thread::spawn(move || handle(stream, &log));
            }
        });
        Proxy {
            url: format!("http://{addr}"),
            addr,
            seen,
        }
    }

    /// The head (request line and headers) of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The heads whose request line starts with `start` (`"CONNECT "`,
    /// `"GET http://"`).
    pub fn requests_starting(&self, start: &str) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| r.starts_with(start))
            .collect()
    }
}

/// A head's header value (case-insensitive name).
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// `host:port` at 127.0.0.1.
fn loopback(host_port: &str) -> String {
    let port = host_port.rsplit_once(':').map_or("80", |(_, p)| p);
    format!("127.0.0.1:{port}")
}

fn read_head(reader: &mut impl BufRead) -> Option<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        head.push_str(&line);
        if line == "\r\n" || line == "\n" {
            return Some(head);
        }
    }
}

fn handle(client: TcpStream, seen: &Mutex<Vec<String>>) {
    let Ok(read_half) = client.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let Some(head) = read_head(&mut reader) else {
        return;
    };
    seen.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(head.clone());
    let mut parts = head.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_owned(),
        parts.next().unwrap_or("").to_owned(),
    );
    let mut client = client;
    if method == "CONNECT" {
        let Ok(upstream) = TcpStream::connect(loopback(&target)) else {
            let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
            return;
        };
        let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
        // What the client sent after the head is in the reader's buffer.
        let buffered = reader.buffer().to_vec();
        tunnel(reader.into_inner(), client, upstream, &buffered);
        return;
    }
    // Forward: http://host:port/path → connect, send in origin form.
    let Some(rest) = target.strip_prefix("http://") else {
        let _ = client.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let Ok(mut upstream) = TcpStream::connect(loopback(host)) else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    let length = header(&head, "content-length")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let mut out = format!(
        "{method} {path} {}\r\n",
        head.lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap_or("HTTP/1.1")
    );
    for line in head.lines().skip(1) {
        let name = line.split(':').next().unwrap_or("").trim();
        if line.is_empty()
            || name.eq_ignore_ascii_case("connection")
            || name.eq_ignore_ascii_case("proxy-connection")
        {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    if upstream.write_all(out.as_bytes()).is_err() {
        return;
    }
    let _ = std::io::copy(&mut (&mut reader).take(length), &mut upstream);
    // The answer, with `Connection: close` so the client does not send its
    // next request on this connection.
    let mut answer = BufReader::new(upstream);
    let Some(response) = read_head(&mut answer) else {
        return;
    };
    let mut head_out = String::new();
    for line in response.lines() {
        let name = line.split(':').next().unwrap_or("").trim();
        if line.is_empty() || name.eq_ignore_ascii_case("connection") {
            continue;
        }
        head_out.push_str(line);
        head_out.push_str("\r\n");
    }
    head_out.push_str("Connection: close\r\n\r\n");
    let _ = client.write_all(head_out.as_bytes());
    let _ = std::io::copy(&mut answer, &mut client);
    let _ = client.shutdown(Shutdown::Both);
}

/// Copies both ways until either side closes.
fn tunnel(mut from_client: TcpStream, to_client: TcpStream, upstream: TcpStream, buffered: &[u8]) {
    let Ok(mut up_write) = upstream.try_clone() else {
        return;
    };
    if up_write.write_all(buffered).is_err() {
        return;
    }
    let mut up_read = upstream;
    let mut to_client = to_client;
    let back = thread::spawn(move || {
        let _ = std::io::copy(&mut up_read, &mut to_client);
        let _ = to_client.shutdown(Shutdown::Both);
    });
    let _ = std::io::copy(&mut from_client, &mut up_write);
    let _ = up_write.shutdown(Shutdown::Both);
    let _ = back.join();
}
