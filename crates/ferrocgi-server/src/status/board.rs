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

/// The pool's counters.
#[repr(C)]
#[derive(Default)]
pub(crate) struct Header {
    pub(crate) accepted: AtomicU64,
    pub(crate) max_listen_queue: AtomicU64,
    pub(crate) active: AtomicI64,
    pub(crate) max_active: AtomicU64,
    pub(crate) max_children_reached: AtomicU64,
    pub(crate) slow: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    /// Responses by status class: `[0]` other, `[1]`..`[5]` 1xx..5xx.
    pub(crate) by_class: [AtomicU64; 6],
    pub(crate) failed: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) conns_open: AtomicI64,
    /// Requests started and not ended, in every process.
    pub(crate) in_flight: AtomicI64,
    /// Indexed by `Restart as usize`.
    pub(crate) restarts: [AtomicU64; 5],
    /// Not cumulative: `[i]` counts durations in `(BUCKETS_US[i-1], BUCKETS_US[i]]`.
    pub(crate) buckets: [AtomicU64; BUCKETS_US.len() + 1],
    pub(crate) duration_sum_us: AtomicU64,
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
    last_cpu_us: AtomicU64,
    last_memory: AtomicU64,
    cpu_mark_us: AtomicU64,
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
    pub(crate) last_cpu_us: u64,
    pub(crate) last_memory: u64,
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
                &r.last_cpu_us,
                &r.last_memory,
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

    /// The request started by [`Row::begin`] ended; true if the worker is idle now.
    /// `cpu_us`: the CPU time of the worker so far (the request's is the difference from the
    /// last mark); `memory`: its peak resident memory.
    pub(crate) fn end(&self, duration_us: u64, cpu_us: u64, memory: u64) -> bool {
        let mut idle = false;
        self.write(|r| {
            idle = r.active.fetch_sub(1, Ordering::Relaxed) == 1;
            if idle && r.state.load(Ordering::Relaxed) == RowState::Running as u64 {
                r.state.store(RowState::Idle as u64, Ordering::Relaxed);
            }
            r.requests.fetch_add(1, Ordering::Relaxed);
            r.req_duration_us
                .store(duration_us.max(1), Ordering::Relaxed);
            let mark = r.cpu_mark_us.swap(cpu_us, Ordering::Relaxed);
            r.last_cpu_us
                .store(cpu_us.saturating_sub(mark), Ordering::Relaxed);
            r.last_memory.store(memory, Ordering::Relaxed);
        });
        idle
    }

    /// Sets the CPU mark a request's CPU time counts from.
    pub(crate) fn mark_cpu(&self, cpu_us: u64) {
        self.cpu_mark_us.store(cpu_us, Ordering::Relaxed);
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
            last_cpu_us: get(&self.last_cpu_us),
            last_memory: get(&self.last_memory),
            method: method.trim_end_matches('\0').to_owned(),
            uri: load_bytes(&self.uri, uri_len),
        }
    }
}

impl Header {
    /// A worker became active (+1) or idle (-1).
    pub(crate) fn active_changed(&self, up: bool) {
        if up {
            let now = self.active.fetch_add(1, Ordering::Relaxed) + 1;
            self.max_active
                .fetch_max(now.max(0) as u64, Ordering::Relaxed);
        } else {
            self.active.fetch_sub(1, Ordering::Relaxed);
        }
    }

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
}

/// The shared mapping: a [`Header`], then the rows.
pub(crate) struct Board {
    pub(crate) header: &'static Header,
    pub(crate) rows: &'static [Row],
    pub(crate) start_us: u64,
}

impl Board {
    /// Maps a zeroed board of `rows` rows shared with the processes forked later.
    pub(crate) fn map(rows: usize) -> std::io::Result<Board> {
        use nix::sys::mman::{mmap_anonymous, MapFlags, ProtFlags};
        let rows = rows.max(1);
        let head = std::mem::size_of::<Header>();
        let len = head + rows * std::mem::size_of::<Row>();
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
        // value, and `Header`'s size keeps the rows 8-byte aligned (both are repr(C) structs
        // of 8-byte atomics).
        let (header, rows) = unsafe {
            (
                &*base.cast::<Header>(),
                std::slice::from_raw_parts(base.add(head).cast::<Row>(), rows),
            )
        };
        Ok(Board {
            header,
            rows,
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
        assert!(row.end(1500, 300, 4096));
        let v = row.read();
        assert_eq!(
            (v.state, v.requests, v.req_duration_us),
            (Some(RowState::Idle), 1, 1500)
        );
        assert_eq!(
            (v.last_cpu_us, v.last_memory, v.content_length),
            (300, 4096, 5)
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
                board.header.accepted.fetch_add(3, Ordering::Relaxed);
                // SAFETY: _exit ends the child without running the parent's destructors.
                unsafe { libc::_exit(0) };
            }
            nix::unistd::ForkResult::Parent { child } => {
                nix::sys::wait::waitpid(child, None).unwrap();
            }
        }
        assert_eq!(board.rows[i].read().uri, "/from-child");
        assert_eq!(board.header.accepted.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn durations_land_in_their_bucket() {
        let board = Board::map(1).unwrap();
        board.header.ended(200, true, 5_000);
        board.header.ended(503, true, 20_000_000);
        board.header.ended(0, false, 7_000);
        let b: Vec<u64> = board
            .header
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        assert_eq!((b[0], b[1], b[BUCKETS_US.len()]), (1, 1, 1));
        assert_eq!(board.header.by_class[2].load(Ordering::Relaxed), 1);
        assert_eq!(board.header.by_class[5].load(Ordering::Relaxed), 1);
        assert_eq!(board.header.failed.load(Ordering::Relaxed), 1);
    }
}
