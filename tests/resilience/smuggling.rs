//! Request smuggling over HTTP/1.1: `Content-Length` together with `Transfer-Encoding`,
//! obfuscated transfer codings and ambiguous lengths. Every payload carries a second
//! request for `/smuggled` behind the first; whatever the gateway answers, the upstream
//! must never receive that second request, and an ambiguous connection must be closed.

use crate::support::{Watched, config, exchange, recorder};
use std::time::Duration;

const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: gw\r\n\r\n";

#[tokio::test]
async fn content_length_with_transfer_encoding_is_read_as_chunked_and_closed() {
    let up = recorder().await;
    let gw = Watched::start(&config(&up, &[], "")).await;
    let addr = gw.gw.proxy_addr;
    // CL.TE: a front end trusting Content-Length would forward "5\r\nhello…" plus the
    // smuggled request as one body; TE.CL: one trusting the chunked coding would pass
    // the smuggled request on to a back end that reads only 3 bytes of body.
    let cl_te = format!(
        "POST /cl-te HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n{SMUGGLED}"
    );
    let te_cl = format!(
        "POST /te-cl HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n{SMUGGLED}"
    );
    for (payload, body) in [(cl_te, "ok 5"), (te_cl, "ok 0")] {
        let reply = exchange(addr, &payload, Duration::from_secs(5)).await;
        assert_eq!(reply.statuses(), vec![200], "{}", reply.text);
        assert!(reply.text.ends_with(body), "{}", reply.text);
        assert!(
            reply.closed,
            "connection kept open after an ambiguous request"
        );
    }
    assert_eq!(
        up.count("/cl-te") + up.count("/te-cl"),
        2,
        "{:?}",
        up.seen()
    );
    assert_eq!(up.count("/smuggled"), 0, "{:?}", up.seen());
    gw.finish("CL+TE requests").await;
}

#[tokio::test]
async fn obfuscated_transfer_encodings_are_refused() {
    let up = recorder().await;
    let gw = Watched::start(&config(&up, &[], "")).await;
    let addr = gw.gw.proxy_addr;
    let body = "5\r\nhello\r\n0\r\n\r\n";
    let variants = [
        "Transfer-Encoding: xchunked\r\n",
        "Transfer-Encoding: chunked, identity\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
        "Transfer-Encoding : chunked\r\n",
        " Transfer-Encoding: chunked\r\n",
        "Transfer-Encoding:\r\n chunked\r\n",
        "Transfer-Encoding: \x0bchunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 5\r\nTransfer-Encoding: gzip\r\n",
    ];
    for te in variants {
        let payload = format!(
            "POST /obfuscated HTTP/1.1\r\nHost: gw\r\nContent-Length: 15\r\n{te}\r\n{body}{SMUGGLED}"
        );
        let reply = exchange(addr, &payload, Duration::from_secs(5)).await;
        assert_eq!(reply.statuses(), vec![400], "{te:?}: {}", reply.text);
        assert!(reply.closed, "{te:?}: connection kept open");
    }
    // HTTP/1.0 has no chunked coding: a Transfer-Encoding there is a framing error.
    let payload = format!(
        "POST /obfuscated HTTP/1.0\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n{body}{SMUGGLED}"
    );
    let reply = exchange(addr, &payload, Duration::from_secs(5)).await;
    assert_eq!(reply.statuses(), vec![400], "HTTP/1.0 TE: {}", reply.text);
    assert_eq!(up.count("/obfuscated"), 0, "{:?}", up.seen());
    assert_eq!(up.count("/smuggled"), 0, "{:?}", up.seen());
    gw.finish("obfuscated transfer encodings").await;
}

#[tokio::test]
async fn ambiguous_lengths_are_refused() {
    let up = recorder().await;
    let gw = Watched::start(&config(&up, &[], "")).await;
    let addr = gw.gw.proxy_addr;
    let variants = [
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: 5, 6\r\n",
        "Content-Length: +5\r\n",
        "Content-Length: 0x5\r\n",
        "Content-Length: 5 5\r\n",
        "Content-Length: 99999999999999999999999\r\n",
    ];
    for cl in variants {
        let payload = format!("POST /ambiguous HTTP/1.1\r\nHost: gw\r\n{cl}\r\nhello{SMUGGLED}");
        let reply = exchange(addr, &payload, Duration::from_secs(5)).await;
        assert_eq!(reply.statuses(), vec![400], "{cl:?}: {}", reply.text);
        assert!(reply.closed, "{cl:?}: connection kept open");
    }
    // A chunk size that overflows 64 bits, and a chunk longer than its declared size. The
    // head may already be on its way upstream (bodies stream); the body never completes.
    for chunks in [
        "ffffffffffffffffff1\r\nhello\r\n0\r\n\r\n",
        "2\r\nhello\r\n0\r\n\r\n",
    ] {
        let payload = format!(
            "POST /bad-chunk HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}{SMUGGLED}"
        );
        let reply = exchange(addr, &payload, Duration::from_secs(5)).await;
        assert!(reply.closed, "{chunks:?}: connection kept open");
        assert!(
            reply.statuses().iter().all(|&s| s != 200),
            "{chunks:?}: {}",
            reply.text
        );
    }
    // A name with an underscore is not Transfer-Encoding: the request has no body, and the
    // would-be chunk that follows is not a request.
    let payload = format!(
        "POST /underscore HTTP/1.1\r\nHost: gw\r\nTransfer_Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"
    );
    let reply = exchange(addr, &payload, Duration::from_secs(5)).await;
    assert_eq!(reply.statuses(), vec![200, 400], "{}", reply.text);
    assert!(reply.closed);
    assert_eq!(up.count("/ambiguous"), 0, "{:?}", up.seen());
    assert_eq!(up.count("/smuggled"), 0, "{:?}", up.seen());
    gw.finish("ambiguous lengths").await;
}
