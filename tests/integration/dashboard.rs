//! The live dashboard in a real browser: headless Chromium driven over WebDriver
//! (chromedriver), loading `/` from a running `sensorflow run --http`. `scripts/test.sh`
//! installs the Debian packages `chromium` and `chromium-driver`; this test fails, not skips,
//! without them. It keeps a screenshot in `target/test-artifacts/dashboard.png`.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http_client::request;

/// Kills the child when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn find(names: &[&str]) -> PathBuf {
    for name in names {
        for dir in
            std::env::var("PATH").unwrap_or_default().split(':').chain(["/usr/bin", "/usr/lib/chromium"])
        {
            let p = PathBuf::from(dir).join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("{names:?} not found: run the tests with scripts/test.sh, which installs chromium and chromium-driver")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One WebDriver command; returns its `value`.
fn webdriver(driver: SocketAddr, method: &str, path: &str, body: Option<Value>) -> Value {
    let body = body.map(|b| b.to_string());
    let r = request(driver, method, path, body.as_deref());
    let v: Value =
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {}", r.body));
    assert_eq!(r.status, 200, "{method} {path}: {v}");
    v["value"].clone()
}

/// Decodes standard base64 (the screenshot).
fn base64(text: &str) -> Vec<u8> {
    let table = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let clean: Vec<u8> = text.bytes().filter(|&c| c != b'=' && !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let v: Vec<u32> = chunk.iter().map(|&c| u32::from(table(c))).collect();
        let n = v.iter().enumerate().fold(0u32, |acc, (i, &x)| acc | x << (18 - 6 * i));
        out.extend(n.to_be_bytes()[1..chunk.len()].iter());
    }
    out
}

#[test]
fn the_dashboard_updates_its_throughput_chart_and_alert_list_in_headless_chromium() {
    let chromium = find(&["chromium", "chromium-browser"]);
    let chromedriver = find(&["chromedriver"]);

    // A simulator run of about 40 s with many alerts, serving the dashboard.
    let mut run = Command::new(env!("CARGO_BIN_EXE_sensorflow"))
        .args(["run", "--source", "simulator", "--devices", "200", "--span", "2h", "--realtime", "180"])
        .args(["--anomaly-rate", "6", "--workers", "2", "-q", "--alerts", "none", "--http", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = run.stderr.take().unwrap();
    let run = Killed(run);
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("the run ended before serving").unwrap();
        if let Some(rest) = line.strip_prefix("http: serving http://") {
            break rest.split('/').next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));

    let port = free_port();
    let driver = Killed(
        Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let driver_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(driver_addr).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let profile = tempfile::tempdir().unwrap();
    let session = webdriver(
        driver_addr,
        "POST",
        "/session",
        Some(json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.to_string_lossy(),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-dev-shm-usage", "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        }}})),
    );
    let id = session["sessionId"].as_str().expect("a session id").to_string();
    webdriver(
        driver_addr,
        "POST",
        &format!("/session/{id}/url"),
        Some(json!({ "url": format!("http://{addr}/") })),
    );
    let probe = || {
        webdriver(
            driver_addr,
            "POST",
            &format!("/session/{id}/execute/sync"),
            Some(json!({
                "script": "return [Number(document.getElementById('throughput').dataset.points), \
                           Number(document.getElementById('alerts').dataset.received), \
                           document.querySelectorAll('#alerts li').length, \
                           document.getElementById('records').textContent];",
                "args": [],
            })),
        )
    };
    std::thread::sleep(Duration::from_secs(4));
    let first = probe();
    std::thread::sleep(Duration::from_secs(5));
    let second = probe();
    let n = |v: &Value, i: usize| v[i].as_f64().unwrap_or_else(|| panic!("{v}"));
    assert!(n(&first, 0) >= 1.0, "the throughput chart has no points: {first}");
    assert!(n(&second, 0) > n(&first, 0), "the throughput chart did not update: {first} → {second}");
    assert!(n(&second, 1) > n(&first, 1), "the alert list did not update: {first} → {second}");
    assert!(n(&second, 2) > 0.0, "no alert rows: {second}");
    assert_ne!(second[3].as_str(), Some("0"), "the event counter did not move: {second}");

    let shot = webdriver(driver_addr, "GET", &format!("/session/{id}/screenshot"), None);
    let png = base64(shot.as_str().expect("base64 screenshot"));
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("dashboard.png"), &png).unwrap();
    webdriver(driver_addr, "DELETE", &format!("/session/{id}"), None);
    drop(driver);
    drop(run);
}
