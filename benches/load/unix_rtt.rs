//! The anchor for hook latency in the load benchmark: the round trip of a small message
//! between two processes over a unix socket (and loopback TCP), with blocking reads and
//! nothing else. A `file://` hook call is one such round trip plus gRPC framing and the
//! plugin's work, so at `-c1` no hook can add less than this; `benches/load/run.py`
//! prints it beside the hook rows.
//!
//! Usage: `mg-unix-rtt [ROUNDS] [BYTES]` prints one line per transport:
//! `unix p50_us=.. p99_us=.. mean_us=..` and the same for `tcp`. The echo side is this
//! binary again (`mg-unix-rtt --echo unix|tcp ADDRESS`), so both ends are processes.
// A stand-alone measuring tool, outside the crate's clock and task rules.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::{Read, Write};
use std::time::Instant;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--echo") {
        let (kind, address) = match (args.get(1), args.get(2)) {
            (Some(kind), Some(address)) => (kind.as_str(), address.as_str()),
            _ => return Err("usage: mg-unix-rtt --echo unix|tcp ADDRESS".into()),
        };
        return echo(kind, address);
    }
    let rounds: usize = args.first().map_or(Ok(20_000), |n| n.parse())?;
    let bytes: usize = args.get(1).map_or(Ok(200), |n| n.parse())?;
    let dir = std::env::temp_dir().join(format!("mg-unix-rtt-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("echo.sock");
    let unix = std::os::unix::net::UnixListener::bind(&path)?;
    let tcp = std::net::TcpListener::bind("127.0.0.1:0")?;
    let results = [
        ("unix", path.display().to_string()),
        ("tcp", tcp.local_addr()?.to_string()),
    ]
    .map(|(kind, address)| {
        let mut child = std::process::Command::new(std::env::current_exe()?)
            .args(["--echo", kind, &address])
            .spawn()?;
        let result = match kind {
            "unix" => measure(unix.accept()?.0, rounds, bytes),
            _ => {
                let (stream, _) = tcp.accept()?;
                stream.set_nodelay(true)?;
                measure(stream, rounds, bytes)
            }
        };
        let _ = child.wait();
        result.map(|r| (kind, r))
    });
    let _ = std::fs::remove_dir_all(&dir);
    for result in results {
        let (kind, mut samples) = result?;
        samples.sort_unstable_by(f64::total_cmp);
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        println!(
            "{kind} p50_us={:.1} p99_us={:.1} mean_us={mean:.1}",
            at(0.5),
            at(0.99)
        );
    }
    Ok(())
}

/// Sends `rounds` messages of `bytes` bytes, each after the echo of the one before, and
/// returns every round trip in microseconds. Dropping the stream ends the echo process.
fn measure<S: Read + Write>(mut stream: S, rounds: usize, bytes: usize) -> Result<Vec<f64>, Error> {
    let message = vec![7u8; bytes.max(1)];
    let mut back = vec![0u8; message.len()];
    let mut samples = Vec::with_capacity(rounds);
    for round in 0..rounds + rounds / 10 {
        let started = Instant::now();
        stream.write_all(&message)?;
        stream.read_exact(&mut back)?;
        // The first tenth warms caches and wakes the CPUs' idle states.
        if round >= rounds / 10 {
            samples.push(started.elapsed().as_secs_f64() * 1e6);
        }
    }
    Ok(samples)
}

/// Connects to `address` and writes back whatever it reads until the peer closes.
fn echo(kind: &str, address: &str) -> Result<(), Error> {
    let mut stream: Box<dyn ReadWrite> = match kind {
        "unix" => Box::new(std::os::unix::net::UnixStream::connect(address)?),
        _ => {
            let stream = std::net::TcpStream::connect(address)?;
            stream.set_nodelay(true)?;
            Box::new(stream)
        }
    };
    let mut buf = [0u8; 65536];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}
