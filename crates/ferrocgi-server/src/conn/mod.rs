//! The connection loop: one task per front-end connection, the same for every protocol.
//!
//! # Theory of operation
//!
//! A connection is a [`Conn`]: the socket's read buffer and write buffer, the protocol state
//! machine (a [`ServerCodec`]), the requests in flight, the peer clocks and where the server is
//! in its life. [`run_connection`] drives it: each [`Conn::turn`] decodes every complete event
//! in the read buffer and polls new handlers once, [`Conn::flush`] sends whatever was encoded
//! with one write, and [`Conn::wait`] waits for the first of: more bytes from the front end, a
//! response part from an application, room in a request's body channel, a timer
//! ([`next_timer`], a pure function of the clocks), or the server's stop signal.
//! [`Conn::close`] ends it with a reset or a lingering close.
//!
//! Applications run in their own tasks. A request body flows to the application through a
//! bounded channel; when it is full, the chunk is parked in `pending` and the loop stops
//! reading the socket until the application takes it (backpressure towards the front end).
//! Response parts from every request on the connection share one bounded channel, so a slow
//! front end blocks the applications' sends (backpressure towards the application). The
//! response arm never waits on the body channel, so an application that answers before reading
//! its body cannot deadlock the connection.

pub(crate) mod codec;
mod lazy;

pub(crate) use lazy::Lazy;

use crate::handler::{Body, BodyMsg, Part, Request, Responder, Shared};
use crate::load::ServerCtx;
use crate::Handler;
use crate::{access, status};
use bytes::{Buf, Bytes, BytesMut};
use codec::{Decoded, ServerCodec};
use ferrocgi_proto::ResponseHead;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

/// What the connection loop needs of a socket beyond reading and writing.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin {
    /// Makes the coming close a reset (TCP RST): the one signal every front end takes as "this
    /// response is broken" (Unix sockets have no equivalent; a close must do there).
    fn reset_on_close(&self) {}
    /// Holds back a partial segment until the close, so the last response bytes and the FIN
    /// travel in one segment (TCP only).
    fn cork(&self) {}
    /// True when nothing the peer sent is waiting unread (a non-blocking look).
    fn nothing_unread(&self) -> bool {
        false
    }
    /// Acknowledges what was read at once (TCP only). A front end that sends a request in
    /// several writes without TCP_NODELAY (nginx) holds each write back until the one before is
    /// acknowledged, and on a connection that has answered before the kernel delays that ACK
    /// by 40 ms, hoping to send it with a response.
    fn quick_ack(&self) {}
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Transport for tokio::io::Join<R, W> {}

/// Body chunks buffered per request before the loop stops reading (each ≤ 64 KiB).
const BODY_CHANNEL: usize = 4;
/// Response parts buffered per connection before applications wait.
const RESP_CHANNEL: usize = 8;
/// Read-buffer growth step; a FastCGI record is at most 8 + 65535 + 255 bytes.
const READ_CHUNK: usize = 64 * 1024;
/// Read-buffer size of a connection between requests.
const READ_IDLE: usize = 16 * 1024;
/// Stop collecting response parts into one write past this many bytes.
const WRITE_BATCH: usize = 256 * 1024;
/// How long a closing connection waits for the front end to finish sending, so that unread
/// bytes do not turn our close into a reset that destroys the response in flight.
const LINGER: Duration = Duration::from_secs(2);
/// During a graceful stop, how long a connection with no request in flight stays open to serve
/// a request the front end may already be sending on it (see [`Phase::Draining`]).
const DRAIN_LINGER: Duration = Duration::from_secs(2);
/// How long a retiring worker's idle kept-alive connection stays open after its last response:
/// nginx puts a connection back in its pool as it reads a response's end and may send the next
/// request (a POST it will not retry) at once; closing right then races with that request.
const RETIRE_IDLE: Duration = Duration::from_millis(200);

/// The drain deadline and, when retiring, the cap on lingering, as a stop begins in `phase`.
fn stop_began(phase: Phase) -> (Option<tokio::time::Instant>, Option<tokio::time::Instant>) {
    let cap = tokio::time::Instant::now() + DRAIN_LINGER;
    match phase {
        Phase::Retiring => (None, Some(cap)),
        _ => (Some(cap), None),
    }
}

/// How long an accepted connection counts as busy before its first request starts. A front end
/// sends its request at once; a connection that brings none within this time (idle, or a head
/// dribbled byte by byte) must not keep a prefork worker from accepting the next one.
const FRESH_GRACE: Duration = Duration::from_millis(50);
/// Bytes a peer may send after a request's end (where its protocol has none) before the
/// connection is closed: a little slack for a front end's stray bytes, no more.
const AFTER_END_LIMIT: usize = 64 * 1024;

/// Where the server is in its life, as every connection sees it.
///
/// A front end that keeps connections alive (nginx `fastcgi_keep_conn`, Apache's pool) may
/// send a request on a kept-alive connection at any moment, and it will not retry a POST that
/// fails there. Closing such a connection while it is idle is therefore a race: the request
/// and the close cross on the wire. Closing it right after a response, with the FIN in the
/// same segment as the response's last bytes, is not: nginx sees the end of the connection
/// when it reads the end of the response, before it could reuse the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Serving,
    /// Graceful stop or reload: each connection serves what is in flight and at most one more
    /// request that arrives within [`DRAIN_LINGER`], then closes right after its response; a
    /// connection still idle after [`DRAIN_LINGER`] closes.
    Draining,
    /// Retiring after `maxrequests`: no new connection; each open one serves the requests
    /// that arrive on it until it has been idle for [`RETIRE_IDLE`], and closes when idle after
    /// [`DRAIN_LINGER`] at the latest. The limit is exceeded by the few requests that a front
    /// end was already sending on kept-alive connections: closing one under them would fail
    /// them (nginx does not retry a POST on a connection its pool handed out).
    Retiring,
}

/// A handler's future for one request, polled by the connection loop itself (no task of its
/// own): most finish on their first poll.
type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Polls `task` once; true when it is finished, by returning or by panicking (a panic drops
/// the handler's responder, which ends the request as failed).
fn poll_task(task: &mut Task, cx: &mut Context<'_>) -> bool {
    match std::panic::catch_unwind(AssertUnwindSafe(|| task.as_mut().poll(cx))) {
        Ok(Poll::Ready(())) => true,
        Ok(Poll::Pending) => false,
        Err(_) => {
            warn!("request handler panicked");
            true
        }
    }
}

/// Polls every parked task; ready once at least one finished (and was removed).
fn poll_tasks(tasks: &mut Vec<Task>, cx: &mut Context<'_>) -> Poll<()> {
    let before = tasks.len();
    tasks.retain_mut(|t| !poll_task(t, cx));
    if tasks.len() < before {
        Poll::Ready(())
    } else {
        Poll::Pending
    }
}

/// A request in flight on the connection.
struct ReqState {
    id: u16,
    /// `None` once the body is complete, abandoned by the application, or aborted.
    body_tx: Option<mpsc::Sender<BodyMsg>>,
    shared: Arc<Shared>,
    started: bool,
    /// The status page's count of it (`None` while the page is off).
    seen: Option<status::Seen>,
    /// Its access-log line, written when dropped (`None` while the log is off).
    access: Option<access::Line>,
}

impl ReqState {
    /// The response's status, for the status page and the access log.
    fn note_status(&mut self, status: u16) {
        if let Some(seen) = &mut self.seen {
            seen.status = status;
        }
        if let Some(line) = &mut self.access {
            line.status = status;
        }
    }

    /// Response body bytes went out.
    fn note_body(&mut self, n: usize) {
        status::bytes_out(n);
        if let Some(line) = &mut self.access {
            line.bytes_out += n as u64;
        }
    }

    /// The response ended (`ok`: completely; `sent_500`: the loop answers 500 for it).
    fn note_end(&mut self, ok: bool, sent_500: bool) {
        if sent_500 {
            self.note_status(500);
        }
        if let Some(seen) = &mut self.seen {
            seen.ok = ok;
        }
        if let Some(line) = &mut self.access {
            line.ok = ok;
            line.queue_wait_us = self.shared.queue_wait_us();
        }
    }
}

/// One connection's state; see the module doc.
struct Conn<'a, C, H> {
    codec: C,
    peer: Arc<str>,
    ctx: &'a Arc<ServerCtx<H>>,
    out: BytesMut,
    reqs: Vec<ReqState>,
    pending: Option<(u16, BodyMsg)>,
    resp_tx: mpsc::Sender<(u16, Part)>,
    close: bool,
    /// A response failed after its head was sent: close abruptly.
    broken: bool,
    /// Counted as "fresh" in the server's load until its first request starts (so `!fresh`
    /// also means: a request was seen on this connection).
    fresh: bool,
    /// Still counted in the server's `fresh` load (see [`FRESH_GRACE`]).
    counted_fresh: bool,
    /// A request started in this turn (see [`Conn::wait`]).
    just_started: bool,
    /// Bytes arrived since the last turn (see [`Transport::quick_ack`]).
    just_read: bool,
    /// The slow-peer clocks (`head_timeout`, `min_body_rate`).
    clocks: PeerClocks,
    /// Bytes received where the protocol expects none, discarded (see `discard_unexpected`).
    unexpected: usize,
    /// Output queued ahead of `out`: large response chunks travel as their own buffers,
    /// written with one vectored write instead of being copied into `out`.
    segs: Vec<Bytes>,
    /// Handlers started since the last turn, not polled yet.
    new_tasks: Vec<Task>,
    /// Handlers that did not finish on their first poll.
    tasks: Vec<Task>,
    /// What the front end sent and was not decoded yet.
    rbuf: BytesMut,
    /// The front end closed its side (or reading failed).
    eof: bool,
    /// When bytes last arrived.
    last_read: tokio::time::Instant,
    /// Where the server is in its life, as this connection last saw it.
    phase: Phase,
    /// Once stopping: close as soon as no request is in flight (a request was in flight or
    /// arrived since the stop began), or when `drain_deadline` passes with none.
    close_when_idle: bool,
    drain_deadline: Option<tokio::time::Instant>,
    /// Retiring: when the connection's lingering ends at the latest (see [`Phase::Retiring`]).
    retire_cap: Option<tokio::time::Instant>,
}

/// The clocks a connection runs against a slow or idle peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// Stopping: a connection that brought no request closes (see [`DRAIN_LINGER`]).
    Drain,
    /// `read_timeout`: a request stopped arriving.
    Read,
    /// `idle_timeout`: a kept-alive connection with no request.
    Idle,
    /// `head_timeout`: a request's head took too long in all.
    Head,
    /// `min_body_rate`: time to check the body's pace over the last `read_timeout`.
    BodyRate,
    /// [`FRESH_GRACE`]: the connection stops counting as busy.
    Fresh,
}

/// When a request head began to arrive, and the bytes of body received in the current
/// `min_body_rate` window (started when the body began, or was last checked).
#[derive(Debug)]
struct PeerClocks {
    accepted: tokio::time::Instant,
    head_since: Option<tokio::time::Instant>,
    body_window: Option<(tokio::time::Instant, u64)>,
}

impl PeerClocks {
    fn new(now: tokio::time::Instant) -> Self {
        PeerClocks {
            accepted: now,
            head_since: None,
            body_window: None,
        }
    }

    /// Starts or stops the clocks: `head` while a request's head is partly here, `body` while
    /// its body arrives and is being read (a full body channel pauses the window: the
    /// application is slow then, not the peer). `at` is when the latest bytes came.
    fn update(&mut self, head: bool, body: bool, at: tokio::time::Instant) {
        if !head {
            self.head_since = None;
        } else if self.head_since.is_none() {
            self.head_since = Some(at);
        }
        if !body {
            self.body_window = None;
        } else if self.body_window.is_none() {
            self.body_window = Some((at, 0));
        }
    }

    fn on_read(&mut self, n: usize) {
        if let Some((_, bytes)) = &mut self.body_window {
            *bytes += n as u64;
        }
    }

    /// At the end of a window: true if the body came slower than `rate` bytes a second over
    /// it; otherwise a new window starts.
    fn body_too_slow(&mut self, rate: u64, now: tokio::time::Instant) -> bool {
        let Some((start, bytes)) = self.body_window else {
            return false;
        };
        let secs = now.duration_since(start).as_secs_f64();
        if (bytes as f64) < rate as f64 * secs {
            return true;
        }
        self.body_window = Some((now, 0));
        false
    }
}

/// What the timers depend on besides the configuration and the peer clocks.
#[derive(Debug, Clone, Copy)]
struct TimerState {
    /// The loop reads the socket this turn.
    can_read: bool,
    /// A request's head or body is arriving.
    arriving: bool,
    /// No request is in flight.
    no_requests: bool,
    last_read: tokio::time::Instant,
    /// Stopping, with the connection idle: when it closes.
    drain: Option<tokio::time::Instant>,
    /// Still counted as busy in the server's load (see [`FRESH_GRACE`]).
    counted_fresh: bool,
}

/// The earliest clock that runs now, if any.
fn next_timer(
    cfg: &crate::ServerConfig,
    clocks: &PeerClocks,
    s: TimerState,
) -> Option<(tokio::time::Instant, Timer)> {
    let reading = |t: Option<Duration>| t.filter(|_| s.can_read);
    let candidates = [
        (s.drain, Timer::Drain),
        (
            reading(cfg.read_timeout)
                .filter(|_| s.arriving)
                .map(|t| s.last_read + t),
            Timer::Read,
        ),
        (
            reading(cfg.idle_timeout)
                .filter(|_| !s.arriving && s.no_requests)
                .map(|t| s.last_read + t),
            Timer::Idle,
        ),
        (
            clocks
                .head_since
                .zip(reading(cfg.head_timeout))
                .map(|(since, t)| since + t),
            Timer::Head,
        ),
        (
            clocks
                .body_window
                .zip(cfg.read_timeout.filter(|_| cfg.min_body_rate > 0))
                .map(|((since, _), t)| since + t),
            Timer::BodyRate,
        ),
        (
            s.counted_fresh.then(|| clocks.accepted + FRESH_GRACE),
            Timer::Fresh,
        ),
    ];
    candidates
        .into_iter()
        .filter_map(|(at, which)| at.map(|at| (at, which)))
        .min_by_key(|(at, _)| *at)
}

/// Serves one connection until the front end closes it, a protocol error, or shutdown.
pub(crate) async fn run_connection<S, C, H>(
    mut stream: S,
    codec: C,
    peer: Arc<str>,
    ctx: Arc<ServerCtx<H>>,
    mut shutdown: watch::Receiver<Phase>,
) where
    S: Transport,
    C: ServerCodec,
    H: Handler,
{
    let (resp_tx, mut resp_rx) = mpsc::channel(RESP_CHANNEL);
    let phase = *shutdown.borrow();
    let mut c = Conn::new(codec, peer, &ctx, resp_tx, phase);
    status::connection(true);
    loop {
        c.turn(&mut resp_rx).await;
        if std::mem::take(&mut c.just_read) && c.awaits_request_bytes() {
            stream.quick_ack();
        }
        let done = c.done();
        if !c.flush(&mut stream, done).await || done {
            break;
        }
        if !c.wait(&mut stream, &mut resp_rx, &mut shutdown).await {
            break;
        }
    }
    c.close(stream).await;
    status::connection(false);
}

impl<'a, C: ServerCodec, H: Handler> Conn<'a, C, H> {
    fn new(
        codec: C,
        peer: Arc<str>,
        ctx: &'a Arc<ServerCtx<H>>,
        resp_tx: mpsc::Sender<(u16, Part)>,
        phase: Phase,
    ) -> Self {
        let now = tokio::time::Instant::now();
        let (drain_deadline, retire_cap) = match phase {
            Phase::Serving => (None, None),
            stopping => stop_began(stopping),
        };
        Conn {
            codec,
            peer,
            ctx,
            out: BytesMut::with_capacity(16 * 1024),
            reqs: Vec::new(),
            pending: None,
            resp_tx,
            close: false,
            broken: false,
            fresh: true,
            counted_fresh: true,
            just_started: false,
            just_read: false,
            clocks: PeerClocks::new(now),
            unexpected: 0,
            segs: Vec::new(),
            new_tasks: Vec::new(),
            tasks: Vec::new(),
            rbuf: BytesMut::with_capacity(READ_IDLE),
            eof: false,
            last_read: now,
            phase,
            close_when_idle: false,
            drain_deadline,
            retire_cap,
        }
    }

    /// One step of the loop up to its write: decodes what arrived, polls the new handlers
    /// once (whatever they answer at once goes out with this turn's write), logs the codec's
    /// notices.
    async fn turn(&mut self, resp_rx: &mut mpsc::Receiver<(u16, Part)>) {
        self.decode_all();
        self.discard_unexpected();
        self.close_when_idle |= self.phase == Phase::Draining && !self.reqs.is_empty();
        self.codec.take_output(&mut self.out);
        if !self.new_tasks.is_empty() {
            let waker = std::future::poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
            let mut cx = Context::from_waker(&waker);
            for mut t in std::mem::take(&mut self.new_tasks) {
                if !poll_task(&mut t, &mut cx) {
                    self.tasks.push(t);
                }
            }
            self.drain_parts(resp_rx);
        }
        for notice in self.codec.take_notices() {
            warn!(peer = %self.peer, protocol = %C::PROTOCOL, "{notice}");
        }
    }

    /// A request is only partly here: its record or head is cut short, or its body goes on.
    fn awaits_request_bytes(&self) -> bool {
        !self.rbuf.is_empty() || self.reqs.iter().any(|r| r.body_tx.is_some())
    }

    /// Nothing in flight, nothing read and not decoded, nothing waiting for room.
    fn idle(&self) -> bool {
        self.reqs.is_empty() && self.rbuf.is_empty() && self.pending.is_none()
    }

    /// Whether the connection ends after this turn's write. Retiring, it also moves the
    /// linger deadline: RETIRE_IDLE after each request (the front end may be sending the next
    /// one on this kept-alive connection right now), never past the cap.
    fn done(&mut self) -> bool {
        let idle = self.idle();
        if let Some(cap) = self.retire_cap {
            self.drain_deadline = match (idle, self.drain_deadline) {
                (false, _) => None,
                (true, None) => Some(cap.min(tokio::time::Instant::now() + RETIRE_IDLE)),
                (true, d) => d,
            };
        }
        self.close
            || (self.reqs.is_empty() && (self.eof || self.codec.wants_close()))
            || (self.phase == Phase::Draining && idle && self.close_when_idle)
    }

    /// Writes what the turn produced; false: the connection is lost (or the front end takes
    /// nothing for `write_timeout`).
    async fn flush<S: Transport>(&mut self, stream: &mut S, done: bool) -> bool {
        if !self.has_output() {
            return true;
        }
        if done && !self.broken {
            stream.cork();
        }
        // flush: a no-op on sockets, but tokio's stdout (CGI) buffers, and its shutdown does
        // not flush.
        let (out, segs) = (&mut self.out, &mut self.segs);
        let write = async {
            if segs.is_empty() {
                stream.write_all(out).await?;
            } else {
                write_segments(stream, segs, out).await?;
            }
            stream.flush().await
        };
        let written = match self.ctx.config.write_timeout {
            Some(t) => match tokio::time::timeout(t, write).await {
                Ok(r) => r,
                Err(_) => {
                    warn!(peer = %self.peer, timeout = ?t, "the web server took no response bytes for write_timeout; closing the connection");
                    return false;
                }
            },
            None => write.await,
        };
        if let Err(e) = written {
            debug!(peer = %self.peer, error = %e, "write to web server failed; dropping connection");
            return false;
        }
        self.out.clear();
        self.segs.clear();
        true
    }

    /// Sizes the read buffer for the next read. Between requests it drops what a large one
    /// grew, so a kept-alive connection holds READ_IDLE bytes, not its largest request's size
    /// (the allocator reuses the freed block for the next connection that needs one).
    fn size_read_buffer(&mut self) {
        if self.rbuf.is_empty()
            && self.rbuf.capacity() > READ_IDLE
            && self.reqs.iter().all(|r| r.body_tx.is_none())
        {
            self.rbuf = BytesMut::with_capacity(READ_IDLE);
        }
        if self.rbuf.capacity() - self.rbuf.len() < 4096 {
            self.rbuf.reserve(READ_CHUNK);
        }
    }

    /// The clocks for this wait: the peer clocks follow what is arriving, then the earliest
    /// running timer.
    fn next_deadline(&mut self, can_read: bool) -> Option<(tokio::time::Instant, Timer)> {
        let body_arriving = self.reqs.iter().any(|r| r.body_tx.is_some());
        let head_arriving = !self.rbuf.is_empty() && !body_arriving;
        let reading_body = body_arriving && can_read;
        self.clocks
            .update(head_arriving, reading_body, self.last_read);
        let state = TimerState {
            can_read,
            arriving: !self.rbuf.is_empty() || body_arriving,
            no_requests: self.reqs.is_empty(),
            last_read: self.last_read,
            drain: self.drain_deadline.filter(|_| self.idle()),
            counted_fresh: self.counted_fresh,
        };
        next_timer(&self.ctx.config, &self.clocks, state)
    }

    /// Waits for the first of: a response part, a handler's progress, room in a body channel,
    /// a timer, bytes from the front end, the server's stop. False: close the connection.
    async fn wait<S: Transport>(
        &mut self,
        stream: &mut S,
        resp_rx: &mut mpsc::Receiver<(u16, Part)>,
        shutdown: &mut watch::Receiver<Phase>,
    ) -> bool {
        // A request just started that is whole on a protocol with nothing after it (SCGI):
        // the application's task runs first, and an answer made at once ends the connection
        // before the read below would have to wait (and register the socket with the runtime).
        if std::mem::take(&mut self.just_started) && !self.codec.expects_input() {
            tokio::task::yield_now().await;
        }
        self.size_read_buffer();
        let pending_tx = self.pending.as_ref().and_then(|(id, _)| self.body_tx(*id));
        let room = async move {
            match pending_tx {
                Some(tx) => tx.reserve_owned().await.ok(),
                None => std::future::pending().await,
            }
        };
        let can_read = self.pending.is_none() && !self.eof;
        let timer = self.next_deadline(can_read);
        let serving = self.phase == Phase::Serving;
        let has_tasks = !self.tasks.is_empty();
        let has_pending = self.pending.is_some();
        // A timer already due wins over reading; one still to come is armed only when nothing
        // is ready (arming tokio's timer can cost a wake-up of the runtime's driver, and a
        // connection served in one pass never needs it).
        let due = timer.is_some_and(|(at, _)| at <= tokio::time::Instant::now());
        let later = timer.filter(|_| !due);
        tokio::select! {
            biased;
            Some((id, part)) = resp_rx.recv() => {
                self.on_part(id, part);
                self.drain_parts(resp_rx);
            }
            _ = std::future::poll_fn(|cx| poll_tasks(&mut self.tasks, cx)), if has_tasks => {}
            permit = room, if has_pending => self.on_room(permit),
            _ = std::future::ready(()), if due => {
                let (_, which) = timer.expect("guarded by the branch condition");
                return self.on_timer(which);
            }
            read = stream.read_buf(&mut self.rbuf), if can_read => self.on_read(read),
            changed = shutdown.changed(), if serving => {
                self.phase = match (changed, *shutdown.borrow()) {
                    (Ok(()), p) if p != Phase::Serving => p,
                    _ => Phase::Draining,
                };
                (self.drain_deadline, self.retire_cap) = stop_began(self.phase);
                self.close_when_idle |= self.phase == Phase::Draining && !self.reqs.is_empty();
            }
            _ = tokio::time::sleep_until(later.map_or_else(tokio::time::Instant::now, |t| t.0)), if later.is_some() => {
                let (_, which) = later.expect("guarded by the branch condition");
                return self.on_timer(which);
            }
        }
        true
    }

    /// Room in the body channel of the request whose chunk waited.
    fn on_room(&mut self, permit: Option<mpsc::OwnedPermit<BodyMsg>>) {
        let (id, msg) = self
            .pending
            .take()
            .expect("guarded by the branch condition");
        match permit {
            Some(permit) => {
                let end = matches!(msg, BodyMsg::End);
                permit.send(msg);
                self.delivered(id, end);
            }
            None => self.body_abandoned(id),
        }
    }

    fn on_read(&mut self, read: std::io::Result<usize>) {
        match read {
            Ok(0) => {
                self.eof = true;
                self.on_eof(!self.rbuf.is_empty());
            }
            Ok(n) => {
                self.just_read = true;
                self.last_read = tokio::time::Instant::now();
                self.clocks.on_read(n);
            }
            Err(e) => {
                debug!(peer = %self.peer, error = %e, "read from web server failed");
                self.eof = true;
                self.on_eof(false);
            }
        }
    }

    /// The end: requests in flight are aborted, and the socket is reset (a response broken
    /// after its head) or closed with a linger.
    async fn close<S: Transport>(mut self, mut stream: S) {
        for r in &self.reqs {
            r.shared.abort();
        }
        self.not_fresh();
        // A reset, not a clean close: SCGI has no end marker (a close *is* the normal end), and
        // lighttpd completes a buffered FastCGI response on a clean close without END_REQUEST.
        let reset = self.broken;
        // The peer said all it had to say (SCGI after its body) and nothing is left unread: a
        // plain close ends the connection without a reset, and waiting for the peer's own close
        // (a wake-up and two system calls per connection) buys nothing.
        let quiet = !self.codec.expects_input() && self.rbuf.is_empty() && self.unexpected == 0;
        drop(self);
        if reset {
            stream.reset_on_close();
            return;
        }
        if quiet && stream.nothing_unread() {
            return;
        }
        // Lingering close: say we are done, then read what the front end still sends until it
        // closes too, so the kernel does not answer unread data with a reset.
        if stream.shutdown().await.is_ok() {
            let mut sink = [0u8; 8192];
            let _ = tokio::time::timeout(LINGER, async {
                while let Ok(n) = stream.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
        }
    }
}

/// Response chunks at least this long are queued as they are, not copied into the write buffer.
const SHARE_MIN: usize = 8 * 1024;

/// Writes `segs` then `out`, as few vectored writes as the socket takes.
async fn write_segments<S: AsyncWrite + Unpin>(
    stream: &mut S,
    segs: &mut Vec<Bytes>,
    out: &mut BytesMut,
) -> std::io::Result<()> {
    if !out.is_empty() {
        segs.push(out.split().freeze());
    }
    let mut first = 0;
    while first < segs.len() {
        let mut n = {
            let slices: Vec<std::io::IoSlice<'_>> = segs[first..]
                .iter()
                .take(64)
                .map(|b| std::io::IoSlice::new(b))
                .collect();
            stream.write_vectored(&slices).await?
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while first < segs.len() && n >= segs[first].len() {
            n -= segs[first].len();
            first += 1;
        }
        if n > 0 {
            segs[first].advance(n);
        }
    }
    segs.clear();
    Ok(())
}

impl<C: ServerCodec, H: Handler> Conn<'_, C, H> {
    fn has_output(&self) -> bool {
        !self.out.is_empty() || !self.segs.is_empty()
    }

    fn pending_out(&self) -> usize {
        self.out.len() + self.segs.iter().map(Bytes::len).sum::<usize>()
    }

    /// Takes the response parts already queued, without waiting, until a write's worth is
    /// pending.
    fn drain_parts(&mut self, rx: &mut mpsc::Receiver<(u16, Part)>) {
        while self.pending_out() < WRITE_BATCH {
            match rx.try_recv() {
                Ok((id, part)) => self.on_part(id, part),
                Err(_) => break,
            }
        }
    }

    fn find(&mut self, id: u16) -> Option<&mut ReqState> {
        self.reqs.iter_mut().find(|r| r.id == id)
    }

    fn body_tx(&self, id: u16) -> Option<mpsc::Sender<BodyMsg>> {
        self.reqs
            .iter()
            .find(|r| r.id == id)
            .and_then(|r| r.body_tx.clone())
    }

    /// Drops bytes a peer sends where the protocol has none (after an SCGI body): they are
    /// never buffered, so memory does not grow with them; past [`AFTER_END_LIMIT`] the peer is
    /// misbehaving and the connection closes. Reading goes on meanwhile, so a front end that
    /// hangs up is still noticed.
    fn discard_unexpected(&mut self) {
        if self.rbuf.is_empty() || self.codec.expects_input() {
            return;
        }
        self.unexpected += self.rbuf.len();
        self.rbuf.clear();
        if self.unexpected > AFTER_END_LIMIT && !self.close {
            warn!(peer = %self.peer, protocol = %C::PROTOCOL, bytes = self.unexpected,
                "the web server keeps sending after the request's end; closing the connection");
            for r in &self.reqs {
                r.shared.abort();
            }
            self.reqs.clear();
            self.close = true;
            // A reset, not a lingering close, which would go on reading what it sends.
            self.broken = true;
        }
    }

    fn decode_all(&mut self) {
        while self.pending.is_none() && !self.close {
            match self.codec.decode(&mut self.rbuf) {
                Ok(Some(ev)) => self.on_event(ev),
                Ok(None) => break,
                Err(e) => {
                    warn!(peer = %self.peer, protocol = %C::PROTOCOL, "protocol error: {e}; closing connection");
                    self.codec.error_reply(&e, &mut self.out);
                    for r in &self.reqs {
                        r.shared.abort();
                    }
                    self.reqs.clear();
                    self.close = true;
                }
            }
        }
    }

    fn on_event(&mut self, ev: Decoded) {
        match ev {
            Decoded::Request {
                id,
                params,
                declared,
            } => self.start_request(id, params, declared),
            Decoded::Body { id, data } => {
                status::bytes_in(data.len());
                if let Some(line) = self.find(id).and_then(|r| r.access.as_mut()) {
                    line.bytes_in += data.len() as u64;
                }
                self.deliver(id, BodyMsg::Data(data))
            }
            Decoded::BodyEnd { id } => self.deliver(id, BodyMsg::End),
            Decoded::Abort { id } => {
                if let Some(r) = self.find(id) {
                    debug!(id, "request aborted by the web server");
                    r.shared.abort();
                    r.body_tx = None;
                }
            }
            Decoded::Close => {
                debug!(peer = %self.peer, "web server asked to close the connection");
                self.close = true;
            }
        }
    }

    /// A clock ran out; false: close the connection.
    fn on_timer(&mut self, which: Timer) -> bool {
        let cfg = &self.ctx.config;
        let p = C::PROTOCOL;
        match which {
            Timer::Fresh => {
                self.uncount_fresh();
                return true;
            }
            Timer::BodyRate => {
                let rate = cfg.min_body_rate;
                if !self.clocks.body_too_slow(rate, tokio::time::Instant::now()) {
                    return true;
                }
                warn!(peer = %self.peer, protocol = %p, min_body_rate = rate, "the request body arrives slower than min_body_rate; closing the connection");
            }
            Timer::Head => {
                warn!(peer = %self.peer, protocol = %p, timeout = ?cfg.head_timeout, "the request head did not arrive within head_timeout; closing the connection")
            }
            Timer::Read => {
                warn!(peer = %self.peer, protocol = %p, timeout = ?cfg.read_timeout, "the request stopped arriving for read_timeout; closing the connection")
            }
            Timer::Idle => debug!(peer = %self.peer, "closing a connection idle for idle_timeout"),
            Timer::Drain => {
                debug!(peer = %self.peer, "stopping: closing a connection that brought no request")
            }
        }
        false
    }

    fn not_fresh(&mut self) {
        self.fresh = false;
        self.uncount_fresh();
    }

    /// Stops counting this connection as work about to arrive (its first request started, or
    /// [`FRESH_GRACE`] passed without one).
    fn uncount_fresh(&mut self) {
        if std::mem::take(&mut self.counted_fresh) {
            self.ctx.fresh_ended();
        }
    }

    fn start_request(&mut self, id: u16, params: ferrocgi_proto::Params, declared: Option<u64>) {
        if let Err(reason) = self.codec.admit() {
            warn!(peer = %self.peer, protocol = %C::PROTOCOL, "request refused: {reason}");
            let head = ResponseHead::new(403, "Forbidden").header("Content-Type", "text/plain");
            if self.codec.head(id, &head, &mut self.out).is_ok() {
                self.codec.body(id, b"forbidden\n", &mut self.out);
            }
            self.codec.end(id, true, &mut self.out);
            self.close = true;
            return;
        }
        if self.ctx.config.status.is_on() {
            if let Some(page) = status::route(&self.ctx.config.status, &params) {
                return self.answer_page(id, &page, &params);
            }
        }
        let Ok(permit) = self.ctx.slots.clone().try_acquire_owned() else {
            warn!(peer = %self.peer, protocol = %C::PROTOCOL, max_in_flight = self.ctx.config.max_in_flight,
                "server at capacity; refusing request");
            self.close |= self.codec.overloaded(id, &mut self.out);
            return;
        };
        let seen = status::started(&params);
        let access = access::begin(C::PROTOCOL, &params);
        let (body_tx, body_rx) = mpsc::channel(BODY_CHANNEL);
        let shared = Arc::new(Shared::default());
        let req = Request {
            protocol: C::PROTOCOL,
            params,
            body: Body::new(body_rx, shared.clone(), declared),
            peer: self.peer.clone(),
        };
        // The first request ends the connection's freshness in the same update of the load.
        self.fresh = false;
        self.just_started = true;
        let was_fresh = std::mem::take(&mut self.counted_fresh);
        let ticket = self.ctx.request_started(permit, was_fresh);
        let resp = Responder::new(id, self.resp_tx.clone(), shared.clone(), ticket);
        let ctx = self.ctx.clone();
        self.new_tasks.push(Box::pin(async move {
            ctx.handler.handle(req, resp).await;
        }));
        self.reqs.push(ReqState {
            id,
            body_tx: Some(body_tx),
            shared,
            started: false,
            seen,
            access,
        });
        self.codec.body_delivered(id, &mut self.out);
    }

    /// A request for `status_path` or `ping_path`, answered here; the application never sees
    /// it.
    fn answer_page(&mut self, id: u16, page: &status::Page, params: &ferrocgi_proto::Params) {
        let (head, body) = status::answer(page, &self.ctx.config.status, params, &self.peer);
        if self.codec.head(id, &head, &mut self.out).is_ok() {
            self.codec.body(id, &body, &mut self.out);
        }
        self.close |= self.codec.end(id, true, &mut self.out);
        self.not_fresh();
    }

    fn deliver(&mut self, id: u16, msg: BodyMsg) {
        let Some(tx) = self.find(id).and_then(|r| r.body_tx.as_ref()) else {
            return; // refused, finished or aborted request: its remaining body is dropped
        };
        let end = matches!(msg, BodyMsg::End);
        match tx.try_send(msg) {
            Ok(()) => self.delivered(id, end),
            Err(mpsc::error::TrySendError::Full(msg)) => self.pending = Some((id, msg)),
            Err(mpsc::error::TrySendError::Closed(_)) => self.body_abandoned(id),
        }
    }

    fn delivered(&mut self, id: u16, end: bool) {
        if end {
            if let Some(r) = self.find(id) {
                r.body_tx = None;
            }
        }
        self.codec.body_delivered(id, &mut self.out);
    }

    /// The application dropped its body reader: the rest of the body is discarded.
    fn body_abandoned(&mut self, id: u16) {
        if let Some(r) = self.find(id) {
            r.body_tx = None;
        }
    }

    fn on_eof(&mut self, mid_record: bool) {
        let incomplete = self.reqs.iter().any(|r| r.body_tx.is_some());
        if mid_record && self.reqs.is_empty() && !self.fresh {
            // Expected: a front end stops sending a body the answer did not need (a 413).
            debug!(peer = %self.peer, "web server closed the connection mid-record after the response");
        } else if mid_record {
            warn!(peer = %self.peer, protocol = %C::PROTOCOL,
                "protocol error: connection closed in the middle of a record; closing connection");
        } else if incomplete {
            warn!(peer = %self.peer, protocol = %C::PROTOCOL,
                "web server closed the connection before the request body was complete");
        }
        // A FastCGI web server aborts a request by closing its connection (the spec, 3.5), and
        // AJP front ends close on an abort too: nobody reads a response past EOF, and the
        // application is told at once (ASGI's http.disconnect). An SCGI client may only have
        // shut down its sending side, waiting for the answer, and a CGI request's stdin ends
        // before its answer is written.
        let gone = matches!(
            C::PROTOCOL,
            crate::Protocol::Fastcgi | crate::Protocol::Ajp13
        );
        for r in &mut self.reqs {
            if r.body_tx.take().is_some() || gone {
                r.shared.abort();
            }
        }
        self.pending = None;
    }

    fn on_part(&mut self, id: u16, part: Part) {
        let Some(i) = self.reqs.iter().position(|r| r.id == id) else {
            return; // the request was already ended (aborted, or the connection failed)
        };
        let part = match part {
            Part::Batch(b) => {
                if let Some(head) = b.head {
                    self.on_part(id, Part::Head(head));
                }
                if !b.data.is_empty() {
                    self.on_part(id, Part::Data(b.data));
                }
                if b.end {
                    self.on_part(id, Part::End);
                }
                return;
            }
            part => part,
        };
        let aborted = self.reqs[i].shared.is_aborted();
        tracing::trace!(id, aborted, started = self.reqs[i].started, part = ?std::mem::discriminant(&part), "response part");
        let out = &mut self.out;
        match part {
            Part::Head(head) if !aborted => {
                if let Err(e) = self.codec.head(id, &head, out) {
                    warn!(peer = %self.peer, "response head cannot be sent: {e}");
                    let h = ResponseHead::new(500, "Internal Server Error");
                    let _ = self.codec.head(id, &h, out);
                }
                self.reqs[i].note_status(head.status);
                self.reqs[i].started = true;
            }
            Part::Data(data) if !aborted && self.reqs[i].started => {
                self.reqs[i].note_body(data.len());
                if data.len() >= SHARE_MIN {
                    self.codec.body_shared(id, data, out, &mut self.segs);
                } else {
                    self.codec.body(id, &data, out);
                }
            }
            Part::Stderr(data) if !aborted && !self.codec.stderr(id, &data, out) => {
                warn!(peer = %self.peer, "application error output: {}",
                    String::from_utf8_lossy(&data).trim_end());
            }
            Part::End | Part::Fail => self.end_request(i, matches!(part, Part::End), aborted),
            _ => {}
        }
    }

    /// The response of `reqs[i]` ended (`ok`: completely): its end goes out (a 500 if nothing
    /// was sent yet), and a response broken after its head closes the connection.
    fn end_request(&mut self, i: usize, ok: bool, aborted: bool) {
        let mut r = self.reqs.swap_remove(i);
        let id = r.id;
        r.note_end(ok, !r.started && !aborted);
        if r.started && !ok && !aborted {
            warn!(peer = %self.peer, protocol = %C::PROTOCOL,
                "response failed after its head was sent; closing the connection so the web server does not take it as complete");
            self.broken = true;
        }
        let out = &mut self.out;
        let close = if r.started || aborted {
            self.codec.end(id, ok || aborted, out)
        } else {
            // Nothing was sent yet: the client still gets a well-formed answer.
            let h = ResponseHead::new(500, "Internal Server Error")
                .header("Content-Type", "text/plain");
            let _ = self.codec.head(id, &h, out);
            self.codec.body(id, b"Internal Server Error\n", out);
            self.codec.end(id, true, out)
        };
        self.close |= close;
        if self.pending.as_ref().is_some_and(|(pid, _)| *pid == id) {
            self.pending = None;
        }
    }
}

#[cfg(test)]
mod tests {
    //! The timer decisions, without sockets: which clock runs, and when it fires.

    use super::*;
    use crate::{Protocol, ServerConfig};
    use tokio::time::Instant;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn config() -> ServerConfig {
        let mut c = ServerConfig::new(Protocol::Fastcgi);
        c.idle_timeout = Some(secs(60));
        c.read_timeout = Some(secs(20));
        c.head_timeout = Some(secs(30));
        c.min_body_rate = 1024;
        c
    }

    fn state(t0: Instant) -> TimerState {
        TimerState {
            can_read: true,
            arriving: false,
            no_requests: true,
            last_read: t0,
            drain: None,
            counted_fresh: false,
        }
    }

    #[test]
    fn a_new_connection_stops_counting_as_busy_after_the_fresh_grace() {
        let t0 = Instant::now();
        let clocks = PeerClocks::new(t0);
        let s = TimerState {
            counted_fresh: true,
            ..state(t0)
        };
        assert_eq!(
            next_timer(&config(), &clocks, s),
            Some((t0 + FRESH_GRACE, Timer::Fresh))
        );
    }

    #[test]
    fn an_idle_kept_alive_connection_runs_the_idle_timeout_only() {
        let t0 = Instant::now();
        let clocks = PeerClocks::new(t0);
        assert_eq!(
            next_timer(&config(), &clocks, state(t0)),
            Some((t0 + secs(60), Timer::Idle))
        );
        // With a request in flight and nothing arriving, no clock runs.
        let s = TimerState {
            no_requests: false,
            ..state(t0)
        };
        assert_eq!(next_timer(&config(), &clocks, s), None);
    }

    #[test]
    fn a_head_arriving_runs_read_and_head_timeouts_and_the_earlier_wins() {
        let t0 = Instant::now();
        let mut clocks = PeerClocks::new(t0);
        clocks.update(true, false, t0);
        let s = TimerState {
            arriving: true,
            ..state(t0)
        };
        assert_eq!(
            next_timer(&config(), &clocks, s),
            Some((t0 + secs(20), Timer::Read))
        );
        // Bytes keep coming (last_read moves), but the head's clock started with its first.
        let later = t0 + secs(25);
        clocks.update(true, false, later);
        let s = TimerState {
            arriving: true,
            last_read: later,
            ..state(t0)
        };
        assert_eq!(
            next_timer(&config(), &clocks, s),
            Some((t0 + secs(30), Timer::Head))
        );
    }

    #[test]
    fn no_read_clock_runs_while_the_loop_does_not_read() {
        let t0 = Instant::now();
        let mut clocks = PeerClocks::new(t0);
        clocks.update(true, false, t0);
        let s = TimerState {
            can_read: false,
            arriving: true,
            ..state(t0)
        };
        assert_eq!(next_timer(&config(), &clocks, s), None);
    }

    #[test]
    fn a_drain_deadline_closes_an_idle_connection_first() {
        let t0 = Instant::now();
        let clocks = PeerClocks::new(t0);
        let s = TimerState {
            drain: Some(t0 + DRAIN_LINGER),
            ..state(t0)
        };
        assert_eq!(
            next_timer(&config(), &clocks, s),
            Some((t0 + DRAIN_LINGER, Timer::Drain))
        );
    }

    #[test]
    fn the_body_rate_is_checked_once_per_read_timeout_window() {
        let t0 = Instant::now();
        let mut clocks = PeerClocks::new(t0);
        clocks.update(false, true, t0);
        let s = TimerState {
            arriving: true,
            no_requests: false,
            ..state(t0)
        };
        // The window ends with the read timeout; the read clock is the same instant here and
        // comes first in the list.
        assert_eq!(
            next_timer(&config(), &clocks, s).map(|(at, _)| at),
            Some(t0 + secs(20))
        );
        let mut cfg = config();
        cfg.min_body_rate = 0;
        clocks.update(false, true, t0);
        assert_eq!(
            next_timer(&cfg, &clocks, s),
            Some((t0 + secs(20), Timer::Read)),
            "no minimum, no rate clock"
        );
    }

    #[test]
    fn a_body_slower_than_the_rate_over_the_window_is_too_slow() {
        let t0 = Instant::now();
        let mut clocks = PeerClocks::new(t0);
        clocks.update(false, true, t0);
        clocks.on_read(10 * 1024);
        // 10 KiB in 20 s is 512 bytes a second: below 1 KiB/s.
        assert!(clocks.body_too_slow(1024, t0 + secs(20)));
        let mut clocks = PeerClocks::new(t0);
        clocks.update(false, true, t0);
        clocks.on_read(40 * 1024);
        assert!(!clocks.body_too_slow(1024, t0 + secs(20)));
        // A new window starts at the check, with nothing counted yet.
        assert_eq!(clocks.body_window, Some((t0 + secs(20), 0)));
    }

    #[test]
    fn clocks_stop_when_the_head_or_body_is_done() {
        let t0 = Instant::now();
        let mut clocks = PeerClocks::new(t0);
        clocks.update(true, false, t0);
        assert_eq!(clocks.head_since, Some(t0));
        clocks.update(false, true, t0 + secs(1));
        assert_eq!(clocks.head_since, None);
        assert_eq!(clocks.body_window, Some((t0 + secs(1), 0)));
        clocks.update(false, false, t0 + secs(2));
        assert_eq!(clocks.body_window, None);
    }
}
