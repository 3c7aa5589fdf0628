//! Raw-bytes integration tests of the serving core: a real listener on 127.0.0.1, hand-built
//! protocol bytes in, exact protocol bytes out. Covers what the web-server tests cannot steer:
//! multiplexing, FCGI_ABORT_REQUEST, overload, handlers that misbehave, graceful stop.

use bytes::{Bytes, BytesMut};
use ferrocgi_proto::{ajp13, fastcgi};
use ferrocgi_server::{
    Handler, Listener, Protocol, Request, Responder, ResponseHead, Server, ServerConfig, Stop,
    StreamError, UnixSocketOptions,
};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// Behaviour chosen by the request's QUERY_STRING.
#[derive(Clone, Default)]
struct TestApp {
    /// Errors the body reader saw, for the abort tests.
    body_errors: Arc<Mutex<Vec<StreamError>>>,
}

impl Handler for TestApp {
    async fn handle(&self, mut req: Request, mut resp: Responder) {
        let q = String::from_utf8_lossy(req.params.get(b"QUERY_STRING").unwrap_or_default())
            .into_owned();
        match q.as_str() {
            "panic" => panic!("test handler panics on purpose"),
            "drop" => return,
            "noread" => {
                // Answer 1 MiB without reading the body: must not deadlock the connection.
                resp.start(ResponseHead::new(200, "OK")).await.unwrap();
                for _ in 0..16 {
                    resp.write(Bytes::from(vec![b'x'; 65536])).await.unwrap();
                }
                resp.finish().await.unwrap();
                return;
            }
            "slow" => tokio::time::sleep(Duration::from_millis(300)).await,
            "huge" => {
                // 64 MiB: far more than loopback socket buffers hold.
                resp.start(ResponseHead::new(200, "OK")).await.unwrap();
                for _ in 0..1024 {
                    if resp.write(Bytes::from(vec![b'x'; 65536])).await.is_err() {
                        return;
                    }
                }
                let _ = resp.finish().await;
                return;
            }
            "failmid" => {
                resp.start(ResponseHead::new(200, "OK")).await.unwrap();
                resp.write(Bytes::from_static(b"partial")).await.unwrap();
                resp.fail().await;
                return;
            }
            _ => {}
        }
        let mut n = 0usize;
        loop {
            match req.body.chunk().await {
                Ok(Some(c)) => n += c.len(),
                Ok(None) => break,
                Err(e) => {
                    self.body_errors.lock().unwrap().push(e);
                    let _ = resp.finish().await;
                    return;
                }
            }
        }
        resp.start(ResponseHead::new(200, "OK").header("X-Len", n.to_string()))
            .await
            .unwrap();
        resp.write(Bytes::from(format!("len={n}"))).await.unwrap();
        resp.finish().await.unwrap();
    }
}

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
    app: TestApp,
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.done.await.unwrap().unwrap();
    }
}

fn start(config: ServerConfig) -> Running {
    start_with(config, |s| s)
}

/// [`start`], with the server configured further by `setup` (e.g. `accept_until_started`).
fn start_with(
    config: ServerConfig,
    setup: impl FnOnce(Server<TestApp>) -> Server<TestApp>,
) -> Running {
    let listener = Listener::bind_tcp("127.0.0.1:0".parse().unwrap(), 64).unwrap();
    start_on(listener, config, setup)
}

/// [`start_with`] on a listener of the test's own (`addr` is meaningful for TCP only).
fn start_on(
    listener: Listener,
    config: ServerConfig,
    setup: impl FnOnce(Server<TestApp>) -> Server<TestApp>,
) -> Running {
    let addr = listener
        .local_tcp_addr()
        .unwrap_or_else(|| "0.0.0.0:0".parse().unwrap());
    let app = TestApp::default();
    let (tx, rx) = oneshot::channel::<()>();
    let server = setup(Server::new(listener, config, app.clone()));
    let done = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    Running {
        addr,
        stop: Some(tx),
        done,
        app,
    }
}

// ---- FastCGI helpers -------------------------------------------------------------------

fn fcgi_request(out: &mut BytesMut, id: u16, keep: bool, query: &str, body: &[u8]) {
    fastcgi::encode::begin_request(id, fastcgi::record::FCGI_RESPONDER, keep, out);
    let len = body.len().to_string();
    fastcgi::encode::params(
        id,
        &[
            (b"REQUEST_METHOD".as_slice(), b"POST".as_slice()),
            (b"QUERY_STRING", query.as_bytes()),
            (b"CONTENT_LENGTH", len.as_bytes()),
        ],
        out,
    );
    fastcgi::encode::stdin(id, body, out);
    fastcgi::encode::stdin_end(id, out);
}

/// A parsed FastCGI response: STDOUT bytes and END_REQUEST (app status, protocol status).
#[derive(Debug, Default)]
struct FcgiResponse {
    stdout: Vec<u8>,
    end: Option<(u32, u8)>,
}

/// Reads records until every id in `ids` got END_REQUEST (or EOF).
async fn read_fcgi<S: AsyncRead + Unpin>(
    s: &mut S,
    ids: &[u16],
) -> std::collections::HashMap<u16, FcgiResponse> {
    let mut buf = Vec::new();
    let mut res: std::collections::HashMap<u16, FcgiResponse> = Default::default();
    loop {
        while buf.len() >= 8 {
            let clen = u16::from_be_bytes([buf[4], buf[5]]) as usize;
            let total = 8 + clen + buf[6] as usize;
            if buf.len() < total {
                break;
            }
            let id = u16::from_be_bytes([buf[2], buf[3]]);
            let content = &buf[8..8 + clen];
            let r = res.entry(id).or_default();
            match buf[1] {
                6 => r.stdout.extend_from_slice(content),
                3 => {
                    r.end = Some((
                        u32::from_be_bytes(content[0..4].try_into().unwrap()),
                        content[4],
                    ))
                }
                _ => {}
            }
            buf.drain(..total);
        }
        if ids
            .iter()
            .all(|id| res.get(id).is_some_and(|r| r.end.is_some()))
        {
            return res;
        }
        let mut chunk = [0u8; 65536];
        let n = match tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .expect("response within 5 s")
        {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
            Err(e) => panic!("read: {e}"),
        };
        if n == 0 {
            return res;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A new connection with one FastCGI request written on it (see [`fcgi_request`]).
async fn send_fcgi(srv: &Running, id: u16, keep: bool, query: &str, body: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let mut out = BytesMut::new();
    fcgi_request(&mut out, id, keep, query, body);
    s.write_all(&out).await.unwrap();
    s
}

/// A new connection with a small FastCGI request is served: whatever a test did to another
/// client, the server keeps serving.
async fn assert_another_client_is_served(srv: &Running) {
    let mut good = send_fcgi(srv, 1, true, "", b"ok").await;
    assert_eq!(
        body_of(&read_fcgi(&mut good, &[1]).await[&1].stdout),
        b"len=2"
    );
}

fn body_of(stdout: &[u8]) -> &[u8] {
    let at = stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a CGI head");
    &stdout[at + 4..]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fastcgi_keep_conn_serves_sequential_requests_on_one_connection() {
    let srv = start(ServerConfig::new(Protocol::Fastcgi));
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    for i in 0..5u16 {
        let mut out = BytesMut::new();
        let body = vec![7u8; 1000 * i as usize];
        fcgi_request(&mut out, 1, true, "", &body);
        s.write_all(&out).await.unwrap();
        let res = read_fcgi(&mut s, &[1]).await;
        let r = &res[&1];
        assert_eq!(r.end, Some((0, 0)));
        assert!(
            r.stdout.starts_with(b"Status: 200 OK\r\n"),
            "{:?}",
            String::from_utf8_lossy(&r.stdout)
        );
        assert_eq!(body_of(&r.stdout), format!("len={}", body.len()).as_bytes());
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fastcgi_without_keep_conn_closes_after_the_response() {
    let srv = start(ServerConfig::new(Protocol::Fastcgi));
    let mut s = send_fcgi(&srv, 1, false, "", b"abc").await;
    let res = read_fcgi(&mut s, &[1]).await;
    assert_eq!(res[&1].end, Some((0, 0)));
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut rest))
        .await
        .expect("server closes")
        .unwrap();
    assert_eq!(n, 0);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fastcgi_multiplexed_requests_interleave() {
    let mut cfg = ServerConfig::new(Protocol::Fastcgi);
    cfg.fastcgi.multiplex = true;
    let srv = start(cfg);
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let mut out = BytesMut::new();
    // Request 2 starts first, request 1 interleaves, 2's body ends last.
    fastcgi::encode::begin_request(2, fastcgi::record::FCGI_RESPONDER, true, &mut out);
    fastcgi::encode::params(2, &[(b"QUERY_STRING".as_slice(), b"".as_slice())], &mut out);
    fastcgi::encode::stdin(2, b"hello ", &mut out);
    fcgi_request(&mut out, 1, true, "", b"one");
    fastcgi::encode::stdin(2, b"world", &mut out);
    fastcgi::encode::stdin_end(2, &mut out);
    s.write_all(&out).await.unwrap();
    let res = read_fcgi(&mut s, &[1, 2]).await;
    assert_eq!(body_of(&res[&1].stdout), b"len=3");
    assert_eq!(body_of(&res[&2].stdout), b"len=11");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fastcgi_abort_request_reaches_the_handler_and_ends_the_request() {
    let srv = start(ServerConfig::new(Protocol::Fastcgi));
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let mut out = BytesMut::new();
    fastcgi::encode::begin_request(1, fastcgi::record::FCGI_RESPONDER, true, &mut out);
    fastcgi::encode::params(
        1,
        &[(b"CONTENT_LENGTH".as_slice(), b"100".as_slice())],
        &mut out,
    );
    fastcgi::encode::stdin(1, b"partial", &mut out);
    s.write_all(&out).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    out.clear();
    fastcgi::encode::abort_request(1, &mut out);
    s.write_all(&out).await.unwrap();
    let res = read_fcgi(&mut s, &[1]).await;
    assert_eq!(
        res[&1].end.map(|e| e.1),
        Some(0),
        "END_REQUEST after the abort"
    );
    assert_eq!(
        *srv.app.body_errors.lock().unwrap(),
        vec![StreamError::Aborted]
    );
    // The connection is still usable.
    out.clear();
    fcgi_request(&mut out, 1, true, "", b"xy");
    s.write_all(&out).await.unwrap();
    assert_eq!(body_of(&read_fcgi(&mut s, &[1]).await[&1].stdout), b"len=2");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fastcgi_over_capacity_answers_overloaded() {
    let mut cfg = ServerConfig::new(Protocol::Fastcgi);
    cfg.max_in_flight = 1;
    let srv = start(cfg);
    // The first request holds the only slot: its body never ends.
    let mut a = TcpStream::connect(srv.addr).await.unwrap();
    let mut out = BytesMut::new();
    fastcgi::encode::begin_request(1, fastcgi::record::FCGI_RESPONDER, true, &mut out);
    fastcgi::encode::params(
        1,
        &[(b"CONTENT_LENGTH".as_slice(), b"10".as_slice())],
        &mut out,
    );
    a.write_all(&out).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut b = TcpStream::connect(srv.addr).await.unwrap();
    out.clear();
    fcgi_request(&mut out, 1, true, "", b"");
    b.write_all(&out).await.unwrap();
    let res = read_fcgi(&mut b, &[1]).await;
    assert_eq!(res[&1].end, Some((0, 2)), "FCGI_OVERLOADED");
    // Finishing the first request frees the slot.
    out.clear();
    fastcgi::encode::stdin(1, b"0123456789", &mut out);
    fastcgi::encode::stdin_end(1, &mut out);
    a.write_all(&out).await.unwrap();
    assert_eq!(
        body_of(&read_fcgi(&mut a, &[1]).await[&1].stdout),
        b"len=10"
    );
    out.clear();
    fcgi_request(&mut out, 1, true, "", b"");
    b.write_all(&out).await.unwrap();
    assert_eq!(read_fcgi(&mut b, &[1]).await[&1].end, Some((0, 0)));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fastcgi_response_before_body_is_read_does_not_deadlock() {
    let srv = start(ServerConfig::new(Protocol::Fastcgi));
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let mut out = BytesMut::new();
    fcgi_request(&mut out, 1, true, "noread", &vec![1u8; 2 << 20]);
    // Write and read concurrently, as a web server does.
    let (mut rd, mut wr) = s.split();
    let write = async {
        wr.write_all(&out).await.unwrap();
    };
    let read = async {
        let mut got = Vec::new();
        let mut chunk = vec![0u8; 65536];
        loop {
            let n = rd.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&chunk[..n]);
            // END_REQUEST for id 1 is the last record.
            if got.len() >= 16 && got[got.len() - 16 + 1] == 3 {
                return got.len();
            }
        }
    };
    let (_, n) = tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(write, read) })
        .await
        .expect("no deadlock");
    assert!(n > 1 << 20);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_panic_or_drop_gives_a_500() {
    let srv = start(ServerConfig::new(Protocol::Fastcgi));
    for q in ["panic", "drop"] {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        let mut out = BytesMut::new();
        fcgi_request(&mut out, 1, true, q, b"");
        s.write_all(&out).await.unwrap();
        let res = read_fcgi(&mut s, &[1]).await;
        assert!(
            res[&1].stdout.starts_with(b"Status: 500"),
            "{q}: {:?}",
            String::from_utf8_lossy(&res[&1].stdout)
        );
        assert_eq!(res[&1].end, Some((0, 0)));
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_after_the_head_is_not_dressed_up_as_complete() {
    // FastCGI: no END_REQUEST, the connection is reset (the front end cuts the response).
    let srv = start(ServerConfig::new(Protocol::Fastcgi));
    let mut s = send_fcgi(&srv, 1, true, "failmid", b"").await;
    let res = read_fcgi(&mut s, &[1]).await;
    assert_eq!(body_of(&res[&1].stdout), b"partial");
    assert_eq!(
        res[&1].end, None,
        "no FCGI_END_REQUEST for a broken response"
    );
    srv.stop().await;

    // SCGI: the close is a reset, not the clean EOF that ends a good response.
    let srv = start(ServerConfig::new(Protocol::Scgi));
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let headers = b"CONTENT_LENGTH\x000\x00SCGI\x001\x00QUERY_STRING\x00failmid\x00";
    let mut req = format!("{}:", headers.len()).into_bytes();
    req.extend_from_slice(headers);
    req.push(b',');
    s.write_all(&req).await.unwrap();
    let mut got = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got))
        .await
        .expect("closed within 5 s");
    assert_eq!(
        r.map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::ConnectionReset),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_finishes_requests_in_flight() {
    let srv = start(ServerConfig::new(Protocol::Fastcgi));
    let addr = srv.addr;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut out = BytesMut::new();
    fcgi_request(&mut out, 1, true, "slow", b"abc");
    s.write_all(&out).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stopping = tokio::spawn(srv.stop());
    let res = read_fcgi(&mut s, &[1]).await;
    assert_eq!(body_of(&res[&1].stdout), b"len=3");
    stopping.await.unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "listener closed after stop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_error_closes_only_that_connection() {
    let srv = start(ServerConfig::new(Protocol::Fastcgi));
    let mut bad = TcpStream::connect(srv.addr).await.unwrap();
    bad.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(1), bad.read_to_end(&mut rest))
        .await
        .expect("closed within a second")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert_another_client_is_served(&srv).await;
    srv.stop().await;
}

// ---- SCGI and AJP ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scgi_request_and_bad_netstring() {
    let srv = start(ServerConfig::new(Protocol::Scgi));
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let headers = b"CONTENT_LENGTH\x005\x00SCGI\x001\x00QUERY_STRING\x00\x00";
    let mut req = format!("{}:", headers.len()).into_bytes();
    req.extend_from_slice(headers);
    req.extend_from_slice(b",hello");
    s.write_all(&req).await.unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut resp))
        .await
        .unwrap()
        .unwrap();
    assert!(
        resp.starts_with(b"Status: 200 OK\r\n"),
        "{:?}",
        String::from_utf8_lossy(&resp)
    );
    assert!(resp.ends_with(b"\r\n\r\nlen=5"));

    let mut bad = TcpStream::connect(srv.addr).await.unwrap();
    bad.write_all(b"12x:garbage").await.unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(1), bad.read_to_end(&mut resp))
        .await
        .expect("answered within a second")
        .unwrap();
    assert!(
        resp.starts_with(b"Status: 400"),
        "{:?}",
        String::from_utf8_lossy(&resp)
    );
    srv.stop().await;
}

fn ajp_forward(secret: Option<&str>, body: &[u8]) -> BytesMut {
    let len = body.len().to_string();
    let mut headers = vec![(
        Bytes::from_static(b"host"),
        Bytes::from_static(b"localhost"),
    )];
    if !body.is_empty() {
        headers.push((Bytes::from_static(b"content-length"), Bytes::from(len)));
    }
    let fr = ajp13::ForwardRequest {
        method: Bytes::from_static(b"POST"),
        protocol: Bytes::from_static(b"HTTP/1.1"),
        req_uri: Bytes::from_static(b"/x"),
        remote_addr: Bytes::from_static(b"127.0.0.1"),
        remote_host: Bytes::from_static(b"localhost"),
        server_name: Bytes::from_static(b"localhost"),
        server_port: 80,
        is_ssl: false,
        headers,
        query_string: None,
        remote_user: None,
        auth_type: None,
        secret: secret.map(|s| Bytes::copy_from_slice(s.as_bytes())),
        content_length: (!body.is_empty()).then_some(body.len() as u64),
        chunked: false,
        ..Default::default()
    };
    let mut out = BytesMut::new();
    ajp13::encode::forward_request(&fr, &mut out).unwrap();
    out
}

/// Serves AJP body requests from `body` until END_RESPONSE; returns (status, body, reuse).
async fn ajp_exchange(s: &mut TcpStream, mut body: &[u8]) -> (u16, Vec<u8>, bool) {
    let mut buf = BytesMut::new();
    let mut status = 0;
    let mut data = Vec::new();
    loop {
        while let Some(p) = ajp13::decode_container_packet(&mut buf) {
            match p {
                ajp13::ContainerPacket::SendHeaders { status: st, .. } => status = st,
                ajp13::ContainerPacket::SendBodyChunk(d) => data.extend_from_slice(&d),
                ajp13::ContainerPacket::GetBodyChunk(n) => {
                    let take = body.len().min(n as usize);
                    let mut out = BytesMut::new();
                    ajp13::encode::body_chunk(&body[..take], false, &mut out).unwrap();
                    body = &body[take..];
                    s.write_all(&out).await.unwrap();
                }
                ajp13::ContainerPacket::EndResponse { reuse } => return (status, data, reuse),
                _ => {}
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(5), s.read_buf(&mut buf))
            .await
            .expect("AJP answer within 5 s")
            .unwrap();
        assert!(n > 0, "connection closed early");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ajp_body_round_trips_and_secret_is_enforced() {
    let mut cfg = ServerConfig::new(Protocol::Ajp13);
    cfg.ajp_secret = Some(Bytes::from_static(b"s3cret"));
    let srv = start(cfg);
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let body = vec![9u8; 30000];
    // The first chunk comes unsolicited, right behind FORWARD_REQUEST.
    let mut out = ajp_forward(Some("s3cret"), &body);
    ajp13::encode::body_chunk(&body[..8186], false, &mut out).unwrap();
    s.write_all(&out).await.unwrap();
    let (status, data, reuse) = ajp_exchange(&mut s, &body[8186..]).await;
    assert_eq!(
        (status, data.as_slice(), reuse),
        (200, b"len=30000".as_slice(), true)
    );

    let mut bad = TcpStream::connect(srv.addr).await.unwrap();
    bad.write_all(&ajp_forward(Some("wrong"), b""))
        .await
        .unwrap();
    let (status, _, _) = ajp_exchange(&mut bad, b"").await;
    assert_eq!(status, 403);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_cut_off_others_are_served() {
    let mut cfg = ServerConfig::new(Protocol::Fastcgi);
    cfg.read_timeout = Some(Duration::from_millis(300));
    cfg.idle_timeout = Some(Duration::from_millis(300));
    let srv = start(cfg);
    // A slowloris: half a record, then nothing.
    let mut slow = TcpStream::connect(srv.addr).await.unwrap();
    let mut out = BytesMut::new();
    fcgi_request(&mut out, 1, true, "", b"body");
    slow.write_all(&out[..12]).await.unwrap();
    // An idle connection: nothing at all.
    let mut idle = TcpStream::connect(srv.addr).await.unwrap();
    // A good client meanwhile.
    let mut good = TcpStream::connect(srv.addr).await.unwrap();
    good.write_all(&out).await.unwrap();
    assert_eq!(
        body_of(&read_fcgi(&mut good, &[1]).await[&1].stdout),
        b"len=4"
    );
    for s in [&mut slow, &mut idle] {
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
            .await
            .expect("closed by the server")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_front_end_that_stops_reading_is_cut_off_after_write_timeout() {
    let mut cfg = ServerConfig::new(Protocol::Fastcgi);
    cfg.write_timeout = Some(Duration::from_millis(300));
    let srv = start(cfg);
    // Asks for far more than the socket buffers hold, and never reads.
    let mut stalled = send_fcgi(&srv, 1, true, "huge", b"").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Others are served meanwhile and after.
    assert_another_client_is_served(&srv).await;
    // The stalled connection was closed: draining it ends (EOF or reset) well before 64 MiB.
    let mut got = 0usize;
    let mut chunk = vec![0u8; 65536];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stalled.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got += n,
            Err(_) => panic!("the stalled connection was not closed"),
        }
    }
    assert!(
        got < 64 << 20,
        "read {got} bytes: the response was not cut off"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_connections_new_connections_wait_their_turn() {
    let mut cfg = ServerConfig::new(Protocol::Fastcgi);
    cfg.max_connections = 1;
    let srv = start(cfg);
    let mut first = TcpStream::connect(srv.addr).await.unwrap();
    let mut out = BytesMut::new();
    fcgi_request(&mut out, 1, true, "", b"1");
    first.write_all(&out).await.unwrap();
    assert_eq!(
        body_of(&read_fcgi(&mut first, &[1]).await[&1].stdout),
        b"len=1"
    );
    // The second connection sits in the backlog: no answer while the first stays open.
    let mut second = TcpStream::connect(srv.addr).await.unwrap();
    second.write_all(&out).await.unwrap();
    let mut buf = [0u8; 8];
    let early = tokio::time::timeout(Duration::from_millis(500), second.read(&mut buf)).await;
    assert!(early.is_err(), "served past max_connections");
    drop(first);
    assert_eq!(
        body_of(&read_fcgi(&mut second, &[1]).await[&1].stdout),
        b"len=1"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_nothing_takes_no_connection_slot() {
    // TCP_DEFER_ACCEPT: the kernel hands a connection over with its first bytes, so mute
    // connections cannot fill max_connections (nor make a prefork worker look busy).
    let mut cfg = ServerConfig::new(Protocol::Fastcgi);
    cfg.max_connections = 1;
    let srv = start(cfg);
    // Once serving (the option is set as the server starts).
    let mut first = send_fcgi(&srv, 1, false, "", b"a").await;
    assert_eq!(
        body_of(&read_fcgi(&mut first, &[1]).await[&1].stdout),
        b"len=1"
    );
    expect_close(&mut first, Duration::from_secs(5)).await;
    let mute: Vec<TcpStream> = connect_mute(srv.addr, 3).await;
    let mut s = send_fcgi(&srv, 1, false, "", b"abc").await;
    let res = tokio::time::timeout(Duration::from_secs(5), read_fcgi(&mut s, &[1]))
        .await
        .expect("served while the mute connections stay open");
    assert_eq!(body_of(&res[&1].stdout), b"len=3");
    drop(mute);
    srv.stop().await;
}

async fn connect_mute(addr: std::net::SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(TcpStream::connect(addr).await.unwrap());
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_params_closes_that_connection_only() {
    let mut cfg = ServerConfig::new(Protocol::Fastcgi);
    cfg.fastcgi.max_params_pairs = 16;
    let srv = start(cfg);
    let names: Vec<String> = (0..40).map(|i| format!("HTTP_X_{i}")).collect();
    let pairs: Vec<(&[u8], &[u8])> = names
        .iter()
        .map(|n| (n.as_bytes(), b"v".as_slice()))
        .collect();
    let mut out = BytesMut::new();
    fastcgi::encode::begin_request(1, fastcgi::record::FCGI_RESPONDER, true, &mut out);
    fastcgi::encode::params(1, &pairs, &mut out);
    let mut bad = TcpStream::connect(srv.addr).await.unwrap();
    bad.write_all(&out).await.unwrap();
    let res = read_fcgi(&mut bad, &[1]).await;
    assert!(
        res.get(&1).is_none_or(|r| r.end.is_none()),
        "refused, not served"
    );
    assert_another_client_is_served(&srv).await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_arriving_on_a_kept_alive_connection_during_a_stop_is_served() {
    let srv = start(ServerConfig::new(Protocol::Fastcgi));
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let mut out = BytesMut::new();
    fcgi_request(&mut out, 1, true, "", b"first");
    s.write_all(&out).await.unwrap();
    assert_eq!(body_of(&read_fcgi(&mut s, &[1]).await[&1].stdout), b"len=5");
    // The next request is partly sent when the stop begins, the rest just after.
    out.clear();
    fcgi_request(&mut out, 1, true, "", b"second");
    s.write_all(&out[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stopping = tokio::spawn(srv.stop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.write_all(&out[10..]).await.unwrap();
    let res = read_fcgi(&mut s, &[1]).await;
    assert_eq!(body_of(&res[&1].stdout), b"len=6");
    assert_eq!(res[&1].end, Some((0, 0)));
    drop(s);
    stopping.await.unwrap();
}

/// Reads until the peer closes; fails if it sends anything more or keeps the connection open.
async fn expect_close<S: AsyncRead + Unpin>(s: &mut S, within: Duration) {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(within, s.read(&mut buf)).await {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => panic!("expected a close, got {n} more bytes"),
        Ok(Err(e)) => panic!("expected a clean close, got {e}"),
        Err(_) => panic!("the connection was still open after {within:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_stop_an_idle_kept_alive_connection_serves_one_more_request_then_closes() {
    // nginx may already be sending a request on a kept-alive connection when the stop begins,
    // and it does not retry a POST: the request is served, and the close follows the response.
    let srv = start(ServerConfig::new(Protocol::Fastcgi));
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let mut out = BytesMut::new();
    fcgi_request(&mut out, 1, true, "", b"first");
    s.write_all(&out).await.unwrap();
    assert_eq!(body_of(&read_fcgi(&mut s, &[1]).await[&1].stdout), b"len=5");
    let stopping = tokio::spawn(srv.stop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    out.clear();
    fcgi_request(&mut out, 1, true, "", b"second");
    s.write_all(&out).await.unwrap();
    let res = read_fcgi(&mut s, &[1]).await;
    assert_eq!(body_of(&res[&1].stdout), b"len=6");
    assert_eq!(res[&1].end, Some((0, 0)));
    expect_close(&mut s, Duration::from_millis(500)).await;
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("the stop ends once the connection closed")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_stop_connections_that_bring_no_request_close_after_the_linger() {
    // On a Unix socket: a TCP connection that sends nothing is not handed over by the kernel
    // (TCP_DEFER_ACCEPT) until idle_timeout.
    let path = std::env::temp_dir().join(format!("ferrocgi-linger-{}.sock", std::process::id()));
    let listener = Listener::bind_unix(&path, &UnixSocketOptions::default(), 64).unwrap();
    let srv = start_on(listener, ServerConfig::new(Protocol::Fastcgi), |s| s);
    let mut kept = tokio::net::UnixStream::connect(&path).await.unwrap();
    let mut out = BytesMut::new();
    fcgi_request(&mut out, 1, true, "", b"first");
    kept.write_all(&out).await.unwrap();
    read_fcgi(&mut kept, &[1]).await;
    let mut fresh = tokio::net::UnixStream::connect(&path).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let begun = std::time::Instant::now();
    let stopping = tokio::spawn(srv.stop());
    expect_close(&mut kept, Duration::from_secs(5)).await;
    expect_close(&mut fresh, Duration::from_secs(5)).await;
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("the stop ends once both connections closed")
        .unwrap();
    assert!(
        begun.elapsed() >= Duration::from_secs(1),
        "closed before the linger"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_stop_a_connection_whose_request_has_begun_is_served() {
    let srv = start(ServerConfig::new(Protocol::Fastcgi));
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let mut out = BytesMut::new();
    fcgi_request(&mut out, 1, false, "", b"late");
    s.write_all(&out[..1]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopping = tokio::spawn(srv.stop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.write_all(&out[1..]).await.unwrap();
    let res = read_fcgi(&mut s, &[1]).await;
    assert_eq!(body_of(&res[&1].stdout), b"len=4");
    expect_close(&mut s, Duration::from_millis(500)).await;
    stopping.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retiring_server_serves_the_request_already_coming_on_a_kept_alive_connection() {
    // nginx reuses a kept-alive connection as soon as it has read a response's end, and does
    // not retry a POST that fails there: a retiring worker (maxrequests) must not close the
    // connection under a request that follows its last response at once; an idle one closes.
    let listener = Listener::bind_tcp("127.0.0.1:0".parse().unwrap(), 64).unwrap();
    let addr = listener.local_tcp_addr().unwrap();
    let server = Server::new(
        listener,
        ServerConfig::new(Protocol::Fastcgi),
        TestApp::default(),
    )
    .accept_until_started(1);
    let mut load = server.load();
    let done = tokio::spawn(server.run_until(async move {
        let _ = load.wait_for(|l| l.served >= 1).await;
        Stop::Retire
    }));
    let mut s = TcpStream::connect(addr).await.unwrap();
    for body in [&b"first"[..], b"second, right after"] {
        let mut out = BytesMut::new();
        fcgi_request(&mut out, 1, true, "", body);
        s.write_all(&out).await.unwrap();
        let res = read_fcgi(&mut s, &[1]).await;
        assert_eq!(res[&1].end, Some((0, 0)));
        assert_eq!(
            body_of(&res[&1].stdout),
            format!("len={}", body.len()).as_bytes()
        );
    }
    expect_close(&mut s, Duration::from_secs(3)).await;
    tokio::time::timeout(Duration::from_secs(5), done)
        .await
        .expect("the retirement ends once the connection closed")
        .unwrap()
        .unwrap();
}

/// Sends `bytes` one at a time, `every` apart, until the server closes; how long that took
/// (None: all sent and still open).
async fn dribble(s: &mut TcpStream, bytes: &[u8], every: Duration) -> Option<Duration> {
    let start = tokio::time::Instant::now();
    for b in bytes {
        if s.write_all(&[*b]).await.is_err() {
            return Some(start.elapsed());
        }
        let mut buf = [0u8; 64];
        match tokio::time::timeout(every, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            _ => {}
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_dribbled_byte_by_byte_is_cut_off_after_head_timeout() {
    // Each byte restarts read_timeout; only head_timeout bounds the head as a whole.
    let mut cfg = ServerConfig::new(Protocol::Fastcgi);
    cfg.read_timeout = Some(Duration::from_secs(2));
    cfg.head_timeout = Some(Duration::from_secs(1));
    let srv = start(cfg);
    let mut out = BytesMut::new();
    fcgi_request(&mut out, 1, true, "", b"abcd");
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let took = dribble(&mut s, &out, Duration::from_millis(300)).await;
    assert!(took.is_some(), "the whole head went through at 3 bytes/s");
    // Others are served.
    let mut good = TcpStream::connect(srv.addr).await.unwrap();
    good.write_all(&out).await.unwrap();
    assert_eq!(
        body_of(&read_fcgi(&mut good, &[1]).await[&1].stdout),
        b"len=4"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_slower_than_min_body_rate_is_cut_off() {
    let mut cfg = ServerConfig::new(Protocol::Scgi);
    cfg.read_timeout = Some(Duration::from_secs(1));
    cfg.min_body_rate = 1024;
    let srv = start(cfg);
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let headers = b"CONTENT_LENGTH\x00100000\x00SCGI\x001\x00";
    let mut head = format!("{}:", headers.len()).into_bytes();
    head.extend_from_slice(headers);
    head.push(b',');
    s.write_all(&head).await.unwrap();
    let took = dribble(&mut s, &[b'x'; 200], Duration::from_millis(50)).await;
    assert!(took.is_some(), "200 body bytes at 20 bytes/s were taken");
    srv.stop().await;
}
