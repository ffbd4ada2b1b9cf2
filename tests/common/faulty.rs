//! Misbehaving upstreams on 127.0.0.1:0, for retries and failover: real servers that
//! can be killed mid-test (their port then refuses connects, as does a [`Refused`] one), answer 503 (or any status) before 200, answer 429 with a
//! `Retry-After` first, hang after accepting, or reset the connection after reading the
//! request or after sending the response head.
//!
//! Every server counts the requests whose head it read ([`Faulty::hits`]), logs their
//! methods, and tracks how many requests marked as retries (`x-microgateway-attempt`)
//! it had in flight at once ([`Faulty::max_retries_in_flight`]). Healthy answers are
//! `200 ok <name>`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// How a [`Faulty`] server answers.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Always `200 ok <name>`.
    Healthy,
    /// The first `first` requests (over all connections) get `status`, then 200.
    StatusThenOk {
        /// Status of the first answers.
        status: u16,
        /// How many requests get it.
        first: usize,
    },
    /// Always `status`, after waiting `delay`.
    Always {
        /// The status.
        status: u16,
        /// Wait before answering.
        delay: Duration,
    },
    /// The first `first` requests get 429 with `Retry-After: <retry_after>`, then 200.
    TooManyThenOk {
        /// The header value.
        retry_after: &'static str,
        /// How many requests get 429.
        first: usize,
    },
    /// Accepts connections and reads, never answers.
    Hang,
    /// Reads the request head, then resets the connection (RST, no response byte).
    ResetAfterRequest,
    /// Sends `200` with `Content-Length: 1000` and a few body bytes, then resets.
    ResetAfterHeaders,
}

/// What a server saw.
#[derive(Debug, Default)]
pub struct Seen {
    hits: AtomicUsize,
    methods: Mutex<Vec<String>>,
    retries_now: AtomicUsize,
    retries_max: AtomicUsize,
    retries: AtomicUsize,
}

/// A running misbehaving upstream.
pub struct Faulty {
    /// Where it listens.
    pub addr: SocketAddr,
    name: String,
    seen: Arc<Seen>,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
    held: Mutex<Option<Refused>>,
}

impl Faulty {
    /// Starts a server called `name` behaving as `fault`.
    pub async fn start(name: &str, fault: Fault) -> Faulty {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let tasks: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let answered = Arc::new(AtomicUsize::new(0));
        let (s, t, n) = (seen.clone(), tasks.clone(), name.to_string());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (s, n, answered) = (s.clone(), n.clone(), answered.clone());
                let conn = tokio::spawn(serve(stream, fault, s, n, answered));
                t.lock().unwrap().push(conn.abort_handle());
            }
        });
        tasks.lock().unwrap().push(accept.abort_handle());
        Faulty {
            addr,
            name: name.to_string(),
            seen,
            tasks,
            held: Mutex::new(None),
        }
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server's name, as its healthy answers carry it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stops accepting and closes every connection: the port then refuses connects. The
    /// port stays reserved (bound, not listening), so no other test's server can take
    /// it over and answer in the dead server's place.
    pub async fn kill(&self) {
        self.stop();
        for _ in 0..1000 {
            if let Ok(held) = Refused::bind(self.addr) {
                *self.held.lock().unwrap() = Some(held);
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!(
            "the port of {} was taken over after it was killed",
            self.name
        );
    }

    fn stop(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Requests whose head arrived.
    pub fn hits(&self) -> usize {
        self.seen.hits.load(Ordering::SeqCst)
    }

    /// The methods of the requests received, in order.
    pub fn methods(&self) -> Vec<String> {
        self.seen.methods.lock().unwrap().clone()
    }

    /// Requests that carried `x-microgateway-attempt` (retries).
    pub fn retries(&self) -> usize {
        self.seen.retries.load(Ordering::SeqCst)
    }

    /// The most retries this server had in flight at once.
    pub fn max_retries_in_flight(&self) -> usize {
        self.seen.retries_max.load(Ordering::SeqCst)
    }
}

impl Drop for Faulty {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port that refuses every connect: bound, never listening, so the port
/// cannot be reused by another test while this lives (unlike a released port).
pub struct Refused {
    socket: tokio::net::TcpSocket,
}

impl Refused {
    /// A fresh refusing port.
    pub fn new() -> Refused {
        Refused::bind("127.0.0.1:0".parse().unwrap()).unwrap()
    }

    fn bind(addr: SocketAddr) -> std::io::Result<Refused> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        Ok(Refused { socket })
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.socket.local_addr().unwrap())
    }
}

impl Default for Refused {
    fn default() -> Self {
        Refused::new()
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn text(status: u16, body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed());
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r
}

async fn serve(
    mut stream: TcpStream,
    fault: Fault,
    seen: Arc<Seen>,
    name: String,
    answered: Arc<AtomicUsize>,
) {
    match fault {
        Fault::Hang => {
            let mut buf = [0u8; 4096];
            let mut counted = false;
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                if !counted {
                    counted = true;
                    record(&seen, &buf[..n]);
                }
            }
            return;
        }
        Fault::ResetAfterRequest | Fault::ResetAfterHeaders => {
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            record(&seen, &head);
            if matches!(fault, Fault::ResetAfterHeaders) {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\npartial")
                    .await;
                let _ = stream.flush().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // A zero linger makes the close a reset; it never blocks, as nothing is unsent.
            #[allow(deprecated)]
            let _ = stream.set_linger(Some(Duration::ZERO));
            drop(stream);
            return;
        }
        _ => {}
    }
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let (seen, name, answered) = (seen.clone(), name.clone(), answered.clone());
        async move {
            seen.hits.fetch_add(1, Ordering::SeqCst);
            seen.methods.lock().unwrap().push(req.method().to_string());
            let retry = req.headers().contains_key("x-microgateway-attempt");
            if retry {
                seen.retries.fetch_add(1, Ordering::SeqCst);
                let now = seen.retries_now.fetch_add(1, Ordering::SeqCst) + 1;
                seen.retries_max.fetch_max(now, Ordering::SeqCst);
            }
            let _ = req.into_body().collect().await;
            let n = answered.fetch_add(1, Ordering::SeqCst);
            let response = match fault {
                Fault::StatusThenOk { status, first } if n < first => {
                    text(status, "failing".into())
                }
                Fault::Always { status, delay } => {
                    tokio::time::sleep(delay).await;
                    text(status, "always".into())
                }
                Fault::TooManyThenOk { retry_after, first } if n < first => {
                    let mut r = text(429, "slow down".into());
                    r.headers_mut()
                        .insert("retry-after", retry_after.parse().unwrap());
                    r
                }
                _ => text(200, format!("ok {name}")),
            };
            if retry {
                seen.retries_now.fetch_sub(1, Ordering::SeqCst);
            }
            Ok::<_, Infallible>(response)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await;
}

/// Counts a request read by a raw-TCP fault from the first bytes of its head.
fn record(seen: &Seen, head: &[u8]) {
    seen.hits.fetch_add(1, Ordering::SeqCst);
    let text = String::from_utf8_lossy(head);
    let method = text.split(' ').next().unwrap_or_default().to_string();
    seen.methods.lock().unwrap().push(method);
    if text
        .to_ascii_lowercase()
        .contains("\r\nx-microgateway-attempt:")
    {
        seen.retries.fetch_add(1, Ordering::SeqCst);
    }
}
