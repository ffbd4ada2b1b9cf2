//! WebSocket peers for the tests, from the PyPI `websockets` package: an echo server
//! (the upstream, optionally over TLS) and client scripts run with a URL, whose last
//! line of output is JSON.

use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};

const ECHO: &str = r#"
import asyncio, ssl, sys, websockets
async def echo(ws):
    try:
        async for m in ws:
            await ws.send(m)
    except websockets.ConnectionClosed:
        pass
async def main():
    tls = None
    if len(sys.argv) > 2:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(sys.argv[1], sys.argv[2])
    async with websockets.serve(echo, "127.0.0.1", 0, max_size=None, ping_interval=None, ssl=tls) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()
asyncio.run(main())
"#;

/// The echo server, killed when dropped.
pub struct Echo {
    pub port: u16,
    _child: tokio::process::Child,
}

/// The echo server on plain TCP.
pub async fn echo() -> Echo {
    echo_with(&[]).await
}

/// The echo server with `args` (a certificate and key file: TLS).
pub async fn echo_with(args: &[&std::path::Path]) -> Echo {
    let mut child = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(ECHO)
        .args(args)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 with the websockets package (pip install websockets)");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port = lines.next_line().await.unwrap().expect("echo server port");
    Echo {
        port: port.trim().parse().unwrap(),
        _child: child,
    }
}

/// Runs a Python client script with `url` as its argument; returns its JSON output.
pub async fn client(script: &str, url: &str) -> serde_json::Value {
    client_with(script, url, &[]).await
}

/// [`client`] with environment variables (`SSL_CERT_FILE` for a test CA).
pub async fn client_with(script: &str, url: &str, env: &[(&str, &str)]) -> serde_json::Value {
    let out = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(url)
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap()
}
