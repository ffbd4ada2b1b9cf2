//! A real `redis-server` (Debian's) on loopback for the fleet tests: plain TCP or TLS
//! with a test CA, no persistence, killed when dropped, and restartable on the same port.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The TLS files of a TLS-only server.
#[derive(Debug, Clone)]
pub struct RedisTls {
    /// Server certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The CA that signed it (PEM), also what clients trust.
    pub ca: PathBuf,
}

/// One running `redis-server` (TCP, TLS or a unix socket).
pub struct Redis {
    child: Option<Child>,
    /// The TCP (or TLS) port it listens on.
    pub port: u16,
    tls: Option<RedisTls>,
    unix: bool,
    extra: Vec<String>,
    dir: tempfile::TempDir,
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl Redis {
    /// Starts a plain-TCP server on a fresh port.
    pub fn start() -> Redis {
        Self::start_with(None)
    }

    /// Starts a TLS-only server (`rediss://`) with `tls`'s certificate.
    pub fn start_tls(tls: RedisTls) -> Redis {
        Self::start_with(Some(tls))
    }

    /// Starts a server listening on a unix socket only (`unix://`).
    pub fn start_unix() -> Redis {
        let mut redis = Redis {
            child: None,
            port: 0,
            tls: None,
            unix: true,
            extra: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
        };
        redis.spawn();
        redis
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    fn start_with(tls: Option<RedisTls>) -> Redis {
        let mut redis = Redis {
            child: None,
            port: free_port(),
            tls,
            unix: false,
            extra: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
        };
        redis.spawn();
        redis
    }

    /// Starts a plain-TCP replica of `master`.
    pub fn start_replica_of(master: &Redis) -> Redis {
        let mut redis = Redis {
            child: None,
            port: free_port(),
            tls: None,
            unix: false,
            extra: vec![
                "--replicaof".into(),
                "127.0.0.1".into(),
                master.port.to_string(),
            ],
            dir: tempfile::tempdir().unwrap(),
        };
        redis.spawn();
        redis
    }

    /// Starts a Sentinel (`redis-server --sentinel`) monitoring `master` as `name`,
    /// which it declares down after 500 ms.
    pub fn start_sentinel(master: &Redis, name: &str) -> Redis {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\nsentinel monitor {name} 127.0.0.1 {} 1\n\
                 sentinel down-after-milliseconds {name} 500\n\
                 sentinel failover-timeout {name} 5000\n",
                master.port
            ),
        )
        .unwrap();
        let mut redis = Redis {
            child: None,
            port,
            tls: None,
            unix: false,
            extra: vec![conf.display().to_string(), "--sentinel".into()],
            dir,
        };
        redis.spawn();
        redis
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        if self.extra.last().is_some_and(|a| a == "--sentinel") {
            // A Sentinel takes its configuration file first and nothing else.
            cmd.args(&self.extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            self.child = Some(cmd.spawn().unwrap());
            self.wait_listening();
            return;
        }
        cmd.args(&self.extra);
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match &self.tls {
            None if self.unix => {
                cmd.args(["--port", "0", "--unixsocket"]).arg(self.socket());
            }
            None => {
                cmd.args(["--port", &self.port.to_string()]);
            }
            Some(t) => {
                cmd.args(["--port", "0", "--tls-port", &self.port.to_string()])
                    .arg("--tls-cert-file")
                    .arg(&t.cert)
                    .arg("--tls-key-file")
                    .arg(&t.key)
                    .arg("--tls-ca-cert-file")
                    .arg(&t.ca)
                    .args(["--tls-auth-clients", "no"]);
            }
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start redis-server ({e}): install Debian's redis-server (.ci/run does)")
        });
        self.child = Some(child);
        self.wait_listening();
    }

    fn wait_listening(&self) {
        let until = Instant::now() + Duration::from_secs(10);
        let listening = || match self.unix {
            true => std::os::unix::net::UnixStream::connect(self.socket()).is_ok(),
            false => TcpStream::connect(("127.0.0.1", self.port)).is_ok(),
        };
        while !listening() {
            assert!(
                Instant::now() < until,
                "redis-server did not listen ({})",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:PORT`, or `rediss://localhost:PORT` for a TLS server (the
    /// test certificate names `localhost`).
    pub fn url(&self) -> String {
        if self.unix {
            return format!("unix://{}", self.socket().display());
        }
        match self.tls {
            None => format!("redis://127.0.0.1:{}", self.port),
            Some(_) => format!("rediss://localhost:{}", self.port),
        }
    }

    /// Kills the server (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Runs `redis-cli` with `args` against this server and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        if self.unix {
            cmd.arg("-s").arg(self.socket());
        } else {
            cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        }
        if let Some(t) = &self.tls {
            cmd.arg("--tls").arg("--cacert").arg(&t.ca);
        }
        let out = cmd.args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
