//! The scoreboard: counters and one row per worker in memory shared by every process of the
//! server (an anonymous `MAP_SHARED` mapping made before the workers are forked), so that the
//! process that answers a status request sees the whole pool. Writers are the processes and
//! threads that serve; each row has one writer at a time (a seqlock), the counters are atomic
//! adds. Nothing here allocates or locks on a request's path.

use std::sync::atomic::{fence, AtomicI64, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Upper bounds of the request-duration histogram's buckets, in microseconds (the last bucket
/// is everything longer).
pub(crate) const BUCKETS_US: [u64; 11] = [
    5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000,
];
const URI_WORDS: usize = 32; // 256 bytes of a request URI are kept
const METHOD_WORDS: usize = 2;

/// Why a worker was replaced (the `reason` of a row, and the index of its counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Restart {
    /// It died without being asked to (a signal, an exit other than a clean retirement).
    Crash = 1,
    /// It served `maxrequests`.
    MaxRequests = 2,
    /// Its resident memory passed `max_rss`.
    MaxRss = 3,
    /// A request in it could not be stopped after `request_timeout`.
    RequestTimeout = 4,
}

impl Restart {
    pub(crate) const ALL: [Restart; 4] = [
        Restart::Crash,
        Restart::MaxRequests,
        Restart::MaxRss,
        Restart::RequestTimeout,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Restart::Crash => "crash",
            Restart::MaxRequests => "maxrequests",
            Restart::MaxRss => "max_rss",
            Restart::RequestTimeout => "request_timeout",
        }
    }

    fn from_u64(v: u64) -> Option<Restart> {
        Restart::ALL.into_iter().find(|r| *r as u64 == v)
    }
}

/// A row's state, php-fpm's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowState {
    Free = 0,
    Idle = 1,
    Running = 2,
    /// Retiring: finishing its requests before it exits.
    Ending = 3,
}

impl RowState {
    fn from_u64(v: u64) -> RowState {
        match v {
            1 => RowState::Idle,
            2 => RowState::Running,
            3 => RowState::Ending,
            _ => RowState::Free,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            RowState::Free => "Free",
            RowState::Idle => "Idle",
            RowState::Running => "Running",
            RowState::Ending => "Ending",
        }
    }
}

/// A process's request counts. Each process writes only its own block (no cache line is
/// shared between processes on a request's path); the page sums them, and the supervisor
/// folds a reaped worker's block into [`Header::retired`].
#[repr(C)]
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) accepted: AtomicU64,
    /// Requests started and not ended.
    pub(crate) in_flight: AtomicI64,
    /// Responses by status class: `[0]` other, `[1]`..`[5]` 1xx..5xx.
    pub(crate) by_class: [AtomicU64; 6],
    pub(crate) failed: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) conns_open: AtomicI64,
    /// Not cumulative: `[i]` counts durations in `(BUCKETS_US[i-1], BUCKETS_US[i]]`.
    pub(crate) buckets: [AtomicU64; BUCKETS_US.len() + 1],
    pub(crate) duration_sum_us: AtomicU64,
}

impl Counters {
    /// A request ended with this status (0: none was sent) after this long.
    pub(crate) fn ended(&self, status: u16, ok: bool, duration_us: u64) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let class = match status / 100 {
            c @ 1..=5 => c as usize,
            _ => 0,
        };
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        let b = BUCKETS_US
            .iter()
            .position(|&le| duration_us <= le)
            .unwrap_or(BUCKETS_US.len());
        self.buckets[b].fetch_add(1, Ordering::Relaxed);
        self.duration_sum_us
            .fetch_add(duration_us, Ordering::Relaxed);
    }

    /// The monotonic counts, in one list (for summing and folding).
    fn totals(&self) -> impl Iterator<Item = &AtomicU64> {
        [
            &self.accepted,
            &self.failed,
            &self.bytes_in,
            &self.bytes_out,
        ]
        .into_iter()
        .chain(&self.by_class)
        .chain(&self.buckets)
        .chain([&self.duration_sum_us])
    }

    /// Adds `other`'s monotonic counts to these, and zeroes `other`'s (a reaped worker's).
    pub(crate) fn fold(&self, other: &Counters) {
        for (mine, theirs) in self.totals().zip(other.totals()) {
            mine.fetch_add(theirs.swap(0, Ordering::Relaxed), Ordering::Relaxed);
        }
        other.in_flight.store(0, Ordering::Relaxed);
        other.conns_open.store(0, Ordering::Relaxed);
    }
}

/// The pool's own counts, and what reaped workers counted.
#[repr(C)]
#[derive(Default)]
pub(crate) struct Header {
    pub(crate) max_listen_queue: AtomicU64,
    pub(crate) max_active: AtomicU64,
    pub(crate) max_children_reached: AtomicU64,
    pub(crate) slow: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    /// Indexed by `Restart as usize`.
    pub(crate) restarts: [AtomicU64; 5],
    pub(crate) retired: Counters,
}

/// One worker: a prefork process or an application thread.
#[repr(C)]
#[derive(Default)]
pub(crate) struct Row {
    seq: AtomicU64,
    pid: AtomicU64,
    state: AtomicU64,
    reason: AtomicU64,
    start_us: AtomicU64,
    requests: AtomicU64,
    active: AtomicU64,
    req_start_us: AtomicU64,
    req_duration_us: AtomicU64,
    content_length: AtomicU64,
    /// The page's last look at this worker: its CPU time then (clock ticks) and when (µs),
    /// for "last request cpu" as the CPU use between two looks.
    seen_cpu_ticks: AtomicU64,
    seen_at_us: AtomicU64,
    method: [AtomicU64; METHOD_WORDS],
    uri_len: AtomicU64,
    uri: [AtomicU64; URI_WORDS],
}

/// A row as read at one moment.
#[derive(Debug, Clone, Default)]
pub(crate) struct RowView {
    pub(crate) pid: u64,
    pub(crate) state: Option<RowState>,
    pub(crate) start_us: u64,
    pub(crate) requests: u64,
    pub(crate) req_start_us: u64,
    pub(crate) req_duration_us: u64,
    pub(crate) content_length: u64,
    pub(crate) method: String,
    pub(crate) uri: String,
}

/// Microseconds since the Unix epoch.
pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn store_bytes(words: &[AtomicU64], bytes: &[u8]) -> usize {
    let n = bytes.len().min(words.len() * 8);
    for (i, w) in words.iter().enumerate() {
        let mut word = [0u8; 8];
        let from = (i * 8).min(n);
        let to = (from + 8).min(n);
        word[..to - from].copy_from_slice(&bytes[from..to]);
        w.store(u64::from_le_bytes(word), Ordering::Relaxed);
        if to == n {
            break;
        }
    }
    n
}

fn load_bytes(words: &[AtomicU64], len: usize) -> String {
    let mut out = Vec::with_capacity(len);
    for w in words {
        out.extend_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
        if out.len() >= len {
            break;
        }
    }
    out.truncate(len);
    String::from_utf8_lossy(&out).into_owned()
}

impl Row {
    /// Runs `f` as the row's only writer (seqlock: odd while writing).
    fn write(&self, f: impl FnOnce(&Row)) {
        loop {
            let s = self.seq.load(Ordering::Relaxed);
            if s % 2 == 0
                && self
                    .seq
                    .compare_exchange_weak(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                fence(Ordering::Release);
                f(self);
                self.seq.store(s + 2, Ordering::Release);
                return;
            }
            std::hint::spin_loop();
        }
    }

    pub(crate) fn claim(&self, pid: u64) {
        self.write(|r| {
            r.pid.store(pid, Ordering::Relaxed);
            r.state.store(RowState::Idle as u64, Ordering::Relaxed);
            r.reason.store(0, Ordering::Relaxed);
            r.start_us.store(now_us(), Ordering::Relaxed);
            for f in [&r.requests, &r.active, &r.req_start_us, &r.req_duration_us] {
                f.store(0, Ordering::Relaxed);
            }
            for f in [
                &r.content_length,
                &r.seen_cpu_ticks,
                &r.seen_at_us,
                &r.uri_len,
            ] {
                f.store(0, Ordering::Relaxed);
            }
        });
    }

    pub(crate) fn free(&self) -> Option<Restart> {
        let reason = Restart::from_u64(self.reason.load(Ordering::Relaxed));
        self.write(|r| {
            r.pid.store(0, Ordering::Relaxed);
            r.state.store(RowState::Free as u64, Ordering::Relaxed);
        });
        reason
    }

    pub(crate) fn is_free(&self) -> bool {
        self.pid.load(Ordering::Relaxed) == 0
    }

    pub(crate) fn set_pid(&self, pid: u64) {
        self.write(|r| r.pid.store(pid, Ordering::Relaxed));
    }

    pub(crate) fn set_reason(&self, why: Restart) {
        self.reason.store(why as u64, Ordering::Relaxed);
    }

    pub(crate) fn set_ending(&self) {
        self.write(|r| r.state.store(RowState::Ending as u64, Ordering::Relaxed));
    }

    /// A request starts on this worker; true if the worker was idle before.
    pub(crate) fn begin(&self, method: &[u8], uri: &[u8], content_length: u64) -> bool {
        let mut was_idle = false;
        self.write(|r| {
            was_idle = r.active.fetch_add(1, Ordering::Relaxed) == 0;
            if r.state.load(Ordering::Relaxed) == RowState::Idle as u64 {
                r.state.store(RowState::Running as u64, Ordering::Relaxed);
            }
            r.req_start_us.store(now_us(), Ordering::Relaxed);
            r.req_duration_us.store(0, Ordering::Relaxed);
            r.content_length.store(content_length, Ordering::Relaxed);
            store_bytes(&r.method, method);
            let n = store_bytes(&r.uri, uri);
            r.uri_len.store(n as u64, Ordering::Relaxed);
        });
        was_idle
    }

    /// The request started by [`Row::begin`] ended after `duration_us`; true if the worker is
    /// idle now.
    pub(crate) fn end(&self, duration_us: u64) -> bool {
        let mut idle = false;
        self.write(|r| {
            idle = r.active.fetch_sub(1, Ordering::Relaxed) == 1;
            if idle && r.state.load(Ordering::Relaxed) == RowState::Running as u64 {
                r.state.store(RowState::Idle as u64, Ordering::Relaxed);
            }
            r.requests.fetch_add(1, Ordering::Relaxed);
            r.req_duration_us
                .store(duration_us.max(1), Ordering::Relaxed);
        });
        idle
    }

    /// The CPU use (% of one core) since the page last looked, given the worker's CPU time
    /// now (clock ticks); remembers this look.
    pub(crate) fn cpu_since_last_look(&self, ticks: u64, now_us: u64, tick_us: u64) -> f64 {
        let before = self.seen_cpu_ticks.swap(ticks, Ordering::Relaxed);
        let at = self.seen_at_us.swap(now_us, Ordering::Relaxed);
        if at == 0 || now_us <= at || ticks < before {
            return 0.0;
        }
        (ticks - before) as f64 * tick_us as f64 * 100.0 / (now_us - at) as f64
    }

    /// A consistent copy (retried while a writer is busy; after many tries, what was read).
    pub(crate) fn read(&self) -> RowView {
        let mut v = RowView::default();
        for _ in 0..1000 {
            let s1 = self.seq.load(Ordering::Acquire);
            v = self.read_fields();
            fence(Ordering::Acquire);
            if s1 % 2 == 0 && self.seq.load(Ordering::Relaxed) == s1 {
                break;
            }
            std::hint::spin_loop();
        }
        v
    }

    fn read_fields(&self) -> RowView {
        let get = |f: &AtomicU64| f.load(Ordering::Relaxed);
        let uri_len = (get(&self.uri_len) as usize).min(URI_WORDS * 8);
        let method = load_bytes(&self.method, METHOD_WORDS * 8);
        RowView {
            pid: get(&self.pid),
            state: Some(RowState::from_u64(get(&self.state))),
            start_us: get(&self.start_us),
            requests: get(&self.requests),
            req_start_us: get(&self.req_start_us),
            req_duration_us: get(&self.req_duration_us),
            content_length: get(&self.content_length),
            method: method.trim_end_matches('\0').to_owned(),
            uri: load_bytes(&self.uri, uri_len),
        }
    }
}

/// The shared mapping: a [`Header`], the rows, then one [`Counters`] block per row (a prefork
/// worker uses its row's; a threaded process the first).
pub(crate) struct Board {
    pub(crate) header: &'static Header,
    pub(crate) rows: &'static [Row],
    pub(crate) counters: &'static [Counters],
    pub(crate) start_us: u64,
}

impl Board {
    /// Maps a zeroed board of `rows` rows shared with the processes forked later.
    pub(crate) fn map(rows: usize) -> std::io::Result<Board> {
        use nix::sys::mman::{mmap_anonymous, MapFlags, ProtFlags};
        let rows = rows.max(1);
        let head = std::mem::size_of::<Header>();
        let rows_len = rows * std::mem::size_of::<Row>();
        let len = head + rows_len + rows * std::mem::size_of::<Counters>();
        let len = std::num::NonZeroUsize::new(len).expect("a board is never empty");
        // SAFETY: a fresh anonymous mapping, not aliased by anything; it is never unmapped, so
        // the references made from it are valid for the rest of the process.
        let base = unsafe {
            mmap_anonymous(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )
        }
        .map_err(std::io::Error::from)?;
        let base = base.as_ptr().cast::<u8>();
        // SAFETY: the mapping is zero-filled, page-aligned and `len` bytes long; every field
        // of `Header` and `Row` is an atomic integer, for which all-zero bytes are a valid
        // value, and the sizes keep every part 8-byte aligned (all are repr(C) structs of
        // 8-byte atomics).
        let (header, rows, counters) = unsafe {
            (
                &*base.cast::<Header>(),
                std::slice::from_raw_parts(base.add(head).cast::<Row>(), rows),
                std::slice::from_raw_parts(base.add(head + rows_len).cast::<Counters>(), rows),
            )
        };
        Ok(Board {
            header,
            rows,
            counters,
            start_us: now_us(),
        })
    }

    /// A free row, claimed for `pid`.
    pub(crate) fn claim(&self, pid: u64) -> Option<usize> {
        let i = self.rows.iter().position(Row::is_free)?;
        self.rows[i].claim(pid);
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_keeps_what_a_request_wrote_and_cuts_long_uris() {
        let board = Board::map(2).unwrap();
        let i = board.claim(42).unwrap();
        let row = &board.rows[i];
        let long = "/x".repeat(200);
        assert!(row.begin(b"POST", long.as_bytes(), 5));
        let v = row.read();
        assert_eq!(
            (v.pid, v.state, v.method.as_str()),
            (42, Some(RowState::Running), "POST")
        );
        assert_eq!(v.uri.len(), URI_WORDS * 8);
        assert!(long.starts_with(&v.uri));
        assert!(row.end(1500));
        let v = row.read();
        assert_eq!(
            (v.state, v.requests, v.req_duration_us, v.content_length),
            (Some(RowState::Idle), 1, 1500, 5)
        );
    }

    #[test]
    fn a_freed_row_is_claimed_again_and_reports_why_it_was_freed() {
        let board = Board::map(1).unwrap();
        let i = board.claim(7).unwrap();
        assert!(board.claim(8).is_none(), "one row only");
        board.rows[i].set_reason(Restart::MaxRss);
        assert_eq!(board.rows[i].free(), Some(Restart::MaxRss));
        assert_eq!(board.claim(9), Some(i));
        assert_eq!(board.rows[i].read().requests, 0);
    }

    #[test]
    fn a_child_process_writes_what_the_parent_reads() {
        let board = Board::map(1).unwrap();
        let i = board.claim(1).unwrap();
        // SAFETY: the child only writes to the shared mapping and exits at once.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                board.rows[i].begin(b"GET", b"/from-child", 0);
                board.counters[0].accepted.fetch_add(3, Ordering::Relaxed);
                // SAFETY: _exit ends the child without running the parent's destructors.
                unsafe { libc::_exit(0) };
            }
            nix::unistd::ForkResult::Parent { child } => {
                nix::sys::wait::waitpid(child, None).unwrap();
            }
        }
        assert_eq!(board.rows[i].read().uri, "/from-child");
        assert_eq!(board.counters[0].accepted.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn durations_land_in_their_bucket_and_fold_into_the_retired_counts() {
        let board = Board::map(1).unwrap();
        let c = &board.counters[0];
        c.ended(200, true, 5_000);
        c.ended(503, true, 20_000_000);
        c.ended(0, false, 7_000);
        let b: Vec<u64> = c
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        assert_eq!((b[0], b[1], b[BUCKETS_US.len()]), (1, 1, 1));
        assert_eq!(c.by_class[2].load(Ordering::Relaxed), 1);
        assert_eq!(c.by_class[5].load(Ordering::Relaxed), 1);
        assert_eq!(c.failed.load(Ordering::Relaxed), 1);
        board.header.retired.fold(c);
        assert_eq!(board.header.retired.by_class[5].load(Ordering::Relaxed), 1);
        assert_eq!(c.by_class[5].load(Ordering::Relaxed), 0);
    }

    #[test]
    fn cpu_use_is_measured_between_two_looks() {
        let board = Board::map(1).unwrap();
        let row = &board.rows[board.claim(1).unwrap()];
        assert_eq!(
            row.cpu_since_last_look(100, 1_000_000, 10_000),
            0.0,
            "first look"
        );
        // 50 ticks of 10 ms in 1 s: half a core.
        assert_eq!(row.cpu_since_last_look(150, 2_000_000, 10_000), 50.0);
    }
}
