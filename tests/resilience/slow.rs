//! Slow clients: slowloris (a request head sent one line every few seconds) and slow
//! bodies ("R-U-D-Y", a declared body trickled in), run with `slowhttptest`, plus a raw
//! stalled upload. The gateway must cut such connections at `header_read_timeout` and
//! `body_read_timeout` while serving everyone else.

use crate::support::{Watched, config, exchange, recorder};
use crate::traffic::Load;
use std::net::SocketAddr;
use std::time::Duration;

/// One row of slowhttptest's CSV report.
#[derive(Debug)]
struct Row {
    second: u64,
    closed: u64,
    connected: u64,
    available: u64,
}

/// What slowhttptest reported: per-second rows and why the test ended.
#[derive(Debug)]
struct Report {
    rows: Vec<Row>,
    exit: String,
}

/// Runs `slowhttptest` with `mode_args` (at most 12 s) and returns its report.
async fn slowhttptest(addr: SocketAddr, mode_args: &[&str]) -> Report {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("report");
    let url = format!("http://{addr}/slow-client");
    let mut args = vec![
        "-c", "300", // connections
        "-r", "100", // opened per second
        "-i", "4", // seconds between follow-up data on each connection
        "-x", "10", // max length of follow-up data
        "-p", "2", // probe timeout: a probe slower than this means "service unavailable"
        "-l", "12", // test length in seconds
        "-u", &url, "-g", "-o",
    ];
    let prefix_s = prefix.display().to_string();
    args.push(&prefix_s);
    args.extend_from_slice(mode_args);
    let out = tokio::process::Command::new("slowhttptest")
        .args(&args)
        .output()
        .await
        .expect("slowhttptest must be installed (apt-get install slowhttptest)");
    let csv = std::fs::read_to_string(prefix.with_extension("csv")).unwrap_or_else(|e| {
        panic!(
            "no CSV report ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let exit = stdout
        .lines()
        .find_map(|l| l.split_once("Exit status:"))
        .map(|(_, why)| strip_ansi(why))
        .unwrap_or_default();
    let rows = csv
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<u64> = line.split(',').filter_map(|v| v.parse().ok()).collect();
            (f.len() == 5).then(|| Row {
                second: f[0],
                closed: f[1],
                connected: f[3],
                available: f[4],
            })
        })
        .collect();
    Report { rows, exit }
}

/// Removes terminal colour sequences (`ESC [ … m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            out.push(c);
        }
    }
    out.trim().to_string()
}

/// Asserts the service stayed available and the gateway closed every slow connection
/// before the 12 s test length (a server without timeouts keeps them to the end: exit
/// status "Hit test time limit").
fn assert_cut(report: &Report) {
    let rows = &report.rows;
    assert!(rows.len() >= 3, "short report: {report:?}");
    for row in rows {
        assert!(
            row.available > 0,
            "service unavailable at second {}: {report:?}",
            row.second
        );
    }
    assert_eq!(report.exit, "No open connections left", "{report:?}");
    assert!(rows.last().unwrap().second < 12, "{report:?}");
    assert!(rows.iter().any(|r| r.closed > 0), "{report:?}");
    // Connections were cut while others were still being opened, not all at the end.
    let peak = rows.iter().map(|r| r.connected).max().unwrap();
    assert!(
        peak < 300,
        "all 300 slow connections were open at once: {report:?}"
    );
}

#[tokio::test]
async fn slowloris_headers_are_cut_by_the_header_read_timeout() {
    let up = recorder().await;
    let gw = Watched::start(&config(&up, &["header_read_timeout = \"2s\""], "")).await;
    let load = Load::start(gw.gw.proxy_addr, "/bystander", 2);
    let report = slowhttptest(gw.gw.proxy_addr, &["-H", "-t", "GET"]).await;
    assert_cut(&report);
    load.stop().await.assert_clean();
    gw.finish("slowloris").await;
}

#[tokio::test]
async fn slow_bodies_are_cut_by_the_body_read_timeout() {
    let up = recorder().await;
    let gw = Watched::start(&config(&up, &["body_read_timeout = \"2s\""], "")).await;
    let load = Load::start(gw.gw.proxy_addr, "/bystander", 2);
    let report = slowhttptest(gw.gw.proxy_addr, &["-B", "-t", "POST", "-s", "8192"]).await;
    assert_cut(&report);
    load.stop().await.assert_clean();
    gw.finish("slow bodies").await;
}

#[tokio::test]
async fn stalled_upload_gets_408_and_the_connection_closes() {
    let up = recorder().await;
    let gw = Watched::start(&config(&up, &["body_read_timeout = \"1s\""], "")).await;
    let payload = "POST /upload HTTP/1.1\r\nHost: gw\r\nContent-Length: 100\r\n\r\n0123456789";
    let reply = exchange(gw.gw.proxy_addr, payload, Duration::from_secs(10)).await;
    let text = reply.text;
    assert!(reply.closed, "connection left open: {text}");
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(text.contains("\"type\":\"body_read_timeout\""), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    // A slow upstream is not a slow client: waiting for the answer after the whole body
    // was sent is not a body stall.
    let body = crate::common::client::full("complete body");
    let reply = crate::common::request(gw.gw.proxy_addr, "POST", "/slow?ms=2500", &[], body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    gw.finish("stalled upload").await;
}
