//! The status page, ping and their bookkeeping (`status_path`, `ping_path`,
//! `status_allow_from`): php-fpm's pool and process fields, and ferrocgi's own, kept in a
//! [`board`] every process of the server shares, rendered by [`render`] as text (php-fpm's
//! layout), JSON, OpenMetrics or HTML.
//!
//! Who writes a row: a prefork worker its own (the connection loop marks it per request); under
//! `method=threaded`, a host with its own application threads marks a row per thread
//! ([`thread_busy`]), and a host without them (the pure-Rust example) has one row for the
//! process. Nothing is kept, and nothing costs, while `status_path` is not set.

mod board;
pub mod client;
mod render;

use crate::listener::IpNet;
pub use board::Restart;
use board::{now_us, Board, RowState};
use ferrocgi_proto::{Params, ResponseHead};
pub(crate) use render::{civil_from_days, clf_time};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// What the connection loop is told about the status page and ping.
#[derive(Debug, Clone, Default)]
pub struct StatusConfig {
    /// `status_path`: the path answered with the status page.
    pub status_path: Option<String>,
    /// `ping_path`: the path answered with `pong`.
    pub ping_path: Option<String>,
    /// Who may read the status page (the client's REMOTE_ADDR, else the connection's peer);
    /// `None`: anyone.
    pub allow: Option<Vec<IpNet>>,
}

impl StatusConfig {
    /// Whether any path is served by the server itself.
    pub fn is_on(&self) -> bool {
        self.status_path.is_some() || self.ping_path.is_some()
    }
}

/// Whose rows the connection loop marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rows {
    /// Each prefork worker marks the row the supervisor gave it.
    Processes,
    /// The host marks one row per application thread ([`thread_busy`]).
    Threads,
    /// One process, one row (a host without threads of its own).
    One,
}

/// The pool as the page names it.
pub(crate) struct Pool {
    pub(crate) name: String,
    pub(crate) manager: &'static str,
    /// Under threaded: `Threads` until the host turns out to have no threads of its own
    /// ([`one_row`]).
    pub(crate) rows: Rows,
    pub(crate) listen_fd: RawFd,
    pub(crate) backlog: i32,
    pub(crate) max_children: usize,
}

struct Global {
    board: Board,
    pool: Pool,
    /// The host has no application threads: the process is one row (see [`one_row`]).
    one: std::sync::atomic::AtomicBool,
}

impl Global {
    fn rows(&self) -> Rows {
        if self.one.load(Ordering::Relaxed) {
            Rows::One
        } else {
            self.pool.rows
        }
    }
}

static GLOBAL: OnceLock<Global> = OnceLock::new();
/// This process's row (prefork worker, or the one row); `usize::MAX`: none.
static MY_ROW: AtomicUsize = AtomicUsize::new(usize::MAX);
/// This process's [`board::Counters`] block: its row's under prefork, else the first.
static MY_COUNTERS: AtomicUsize = AtomicUsize::new(0);
/// Application threads busy in this process (threaded), for `max active processes`.
static BUSY_THREADS: AtomicUsize = AtomicUsize::new(0);

fn global() -> Option<&'static Global> {
    GLOBAL.get()
}

/// Makes the board, before any worker is forked; for `rows` workers. Once per process.
pub(crate) fn install(rows: usize, pool: Pool) -> std::io::Result<()> {
    let board = Board::map(rows)?;
    let _ = GLOBAL.set(Global {
        board,
        pool,
        one: false.into(),
    });
    Ok(())
}

/// Under threaded, the host started no application threads: the process is the one row.
pub(crate) fn one_row() {
    let Some(g) = global() else { return };
    let i = g.board.claim(std::process::id().into());
    MY_ROW.store(i.unwrap_or(usize::MAX), Ordering::Relaxed);
    g.one.store(true, Ordering::Relaxed);
}

/// Application thread `index` of the host started: its row shows it idle (a host under
/// `method=threaded` calls this from the thread, before it takes requests).
pub fn thread_ready(index: usize) {
    let Some(g) = global().filter(|g| g.rows() == Rows::Threads) else {
        return;
    };
    if let Some(row) = g.board.rows.get(index) {
        row.claim(nix::unistd::gettid().as_raw() as u64);
    }
}

/// The supervisor gives a worker about to be forked a row; `None` if the board is full or
/// off. [`row_pid`] names its process once forked.
pub(crate) fn claim_row() -> Option<usize> {
    global()?.board.claim(u64::from(u32::MAX))
}

/// The worker of `row` is process `pid`.
pub(crate) fn row_pid(row: Option<usize>, pid: i32) {
    if let (Some(g), Some(i)) = (global(), row) {
        g.board.rows[i].set_pid(pid as u64);
    }
}

/// In the worker: this process is `row`'s.
pub(crate) fn enter_row(row: Option<usize>) {
    let (Some(g), Some(i)) = (global(), row) else {
        return;
    };
    g.board.rows[i].claim(std::process::id().into());
    MY_ROW.store(i, Ordering::Relaxed);
    MY_COUNTERS.store(i, Ordering::Relaxed);
}

/// The supervisor reaped the worker of `row`; counts its restart (`crashed`: it died without
/// being asked to, and said no reason of its own).
pub(crate) fn release_row(row: Option<usize>, crashed: bool) {
    let (Some(g), Some(i)) = (global(), row) else {
        return;
    };
    g.board.header.retired.fold(&g.board.counters[i]);
    let why = g.board.rows[i].free().or(crashed.then_some(Restart::Crash));
    if let Some(why) = why {
        g.board.header.restarts[why as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// This process is about to be replaced, for `why`.
pub fn retiring(why: Restart) {
    let Some(g) = global() else { return };
    match my_row(g) {
        Some(row) if g.rows() == Rows::Processes => {
            row.set_reason(why);
            row.set_ending();
        }
        _ => {
            g.board.header.restarts[why as usize].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The supervisor could not start a worker it wanted: `maxchildren` reached.
pub(crate) fn max_children_reached() {
    if let Some(g) = global() {
        g.board
            .header
            .max_children_reached
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// `n` workers are busy now (the supervisor's count, or this process's threads): the most
/// seen is `max active processes`.
pub(crate) fn saw_active(n: usize) {
    let Some(g) = global() else { return };
    let max = &g.board.header.max_active;
    // Read first: the shared line is written only when the maximum grows.
    if n as u64 > max.load(Ordering::Relaxed) {
        max.fetch_max(n as u64, Ordering::Relaxed);
    }
}

/// A request ran past `slow_request` (the host's watchdog says so).
pub fn slow_request() {
    if let Some(g) = global() {
        g.board.header.slow.fetch_add(1, Ordering::Relaxed);
    }
}

/// A request was stopped at `request_timeout`.
pub fn request_timed_out() {
    if let Some(g) = global() {
        g.board.header.timeouts.fetch_add(1, Ordering::Relaxed);
    }
}

fn my_row(g: &Global) -> Option<&'static board::Row> {
    g.board.rows.get(MY_ROW.load(Ordering::Relaxed))
}

fn my_counters(g: &Global) -> &'static board::Counters {
    let i = MY_COUNTERS.load(Ordering::Relaxed);
    &g.board.counters[i.min(g.board.counters.len() - 1)]
}

fn request_line(params: &Params) -> (&[u8], &[u8]) {
    let method = params.get(b"REQUEST_METHOD").unwrap_or(b"-");
    let uri = params.get(b"REQUEST_URI").unwrap_or(b"");
    (method, uri)
}

fn content_length(params: &Params) -> u64 {
    params
        .get(b"CONTENT_LENGTH")
        .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
        .unwrap_or(0)
}

/// A request the connection loop is serving, as the board counts it: counted as ended when
/// dropped (complete if `ok` was set).
#[derive(Debug)]
pub(crate) struct Seen {
    start: Instant,
    /// The response's status, once its head was sent.
    pub(crate) status: u16,
    /// The response ended completely.
    pub(crate) ok: bool,
    marked_row: bool,
}

/// A request starts: counted, and marked on this process's row where the loop marks rows.
pub(crate) fn started(params: &Params) -> Option<Seen> {
    let g = global()?;
    let c = my_counters(g);
    c.accepted.fetch_add(1, Ordering::Relaxed);
    c.in_flight.fetch_add(1, Ordering::Relaxed);
    let row = (g.rows() != Rows::Threads).then(|| my_row(g)).flatten();
    if let Some(row) = row {
        let (method, uri) = request_line(params);
        if row.begin(method, uri, content_length(params)) && g.rows() == Rows::One {
            saw_active(1);
        }
    }
    Some(Seen {
        start: Instant::now(),
        status: 0,
        ok: false,
        marked_row: row.is_some(),
    })
}

impl Drop for Seen {
    fn drop(&mut self) {
        let Some(g) = global() else { return };
        let us = self.start.elapsed().as_micros() as u64;
        my_counters(g).ended(self.status, self.ok, us);
        if self.marked_row {
            if let Some(row) = my_row(g) {
                row.end(us);
            }
        }
    }
}

/// Request body bytes received.
pub(crate) fn bytes_in(n: usize) {
    if let Some(g) = global() {
        my_counters(g)
            .bytes_in
            .fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Response body bytes sent.
pub(crate) fn bytes_out(n: usize) {
    if let Some(g) = global() {
        my_counters(g)
            .bytes_out
            .fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// A connection opened (`true`) or closed.
pub(crate) fn connection(open: bool) {
    if let Some(g) = global() {
        let d = if open { 1 } else { -1 };
        my_counters(g).conns_open.fetch_add(d, Ordering::Relaxed);
    }
}

/// An application thread of the host runs a request until the guard is dropped; `None` while
/// the status page is off.
pub struct Busy {
    row: &'static board::Row,
    start: Instant,
}

/// Marks application thread `index` busy with the request of `params` (a host under
/// `method=threaded` calls this where the thread takes the request).
pub fn thread_busy(index: usize, params: &Params) -> Option<Busy> {
    let g = global().filter(|g| g.rows() == Rows::Threads)?;
    let row = g.board.rows.get(index)?;
    if row.is_free() {
        row.claim(nix::unistd::gettid().as_raw() as u64);
    }
    let (method, uri) = request_line(params);
    if row.begin(method, uri, content_length(params)) {
        saw_active(BUSY_THREADS.fetch_add(1, Ordering::Relaxed) + 1);
    }
    Some(Busy {
        row,
        start: Instant::now(),
    })
}

impl Drop for Busy {
    fn drop(&mut self) {
        if self.row.end(self.start.elapsed().as_micros() as u64) {
            BUSY_THREADS.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// What a request for one of the server's own paths asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Page {
    Ping,
    Status(String),
}

/// Whether the request's path is `want`: REQUEST_URI's path, else SCRIPT_NAME + PATH_INFO
/// (compared in place: this runs for every request while the page is on).
fn path_is(params: &Params, want: &[u8]) -> bool {
    if let Some(uri) = params.get(b"REQUEST_URI") {
        let path = memchr::memchr(b'?', uri).map_or(uri, |q| &uri[..q]);
        return path == want;
    }
    let script = params.get(b"SCRIPT_NAME").unwrap_or_default();
    let info = params.get(b"PATH_INFO").unwrap_or_default();
    want.strip_prefix(script).is_some_and(|rest| rest == info)
}

/// The request's query string (REQUEST_URI's, else QUERY_STRING).
fn query(params: &Params) -> String {
    let q = match params.get(b"REQUEST_URI") {
        Some(uri) => memchr::memchr(b'?', uri).map_or(&b""[..], |q| &uri[q + 1..]),
        None => params.get(b"QUERY_STRING").unwrap_or_default(),
    };
    String::from_utf8_lossy(q).into_owned()
}

/// The page a request asks for, if its path is `ping_path` or `status_path`.
pub(crate) fn route(cfg: &StatusConfig, params: &Params) -> Option<Page> {
    let is = |p: &Option<String>| p.as_deref().is_some_and(|p| path_is(params, p.as_bytes()));
    if is(&cfg.ping_path) {
        Some(Page::Ping)
    } else if is(&cfg.status_path) {
        Some(Page::Status(query(params)))
    } else {
        None
    }
}

/// Whether the client may read the status page: its REMOTE_ADDR (the HTTP client the web server
/// serves), else the connection's peer; a Unix-socket peer without REMOTE_ADDR is governed by
/// the socket file's permissions.
fn allowed(cfg: &StatusConfig, params: &Params, peer: &str) -> bool {
    let Some(allow) = &cfg.allow else {
        return true;
    };
    let ip = match params.get(b"REMOTE_ADDR") {
        Some(a) => std::str::from_utf8(a)
            .ok()
            .and_then(|a| a.parse::<IpAddr>().ok()),
        None if peer == "unix" => return true,
        None => peer.parse::<SocketAddr>().ok().map(|a| a.ip()),
    };
    ip.is_some_and(|ip| allow.iter().any(|n| n.contains(ip)))
}

/// The answer to a request for one of the server's own pages.
pub(crate) fn answer(
    page: &Page,
    cfg: &StatusConfig,
    params: &Params,
    peer: &str,
) -> (ResponseHead, Vec<u8>) {
    let plain = |status, reason: &'static str, body: &[u8]| {
        let head = ResponseHead::new(status, reason)
            .header("Content-Type", "text/plain; charset=utf-8")
            .header("Cache-Control", "no-store")
            .header("Content-Length", body.len().to_string());
        (head, body.to_vec())
    };
    match page {
        Page::Ping => plain(200, "OK", b"pong\n"),
        Page::Status(_) if !allowed(cfg, params, peer) => {
            tracing::warn!(peer, client = %String::from_utf8_lossy(params.get(b"REMOTE_ADDR").unwrap_or(b"-")),
                "status page refused: the client is not in status_allow_from");
            plain(403, "Forbidden", b"forbidden\n")
        }
        Page::Status(query) => match global() {
            None => plain(503, "Service Unavailable", b"status not available yet\n"),
            Some(g) => {
                let (content_type, body) = render::page(&snapshot(g), query);
                let head = ResponseHead::new(200, "OK")
                    .header("Content-Type", content_type)
                    .header("Cache-Control", "no-store")
                    .header("Content-Length", body.len().to_string());
                (head, body)
            }
        },
    }
}

/// The accept queue of a TCP listener now, and its length (Linux TCP_INFO: unacked is the
/// queue, sacked the backlog); `None` for other sockets.
fn listen_queue(fd: RawFd) -> Option<(u64, u64)> {
    // SAFETY: tcp_info is plain data; getsockopt writes at most `len` bytes into it.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let r = libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        );
        (r == 0).then_some((info.tcpi_unacked.into(), info.tcpi_sacked.into()))
    }
}

fn rss_of(pid: u64) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// A process's peak resident memory (VmHWM), bytes.
fn peak_rss_of(pid: u64) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU time (user + system, clock ticks) of the process or thread at `/proc/…/stat`.
fn cpu_ticks(stat_path: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    // Fields after the command name (which may hold spaces): utime and stime are 12th, 13th.
    let mut f = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    Some(f.next()?.parse::<u64>().ok()? + f.next()?.parse::<u64>().ok()?)
}

fn tick_us() -> u64 {
    // SAFETY: sysconf reads a constant of the system.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    1_000_000 / u64::try_from(hz).ok().filter(|h| *h > 0).unwrap_or(100)
}

/// Sums a count over the live processes' blocks and the reaped workers'.
fn total(g: &Global, f: impl Fn(&board::Counters) -> &std::sync::atomic::AtomicU64) -> u64 {
    let live: u64 = g
        .board
        .counters
        .iter()
        .map(|c| f(c).load(Ordering::Relaxed))
        .sum();
    live + f(&g.board.header.retired).load(Ordering::Relaxed)
}

fn gauge(g: &Global, f: impl Fn(&board::Counters) -> &std::sync::atomic::AtomicI64) -> u64 {
    let n: i64 = g
        .board
        .counters
        .iter()
        .map(|c| f(c).load(Ordering::Relaxed))
        .sum();
    n.max(0) as u64
}

/// A row and what /proc says of its worker now.
fn worker(g: &Global, i: usize, row: board::RowView, now: u64, tick: u64) -> render::Worker {
    let pid = u64::from(std::process::id());
    let (proc_pid, stat) = if g.rows() == Rows::Threads {
        (pid, format!("/proc/{pid}/task/{}/stat", row.pid))
    } else {
        (row.pid, format!("/proc/{}/stat", row.pid))
    };
    let cpu = cpu_ticks(&stat).map_or(0.0, |t| g.board.rows[i].cpu_since_last_look(t, now, tick));
    render::Worker {
        rss: rss_of(proc_pid).unwrap_or(0),
        peak_rss: peak_rss_of(proc_pid).unwrap_or(0),
        cpu,
        row,
    }
}

fn snapshot(g: &Global) -> render::Snapshot {
    let h = g.board.header;
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let (queue, queue_len) =
        listen_queue(g.pool.listen_fd).unwrap_or((0, g.pool.backlog.max(0) as u64));
    h.max_listen_queue.fetch_max(queue, Ordering::Relaxed);
    let (now, tick) = (now_us(), tick_us());
    let workers: Vec<render::Worker> = (g.board.rows.iter().map(board::Row::read).enumerate())
        .filter(|(_, r)| r.state.is_some_and(|s| s != RowState::Free))
        .map(|(i, r)| worker(g, i, r, now, tick))
        .collect();
    render::Snapshot {
        pool: g.pool.name.clone(),
        manager: g.pool.manager,
        start_us: g.board.start_us,
        now_us: now,
        accepted: total(g, |c| &c.accepted),
        listen_queue: queue,
        max_listen_queue: get(&h.max_listen_queue),
        listen_queue_len: queue_len,
        max_active: get(&h.max_active),
        max_children: g.pool.max_children,
        max_children_reached: get(&h.max_children_reached),
        slow: get(&h.slow),
        timeouts: get(&h.timeouts),
        by_class: std::array::from_fn(|i| total(g, |c| &c.by_class[i])),
        failed: total(g, |c| &c.failed),
        bytes_in: total(g, |c| &c.bytes_in),
        bytes_out: total(g, |c| &c.bytes_out),
        conns_open: gauge(g, |c| &c.conns_open),
        in_flight: gauge(g, |c| &c.in_flight),
        restarts: Restart::ALL.map(|r| (r.name(), get(&h.restarts[r as usize]))),
        buckets: std::array::from_fn(|i| total(g, |c| &c.buckets[i])),
        duration_sum_us: total(g, |c| &c.duration_sum_us),
        workers,
    }
}
