//! A deliberately small HTTP/1.1 client over `std::net`, so tests can also send what real
//! clients never would (huge heads, half a request) and read server-sent events raw.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A response: status, lower-cased headers, body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Sends `method path` with `body` (JSON if any) and reads the whole response.
pub fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> Response {
    let mut s = connect(addr);
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    read_response(&mut BufReader::new(s))
}

/// GET `path`.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, None)
}

/// Sends raw bytes and reads whatever comes back until the server closes.
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = connect(addr);
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one response (Content-Length, chunked, or to EOF).
pub fn read_response(r: &mut impl BufRead) -> Response {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let mut body = Vec::new();
    if let Some(n) = headers.get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        r.read_exact(&mut body).unwrap();
    } else if headers.get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            let n = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            let at = body.len();
            body.resize(at + n, 0);
            r.read_exact(&mut body[at..]).unwrap();
            line.clear();
            r.read_line(&mut line).unwrap();
        }
    } else {
        let _ = r.read_to_end(&mut body);
    }
    Response { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
}

/// Scrapes `/metrics` into `series → value` (series = name plus labels, as written).
pub fn metrics(addr: SocketAddr) -> BTreeMap<String, f64> {
    let r = get(addr, "/metrics");
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap_or_else(|| panic!("bad metrics line {l:?}"));
            (k.to_string(), v.parse::<f64>().unwrap_or_else(|_| panic!("bad value in {l:?}")))
        })
        .collect()
}

/// The sum of every series of metric `name` (any labels).
pub fn total(m: &BTreeMap<String, f64>, name: &str) -> f64 {
    m.iter().filter(|(k, _)| k.split('{').next() == Some(name)).map(|(_, v)| v).sum()
}

/// An open server-sent-events stream.
pub struct Sse {
    reader: BufReader<TcpStream>,
}

/// One event: its `event:` name (`message` by default), `id:` and `data:`.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

impl Sse {
    /// Opens `path` with `Accept: text/event-stream` and checks the response head.
    pub fn open(addr: SocketAddr, path: &str) -> Sse {
        Sse::open_with(addr, path, "")
    }

    /// [`Sse::open`] with more header lines (`"Name: value\r\n"` each).
    pub fn open_with(addr: SocketAddr, path: &str, headers: &str) -> Sse {
        let mut s = connect(addr);
        let head =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{headers}\r\n");
        s.write_all(head.as_bytes()).unwrap();
        let mut reader = BufReader::new(s);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "SSE status line {line:?}");
        let mut chunked = false;
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            let l = line.to_ascii_lowercase();
            if l.starts_with("content-type:") {
                assert!(l.contains("text/event-stream"), "{l}");
            }
            chunked |= l.starts_with("transfer-encoding:") && l.contains("chunked");
        }
        assert!(chunked, "an SSE response streams with chunked encoding");
        Sse { reader }
    }

    /// Reads events until `event: end` (or the stream closes); returns them, `end` excluded.
    pub fn read_to_end(mut self) -> Vec<SseEvent> {
        let mut text = String::new();
        let mut line = String::new();
        // Undo the chunked framing: size line, data, CRLF.
        loop {
            line.clear();
            if self.reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            let n = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            let mut chunk = vec![0u8; n];
            self.reader.read_exact(&mut chunk).unwrap();
            text.push_str(&String::from_utf8_lossy(&chunk));
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if text.contains("event: end\n") {
                break;
            }
        }
        parse_events(&text)
    }
}

/// Splits an event stream into events (comments and `retry:` skipped).
pub fn parse_events(text: &str) -> Vec<SseEvent> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut ev = SseEvent { event: "message".into(), id: None, data: String::new() };
        let mut any = false;
        for l in block.lines() {
            if let Some(v) = l.strip_prefix("data: ") {
                ev.data.push_str(v);
                any = true;
            } else if let Some(v) = l.strip_prefix("id: ") {
                ev.id = Some(v.to_string());
            } else if let Some(v) = l.strip_prefix("event: ") {
                ev.event = v.to_string();
            }
        }
        if any && ev.event != "end" {
            out.push(ev);
        }
    }
    out
}
