//! `slow_request` and `request_timeout`: a watchdog thread that logs the Python stack of a
//! request running too long and stops it.
//!
//! Strategy (the same for every process model): past `slow_request` the stack of the
//! request's thread is logged once (like php-fpm's slowlog); past `request_timeout` the stack
//! is logged and a [`RequestTimeout`] exception is raised in that thread (it derives from
//! `BaseException`, so `except Exception:` in the application does not swallow it), the host
//! answers 504 if nothing was sent yet, and the thread is free again. Code stuck in C never
//! sees the exception: if the thread is still busy [`WEDGED_GRACE`] later, the process is
//! declared wedged and the host's `on_wedged` action runs — a prefork worker exits (the
//! supervisor replaces it), a threaded server reloads (re-executes), a spawned one exits (the
//! web server starts another).

use pyo3::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{error, warn};

pyo3::create_exception!(
    _ferrocgi,
    RequestTimeout,
    pyo3::exceptions::PyBaseException,
    "Raised in a request's thread when it runs longer than request_timeout."
);

/// How long a request may ignore its RequestTimeout before the process counts as wedged.
pub const WEDGED_GRACE: Duration = Duration::from_secs(5);

/// What to do when a request cannot be stopped.
pub type OnWedged = Box<dyn Fn() + Send + Sync>;

struct Running {
    ident: u64,
    started: Instant,
    uri: String,
    slow_logged: bool,
    interrupted: Option<Instant>,
}

/// The watchdog; see the module documentation.
pub struct Watchdog {
    running: Mutex<HashMap<u64, Running>>,
    next: AtomicU64,
    slow: Option<Duration>,
    timeout: Option<Duration>,
    on_wedged: OnWedged,
}

/// Removes its request from the watchdog when the request ends.
pub struct Guard<'a> {
    dog: &'a Watchdog,
    id: u64,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let ended = self
            .dog
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
        // A RequestTimeout raised as the request was ending may still be pending in the
        // thread: it must not land in the thread's next request. (The watchdog interrupts
        // only while holding the GIL and seeing the request registered, and this runs with
        // the GIL held, so none can come after this.)
        if let Some(r) = ended.filter(|r| r.interrupted.is_some()) {
            Python::attach(|py| {
                if let Err(e) = set_async_exc(py, r.ident, None) {
                    error!(uri = r.uri, "cannot clear a pending RequestTimeout: {e}");
                }
            });
        }
    }
}

/// Threads (by ident) waiting outside Python for the front end to take response bytes: not
/// wedged, however long past their timeout (`write_timeout` deals with a slow front end).
static WRITING: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// This thread's ident, as Python's `threading.get_ident()` gives it (pthread_self).
pub fn current_ident() -> u64 {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() as u64 }
}

/// Runs `f`, a wait for the front end to take response bytes, with this thread counted as
/// writing (see `WRITING`).
pub fn writing<T>(f: impl FnOnce() -> T) -> T {
    let ident = current_ident();
    WRITING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(ident);
    let out = f();
    let mut w = WRITING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = w.iter().position(|&x| x == ident) {
        w.swap_remove(i);
    }
    out
}

fn is_writing(ident: u64) -> bool {
    WRITING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&ident)
}

impl Watchdog {
    /// A watchdog with its thread running, or `None` when neither limit is set.
    pub fn start(
        slow: Option<Duration>,
        timeout: Option<Duration>,
        on_wedged: OnWedged,
    ) -> Option<Arc<Self>> {
        if slow.is_none() && timeout.is_none() {
            return None;
        }
        let dog = Arc::new(Watchdog {
            running: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            slow,
            timeout,
            on_wedged,
        });
        let weak = Arc::downgrade(&dog);
        std::thread::Builder::new()
            .name("ferrocgi-watchdog".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(250));
                match weak.upgrade() {
                    Some(dog) => dog.check(),
                    None => return,
                }
            })
            .ok()?;
        Some(dog)
    }

    /// Records that the Python thread `ident` starts serving `uri`.
    pub fn enter(&self, ident: u64, uri: &str) -> Guard<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                id,
                Running {
                    ident,
                    started: Instant::now(),
                    uri: uri.to_string(),
                    slow_logged: false,
                    interrupted: None,
                },
            );
        Guard { dog: self, id }
    }

    fn check(&self) {
        let now = Instant::now();
        let mut slow = Vec::new();
        let mut stop = Vec::new();
        let mut wedged = false;
        {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            for (id, r) in running.iter_mut() {
                let age = now - r.started;
                if let Some(t) = self.timeout {
                    if age >= t && r.interrupted.is_none() {
                        r.interrupted = Some(now);
                        stop.push((*id, r.ident, r.uri.clone(), age));
                        continue;
                    }
                }
                if let Some(s) = self.slow {
                    if age >= s && !r.slow_logged && r.interrupted.is_none() {
                        r.slow_logged = true;
                        slow.push((r.ident, r.uri.clone(), age));
                    }
                }
                if r.interrupted.is_some_and(|at| now - at >= WEDGED_GRACE) && !is_writing(r.ident)
                {
                    wedged = true;
                }
            }
        }
        if !slow.is_empty() || !stop.is_empty() {
            Python::attach(|py| {
                for (ident, uri, age) in slow {
                    ferrocgi_server::status::slow_request();
                    warn!(uri, elapsed = ?age, "slow request (past slow_request); its Python stack:\n{}", stack_of(py, ident));
                }
                for (id, ident, uri, age) in stop {
                    // Under the GIL: a request still registered now cannot end (and clear
                    // its thread's pending exception) before the exception is set.
                    if !self
                        .running
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .contains_key(&id)
                    {
                        continue;
                    }
                    ferrocgi_server::status::request_timed_out();
                    error!(uri, elapsed = ?age, "request past request_timeout; stopping it. Its Python stack:\n{}", stack_of(py, ident));
                    let exc = py.get_type::<RequestTimeout>().into_any();
                    if let Err(e) = set_async_exc(py, ident, Some(exc)) {
                        error!(uri, "cannot interrupt the request's thread: {e}");
                    }
                }
            });
        }
        if wedged {
            error!(grace = ?WEDGED_GRACE, "a request ignored its RequestTimeout (stuck outside Python?): the process is wedged");
            (self.on_wedged)();
        }
    }
}

/// The formatted stack of the Python thread `ident`.
fn stack_of(py: Python<'_>, ident: u64) -> String {
    let r = (|| -> PyResult<String> {
        let frames = py.import("sys")?.call_method0("_current_frames")?;
        let Some(frame) = frames
            .call_method1("get", (ident,))
            .ok()
            .filter(|f| !f.is_none())
        else {
            return Ok("(the thread has no Python frame)".into());
        };
        let lines = py
            .import("traceback")?
            .call_method1("format_stack", (frame,))?;
        pyo3::types::PyString::new(py, "")
            .call_method1("join", (lines,))?
            .extract()
    })();
    r.unwrap_or_else(|e| format!("(stack unavailable: {e})"))
        .trim_end()
        .to_string()
}

/// Raises `exc` in the Python thread `ident` at its next bytecode, or with `None` clears what
/// is pending there (PyThreadState_SetAsyncExc, through ctypes).
fn set_async_exc(py: Python<'_>, ident: u64, exc: Option<Bound<'_, PyAny>>) -> PyResult<()> {
    let ctypes = py.import("ctypes")?;
    let api = ctypes
        .getattr("pythonapi")?
        .getattr("PyThreadState_SetAsyncExc")?;
    let tid = ctypes.getattr("c_ulong")?.call1((ident,))?;
    let exc = match exc {
        Some(e) => ctypes.getattr("py_object")?.call1((e,))?,
        None => py.None().into_bound(py),
    };
    let n: i64 = api.call1((tid, exc))?.extract()?;
    if n > 1 {
        return Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
            "PyThreadState_SetAsyncExc affected {n} threads"
        )));
    }
    Ok(())
}
